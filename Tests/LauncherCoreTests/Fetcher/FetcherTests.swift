import Foundation
import Hummingbird
import KeelAPI
import LauncherCore
import Logging
import NIOCore
import SwiftProtobuf
import Synchronization
import Testing

/// The fetcher against real files and a real HTTP server on loopback: checksums, extraction,
/// the executable bit, the shared cache (one download for two tasks, LRU eviction, reuse after
/// a restart) and every kind of bad input.
@Suite("Fetcher")
struct FetcherTests {
    @Test("bad URIs are refused before anything is fetched", arguments: [
        ("", ""), ("ftp://example.org/a", ""), ("relative/path", ""), ("http:///nohost", ""),
        ("file:///tmp/a", "abc"), ("file:///tmp/a", String(repeating: "z", count: 64)),
        ("http://127.0.0.1/", ""),
    ])
    func badURIs(uri: String, sha256: String) throws {
        let error = #expect(throws: LauncherError.self) {
            try FetchItem(.with {
                $0.value = uri
                $0.sha256 = sha256
            })
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test("an output file name that is not one plain name is refused", arguments: ["../escape", "a/b", "..", "."])
    func badOutputNames(name: String) throws {
        let error = #expect(throws: LauncherError.self) {
            try FetchItem(.with {
                $0.value = "file:///etc/hostname"
                $0.outputFile = name
            })
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test("a local file is copied with its checksum checked and made executable")
    func localFile() async throws {
        try await withScratch { scratch in
            let source = scratch.appendingPathComponent("tool.sh")
            try Data("#!/bin/sh\necho hi\n".utf8).write(to: source)
            let digest = try Self.sha256(source)
            let fetcher = try Fetcher(cacheDirectory: scratch.appendingPathComponent("cache"), cacheLimit: 1 << 20, logger: Self.logger)
            let sandbox = try Self.sandbox(in: scratch, "s1")
            let outcomes = try await fetcher.fetch([try FetchItem(.with {
                $0.value = "file://\(source.path)"
                $0.sha256 = digest
                $0.executable = true
                $0.outputFile = "run.sh"
            })], into: sandbox)
            #expect(outcomes.map(\.name) == ["run.sh"])
            #expect(outcomes.map(\.fromCache) == [false])
            #expect(outcomes.map(\.bytes) == [18])
            let mode = try FileManager.default.attributesOfItem(atPath: sandbox.appendingPathComponent("run.sh").path)[.posixPermissions] as? Int
            #expect(mode == 0o755)

            let wrongDigest = String(repeating: "0", count: 64)
            let mismatch = await #expect(throws: LauncherError.self) {
                try await fetcher.fetch([try FetchItem(.with {
                    $0.value = source.path
                    $0.sha256 = wrongDigest
                })], into: sandbox)
            }
            #expect(mismatch?.code == .fetchFailed)
            #expect(mismatch?.message.contains(digest) == true)
            let missing = await #expect(throws: LauncherError.self) {
                try await fetcher.fetch([try FetchItem(.with { $0.value = "file:///no/such/file" })], into: sandbox)
            }
            #expect(missing?.code == .fetchFailed)
        }
    }

    @Test("http downloads: a 404 fails, archives are extracted, and a cached URI is downloaded once for two tasks")
    func httpAndCache() async throws {
        try await withScratch { scratch in
            let archives = try Self.makeArchives(in: scratch)
            try await FileServer.with(files: archives) { server in
                let cache = scratch.appendingPathComponent("cache")
                let fetcher = try Fetcher(cacheDirectory: cache, cacheLimit: 1 << 20, logger: Self.logger)

                let notFound = await #expect(throws: LauncherError.self) {
                    try await fetcher.fetch([try FetchItem(.with { $0.value = server.url("missing.tgz") })], into: scratch)
                }
                #expect(notFound?.code == .fetchFailed)
                #expect(notFound?.message.contains("404") == true)

                let sandbox = try Self.sandbox(in: scratch, "extract")
                _ = try await fetcher.fetch([
                    try FetchItem(.with {
                        $0.value = server.url("bundle.tar.gz")
                        $0.extract = true
                    }),
                    try FetchItem(.with {
                        $0.value = server.url("data.zip")
                        $0.extract = true
                    }),
                ], into: sandbox)
                #expect(FileManager.default.fileExists(atPath: sandbox.appendingPathComponent("bundle/bin/tool").path))
                #expect(FileManager.default.fileExists(atPath: sandbox.appendingPathComponent("data.txt").path))

                // Two tasks at once ask for the same cached URI: one download.
                let before = server.requests("bundle.tar.gz")
                let item = try FetchItem(.with {
                    $0.value = server.url("bundle.tar.gz")
                    $0.cache = true
                })
                let first = try Self.sandbox(in: scratch, "task-1")
                let second = try Self.sandbox(in: scratch, "task-2")
                async let one = fetcher.fetch([item], into: first)
                async let two = fetcher.fetch([item], into: second)
                _ = try await (one, two)
                #expect(server.requests("bundle.tar.gz") == before + 1)
                for sandbox in [first, second] {
                    #expect(FileManager.default.fileExists(atPath: sandbox.appendingPathComponent("bundle.tar.gz").path))
                }
                let third = try await fetcher.fetch([item], into: try Self.sandbox(in: scratch, "task-3"))
                #expect(third.first?.fromCache == true)
                #expect(server.requests("bundle.tar.gz") == before + 1)

                // A launcher restart keeps the cache.
                let restarted = try Fetcher(cacheDirectory: cache, cacheLimit: 1 << 20, logger: Self.logger)
                let afterRestart = try await restarted.fetch([item], into: try Self.sandbox(in: scratch, "task-4"))
                #expect(afterRestart.first?.fromCache == true)
                #expect(server.requests("bundle.tar.gz") == before + 1)
            }
        }
    }

    @Test("the cache evicts the least recently used entries to stay under its size limit")
    func eviction() async throws {
        try await withScratch { scratch in
            var files: [String: Data] = [:]
            for name in ["a", "b", "c"] { files[name] = Data(repeating: UInt8(ascii: "x"), count: 1000) }
            files["huge"] = Data(repeating: 0, count: 5000)
            try await FileServer.with(files: files) { server in
                let fetcher = try Fetcher(cacheDirectory: scratch.appendingPathComponent("cache"), cacheLimit: 2500, logger: Self.logger)
                func fetch(_ name: String) async throws -> Bool {
                    let outcome = try await fetcher.fetch([try FetchItem(.with {
                        $0.value = server.url(name)
                        $0.cache = true
                    })], into: try Self.sandbox(in: scratch, UUID().uuidString))
                    return outcome[0].fromCache
                }
                #expect(try await fetch("a") == false)
                #expect(try await fetch("b") == false)
                #expect(try await fetch("a") == true)  // a is now the most recently used
                #expect(try await fetch("c") == false)  // evicts b
                #expect(await fetcher.cachedBytes <= 2500)
                #expect(try await fetch("a") == true)
                #expect(try await fetch("b") == false)
                let tooBig = await #expect(throws: LauncherError.self) { try await fetch("huge") }
                #expect(tooBig?.message.contains("more than the whole fetcher cache") == true)
            }
        }
    }

    // MARK: Helpers

    static let logger = Logger(label: "fetcher-test")

    static func sandbox(in scratch: URL, _ name: String) throws -> URL {
        let url = scratch.appendingPathComponent("sandboxes").appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func sha256(_ file: URL) throws -> String {
        let output = try run("/usr/bin/env", ["sha256sum", file.path])
        return String(output.prefix(64))
    }

    /// A .tar.gz holding bundle/bin/tool and a .zip holding data.txt, made with tar and python3.
    static func makeArchives(in scratch: URL) throws -> [String: Data] {
        let tree = scratch.appendingPathComponent("tree")
        try FileManager.default.createDirectory(at: tree.appendingPathComponent("bundle/bin"), withIntermediateDirectories: true)
        try Data("tool".utf8).write(to: tree.appendingPathComponent("bundle/bin/tool"))
        let tarball = scratch.appendingPathComponent("bundle.tar.gz")
        _ = try run("/usr/bin/env", ["tar", "-czf", tarball.path, "-C", tree.path, "bundle"])
        let zip = scratch.appendingPathComponent("data.zip")
        _ = try run("/usr/bin/env", [
            "python3", "-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1], 'w').writestr('data.txt', 'data')", zip.path,
        ])
        return ["bundle.tar.gz": try Data(contentsOf: tarball), "data.zip": try Data(contentsOf: zip)]
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw LauncherError(code: .internalError, message: "\(arguments) exited with \(process.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    func withScratch(_ body: (URL) async throws -> Void) async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("keel-fetcher-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        try await body(scratch)
    }
}

/// An HTTP server on a free loopback port serving fixed files under /files/NAME (404 for
/// others) and counting the requests for each name.
struct FileServer: Sendable {
    let port: Int
    private let counts: RequestCounts

    func url(_ name: String) -> String { "http://127.0.0.1:\(port)/files/\(name)" }

    func requests(_ name: String) -> Int { counts.value.withLock { $0[name] ?? 0 } }

    final class RequestCounts: Sendable {
        let value = Mutex<[String: Int]>([:])
    }

    static func with(files: [String: Data], _ body: @Sendable (FileServer) async throws -> Void) async throws {
        let counts = RequestCounts()
        let router = Router()
        router.get("files/:name") { _, context -> Response in
            let name = context.parameters.get("name") ?? ""
            counts.value.withLock { $0[name, default: 0] += 1 }
            guard let data = files[name] else { return Response(status: .notFound) }
            return Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
        }
        let (ports, portWriter) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "file-server")
        logger.logLevel = .critical  // cancelling the server at the end logs an error
        let application = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in portWriter.yield(channel.localAddress?.port ?? 0) },
            logger: logger
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await application.run() }
            defer { group.cancelAll() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { return }
            try await body(FileServer(port: port, counts: counts))
        }
    }

    private init(port: Int, counts: RequestCounts) {
        self.port = port
        self.counts = counts
    }
}
