import Foundation
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A real local cluster for a test: `keel up` from the build folder on free loopback ports,
/// with its data in a temporary directory; ``stop()`` ends it and removes the directory.
final class LocalClusterFixture: Sendable {
    let binDir: String
    let dataDir: String
    let basePort: Int
    let up: ChildProcess

    /// Starts `keel up` and waits until every daemon is ready; `environment` is added to what
    /// `keel up` and its daemons see.
    init(environment: [String: String] = [:]) async throws {
        binDir = Self.buildDirectory()
        dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("keel-e2e-\(UUID().uuidString)").path
        basePort = try Self.freeBasePort()
        up = try ChildProcess(
            "\(binDir)/keel",
            ["up", "--data-dir", dataDir, "--base-port", "\(basePort)", "--resources", "cpus:4;mem:4096;ports:[\(basePort + 10)-\(basePort + 19)]"],
            environment: environment.merging(["KEEL_EXIT_WITH_PARENT": "1"]) { $1 }
        )
        let endpoints = "\(dataDir)/endpoints.json"
        let up = self.up
        do {
            try await waitUntil("keel up writes \(endpoints)", timeout: .seconds(180)) {
                if up.exitStatus != nil { throw TestFailure("keel up exited early:\n\(up.stderr)\n\(up.stdout)") }
                return FileManager.default.fileExists(atPath: endpoints)
            }
        } catch {
            await stop()
            throw error
        }
    }

    /// The environment that points the CLI at this cluster.
    var environment: [String: String] {
        [
            "KEEL_BROKER": "127.0.0.1:\(basePort)",
            "KEEL_REGISTRY": "127.0.0.1:\(basePort + 2)",
            "KEEL_TRACER": "127.0.0.1:\(basePort + 8)",
        ]
    }

    /// The daemons: name, gRPC port, admin port.
    var daemons: [(name: String, grpc: Int, admin: Int)] {
        [("broker", 0), ("registry", 2), ("launcher", 4), ("health", 6), ("tracer", 8)].map {
            ($0.0, basePort + $0.1, basePort + $0.1 + 1)
        }
    }

    /// The pids the daemons wrote to their ready files.
    func daemonPIDs() -> [String: Int32] {
        var pids: [String: Int32] = [:]
        for daemon in daemons {
            guard let data = FileManager.default.contents(atPath: "\(dataDir)/run/\(daemon.name).ready"),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let pid = object["pid"] as? Int
            else { continue }
            pids[daemon.name] = Int32(pid)
        }
        return pids
    }

    /// Starts the `keel` CLI against this cluster.
    func keel(_ arguments: [String]) throws -> ChildProcess {
        try ChildProcess("\(binDir)/keel", arguments, environment: environment)
    }

    /// Runs the `keel` CLI to completion.
    func keelResult(_ arguments: [String], timeout: Duration = .seconds(120)) async throws -> ChildProcess {
        let child = try keel(arguments)
        try await child.wait(timeout: timeout)
        return child
    }

    /// Stops `keel up` with SIGTERM and waits for it; removes the data directory.
    func stop() async {
        if up.exitStatus == nil {
            up.signal(SIGTERM)
            _ = try? await up.wait(timeout: .seconds(60))
        }
        try? FileManager.default.removeItem(atPath: dataDir)
    }

    /// The folder holding the built executables (where the test bundle is).
    static func buildDirectory() -> String {
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: path).deletingLastPathComponent().path
    }

    /// A base port with twenty free loopback ports above it.
    ///
    /// Ranges come from below the kernel's ephemeral range (`ip_local_port_range`, usually
    /// 32768–60999), so outgoing connections do not take them between this check and the
    /// daemons' binds, and two clusters of this test process never get overlapping ranges.
    static func freeBasePort() throws -> Int {
        for _ in 0..<200 {
            let base = 10_000 + 20 * Int.random(in: 0..<1_100)  // 10000...31980, in blocks of 20
            guard handedOut.withLock({ $0.insert(base).inserted }) else { continue }
            if (0..<20).allSatisfy({ isFree(base + $0) }) { return base }
        }
        throw TestFailure("found no range of 20 free loopback ports")
    }

    /// Base ports already given to a cluster of this process.
    private static let handedOut = Mutex<Set<Int>>([])

    private static func isFree(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

/// Whether a process exists (and is not a zombie).
func processAlive(_ pid: Int32) -> Bool {
    guard kill(pid, 0) == 0 else { return false }
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    return !status.contains("State:\tZ")
}

/// Pids of live processes whose command line contains `marker`.
func processes(containing marker: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { Int32($0) }.filter { pid in
        guard pid != getpid(), let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let commandLine = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        return commandLine.contains(marker) && processAlive(pid)
    }
}
