import Foundation
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A cluster of individually started daemons (registry, broker, launcher) on free loopback
/// ports, for tests that need to stop or restart one daemon alone, which `keel up` does not
/// allow (it stops the whole cluster when one daemon exits).
///
/// Every daemon runs with `KEEL_EXIT_WITH_PARENT=1`; the launcher with
/// `KEEL_STOP_TASKS_ON_EXIT=1`, so a graceful ``stop()`` also ends its tasks.
final class DaemonClusterFixture: Sendable {
    let binDir: String
    let dataDir: String
    let basePort: Int
    private let daemons = DaemonTable()

    /// Starts the registry, the broker and the launcher, each once the previous one is ready.
    /// `launcherEnvironment` adds to (or overrides) the launcher's `KEEL_*` settings.
    init(launcherResources: String, launcherEnvironment: [String: String] = [:]) async throws {
        binDir = LocalClusterFixture.buildDirectory()
        dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("keel-daemons-\(UUID().uuidString)").path
        basePort = try LocalClusterFixture.freeBasePort()
        self.launcherResources = launcherResources
        self.launcherEnvironment = launcherEnvironment
        try FileManager.default.createDirectory(atPath: "\(dataDir)/run", withIntermediateDirectories: true)
        do {
            try await start("registry", offset: 2, extra: [:])
            try await start("broker", offset: 0, extra: ["KEEL_REGISTRY": "127.0.0.1:\(basePort + 2)"])
            try await startLauncher()
        } catch {
            await stop()
            throw error
        }
    }

    private let launcherResources: String
    private let launcherEnvironment: [String: String]

    /// The environment that points the CLI at this cluster.
    var environment: [String: String] {
        ["KEEL_BROKER": "127.0.0.1:\(basePort)", "KEEL_REGISTRY": "127.0.0.1:\(basePort + 2)", "KEEL_TRACER": ""]
    }

    /// The running launcher process.
    var launcher: ChildProcess? { daemons.get("launcher") }

    /// Starts (or starts again) the launcher, with the same work dir, and waits until it is
    /// ready (API bound and attached to the broker).
    func startLauncher() async throws {
        try await start(
            "launcher", offset: 4,
            extra: [
                "KEEL_BROKER": "127.0.0.1:\(basePort)", "KEEL_HOSTNAME": "localhost",
                "KEEL_RESOURCES": launcherResources, "KEEL_STOP_TASKS_ON_EXIT": "1",
            ].merging(launcherEnvironment) { $1 })
    }

    /// `kill -9` of the launcher; returns once it is gone.
    func killLauncher() async throws {
        guard let launcher = daemons.get("launcher") else { return }
        launcher.signal(SIGKILL)
        try await launcher.wait(timeout: .seconds(30))
    }

    /// The launcher's log so far.
    var launcherLog: String {
        daemons.logs("launcher")
    }

    private func start(_ name: String, offset: Int, extra: [String: String]) async throws {
        let readyFile = "\(dataDir)/run/\(name).ready"
        try? FileManager.default.removeItem(atPath: readyFile)
        var environment = [
            "KEEL_LISTEN": "127.0.0.1:\(basePort + offset)",
            "KEEL_ADMIN_LISTEN": "127.0.0.1:\(basePort + offset + 1)",
            "KEEL_DATA_DIR": "\(dataDir)/\(name)",
            "KEEL_READY_FILE": readyFile,
            "KEEL_EXIT_WITH_PARENT": "1",
            "KEEL_LOG_LEVEL": "info",
            "KEEL_TRACER": "",
        ]
        environment.merge(extra) { $1 }
        let process = try ChildProcess("\(binDir)/keel-\(name)", [], environment: environment)
        daemons.set(name, process)
        try await waitUntil("keel-\(name) is ready", timeout: .seconds(120)) {
            if let status = process.exitStatus {
                throw TestFailure("keel-\(name) exited with \(status) during start:\n\(process.stderr)")
            }
            return FileManager.default.fileExists(atPath: readyFile)
        }
    }

    /// Stops every daemon (SIGTERM, then SIGKILL after 30 s) and removes the data directory.
    func stop() async {
        for name in ["launcher", "broker", "registry"] {
            guard let process = daemons.get(name), process.exitStatus == nil else { continue }
            process.signal(SIGTERM)
            if (try? await process.wait(timeout: .seconds(30))) == nil {
                process.signal(SIGKILL)
            }
        }
        try? FileManager.default.removeItem(atPath: dataDir)
    }

    /// Starts the `keel` CLI against this cluster.
    func keel(_ arguments: [String]) throws -> ChildProcess {
        try ChildProcess("\(binDir)/keel", arguments, environment: environment)
    }
}

/// The daemon processes of a fixture, by name; earlier instances are kept for their logs.
private final class DaemonTable: Sendable {
    private let state = Mutex<[String: [ChildProcess]]>([:])

    func set(_ name: String, _ process: ChildProcess) {
        state.withLock { $0[name, default: []].append(process) }
    }

    func get(_ name: String) -> ChildProcess? {
        state.withLock { $0[name]?.last }
    }

    func logs(_ name: String) -> String {
        state.withLock { $0[name] ?? [] }.map(\.stderr).joined(separator: "\n--- restarted ---\n")
    }
}
