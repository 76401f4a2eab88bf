import Foundation
import KeelCore
import RegistryCore
import Testing

/// The credentials file: PRINCIPAL:HASH lines, comments and blank lines; every mistake is
/// refused with the file, the line and what to do.
@Suite("Credentials file")
struct CredentialStoreTests {
    static func entry(_ principal: String, _ secret: String) throws -> String {
        CredentialStore.entry(principal: principal, hash: try SecretHash(hashing: secret, parameters: SecretHashTests.fast))
    }

    @Test("entries verify their own principal's secret only")
    func verify() throws {
        let text = """
            # operators' frameworks
            \(try Self.entry("analytics", "a-secret"))

            \(try Self.entry("ops@example.com", "o-secret"))
            """
        let store = try CredentialStore(parsing: text, source: "credentials")
        #expect(store.principals == ["analytics", "ops@example.com"])
        #expect(store.verify(principal: "analytics", secret: "a-secret"))
        #expect(!store.verify(principal: "analytics", secret: "o-secret"))
        #expect(store.verify(principal: "ops@example.com", secret: "o-secret"))
        #expect(!store.verify(principal: "nobody", secret: "a-secret"))
    }

    @Test(
        "parse errors name the line and say what to do",
        arguments: [
            ("analytics", "credentials:1: expected PRINCIPAL:HASH"),
            ("# comment\nanalytics:plain-secret", "credentials:2: the hash of 'analytics' is malformed"),
            ("bad principal:scrypt$ln=8,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "credentials:1: principal 'bad principal' is not valid"),
            (":scrypt$ln=8,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "credentials:1: principal '' is not valid"),
            (
                "a:scrypt$ln=8,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA\na:scrypt$ln=8,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
                "credentials:2: principal 'a' is listed twice"
            ),
        ]
    )
    func parseErrors(_ text: String, expected: String) {
        do {
            _ = try CredentialStore(parsing: text, source: "credentials")
            Issue.record("parsed: \(text)")
        } catch let error as KeelError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.hasPrefix(expected), "\(error.message)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("a missing or empty file is refused at load, naming the variable")
    func loadErrors() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keel-credentials-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let missing = directory.appendingPathComponent("missing").path
        let missingError = #expect(throws: KeelError.self) { try CredentialStore.load(path: missing) }
        #expect(missingError?.message.contains("KEEL_CREDENTIALS_FILE") == true)

        let empty = directory.appendingPathComponent("empty").path
        try "# nothing yet\n".write(toFile: empty, atomically: true, encoding: .utf8)
        let emptyError = #expect(throws: KeelError.self) { try CredentialStore.load(path: empty) }
        #expect(emptyError?.message.contains("has no entries") == true)

        let good = directory.appendingPathComponent("good").path
        try (try Self.entry("analytics", "a-secret") + "\n").write(toFile: good, atomically: true, encoding: .utf8)
        let store = try CredentialStore.load(path: good)
        #expect(store.verify(principal: "analytics", secret: "a-secret"))
    }
}
