import Foundation
import GRPCCore
import KeelAPI
import KeelRPC
import SwiftProtobuf
import Testing

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A cluster started with a credentials file and ACLs: the real `keel-registry hash-secret`
/// makes the entries, `keel run` registers with a principal and secret, and the broker refuses
/// a launch the ACLs do not allow.
@Suite("Authenticated cluster")
struct AuthenticatedClusterTests {
    @Test("credentials are required and checked, and run_tasks decides who may launch")
    func credentialsAndACLs() async throws {
        let binDir = LocalClusterFixture.buildDirectory()
        let configDir = FileManager.default.temporaryDirectory.appendingPathComponent("keel-auth-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: configDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: configDir) }

        var entries: [String] = []
        for (principal, secret) in [("analytics", "analytics-secret"), ("ops", "ops-secret")] {
            let hash = try ChildProcess("\(binDir)/keel-registry", ["hash-secret", "--principal", principal], stdin: secret + "\n")
            try await hash.wait(timeout: .seconds(60))
            #expect(hash.exitStatus == 0, "hash-secret failed: \(hash.stderr)")
            #expect(hash.stdout.hasPrefix("\(principal):scrypt$"))
            #expect(!hash.stdout.contains(secret))
            entries.append(hash.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        let credentials = configDir.appendingPathComponent("credentials").path
        try (entries.joined(separator: "\n") + "\n").write(toFile: credentials, atomically: true, encoding: .utf8)
        let acls = configDir.appendingPathComponent("acls.json").path
        try """
            {
              "permissive": false,
              "register_frameworks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}],
              "run_tasks": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}],
              "teardown_frameworks": [{"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}}]
            }
            """.write(toFile: acls, atomically: true, encoding: .utf8)

        // The broker is "ops" at the registry, to tear down frameworks whose failover timeout
        // expires (keel up passes the variables on; the other daemons ignore them).
        let cluster = try await LocalClusterFixture(environment: [
            "KEEL_CREDENTIALS_FILE": credentials, "KEEL_ACLS_FILE": acls,
            "KEEL_PRINCIPAL": "ops", "KEEL_SECRET": "ops-secret",
        ])
        do {
            try await run(cluster)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    private func run(_ cluster: LocalClusterFixture) async throws {
        let anonymous = try await keelRun(cluster, [:])
        #expect(anonymous.exitStatus != 0)
        #expect(anonymous.stderr.contains("requires a credential"), "\(anonymous.stderr)")

        let wrongSecret = try await keelRun(cluster, ["KEEL_PRINCIPAL": "analytics", "KEEL_SECRET": "guess"])
        #expect(wrongSecret.exitStatus != 0)
        #expect(wrongSecret.stderr.contains("wrong principal or secret for 'analytics'"), "\(wrongSecret.stderr)")

        let notAllowed = try await keelRun(cluster, ["KEEL_PRINCIPAL": "analytics", "KEEL_SECRET": "analytics-secret"])
        #expect(notAllowed.exitStatus != 0)
        #expect(notAllowed.stderr.contains("principal 'analytics' may not run tasks as user"), "\(notAllowed.stderr)")

        let allowed = try await keelRun(cluster, ["KEEL_PRINCIPAL": "ops", "KEEL_SECRET": "ops-secret"])
        #expect(allowed.exitStatus == 0, "keel run failed: \(allowed.stderr)")
        #expect(allowed.stdout == "authenticated\n")

        // A framework that dies (failover timeout 0) is torn down in the registry by the
        // broker, as its own principal.
        let lingering = try ChildProcess(
            "\(cluster.binDir)/keel", ["run", "--name", "lingering", "--", "sleep", "600"],
            environment: cluster.environment.merging(["KEEL_PRINCIPAL": "ops", "KEEL_SECRET": "ops-secret"]) { $1 }
        )
        try await lingering.waitForStderr("TASK_RUNNING")
        lingering.signal(SIGKILL)
        _ = try? await lingering.wait(timeout: .seconds(30))
        let registry = try KeelRPC.Endpoint(parsing: cluster.environment["KEEL_REGISTRY"]!)
        try await waitUntil("the registry completes the dead framework", timeout: .seconds(60)) {
            let records = try await withKeelClient(registry) { client in
                try await Keel_V1_Registry.Client(wrapping: client).listFrameworks(.with { $0.includeCompleted = true }).records
            }
            return records.contains { $0.frameworkInfo.name.hasSuffix("lingering") && $0.state == .completed }
        }
    }

    private func keelRun(_ cluster: LocalClusterFixture, _ environment: [String: String]) async throws -> ChildProcess {
        let child = try ChildProcess(
            "\(cluster.binDir)/keel", ["run", "--name", "auth", "--", "echo", "authenticated"],
            environment: cluster.environment.merging(environment) { $1 }
        )
        try await child.wait(timeout: .seconds(120))
        return child
    }
}
