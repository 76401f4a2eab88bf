import ArgumentParser
import Foundation
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The five daemons of a local cluster, started from the executables next to `keel`.
///
/// Each daemon runs with `--exit-with-parent`, so none outlives `keel up` even if it is killed
/// with SIGKILL, and reports readiness through a ready file that `start` waits for.
final class LocalCluster: Sendable {
    /// One daemon of the cluster.
    struct Daemon: Sendable {
        var name: String
        var grpcPort: Int
        var adminPort: Int
        var environment: [String: String]
    }

    let dataDir: String
    let daemons: [Daemon]
    private let binDir: String
    private let processes = Mutex<[String: Process]>([:])

    init(dataDir: String, basePort: Int, launcherResources: String?, logLevel: String) throws {
        self.dataDir = dataDir
        self.binDir = Self.executableDirectory()
        let tracer = "http://127.0.0.1:\(basePort + 8)"
        func ports(_ offset: Int) -> (Int, Int) { (basePort + offset, basePort + offset + 1) }
        func daemon(_ name: String, _ offset: Int, _ extra: [String: String]) -> Daemon {
            let (grpc, admin) = ports(offset)
            var environment = [
                "KEEL_LISTEN": "127.0.0.1:\(grpc)",
                "KEEL_ADMIN_LISTEN": "127.0.0.1:\(admin)",
                "KEEL_DATA_DIR": "\(dataDir)/\(name)",
                "KEEL_READY_FILE": "\(dataDir)/run/\(name).ready",
                "KEEL_EXIT_WITH_PARENT": "1",
                "KEEL_LOG_LEVEL": logLevel,
                "KEEL_TRACER": tracer,
            ]
            environment.merge(extra) { $1 }
            return Daemon(name: name, grpcPort: grpc, adminPort: admin, environment: environment)
        }
        let broker = "127.0.0.1:\(basePort)"
        // A local cluster takes its tasks with it when it stops.
        var launcher = ["KEEL_BROKER": broker, "KEEL_HOSTNAME": "localhost", "KEEL_STOP_TASKS_ON_EXIT": "1"]
        if let launcherResources { launcher["KEEL_RESOURCES"] = launcherResources }
        self.daemons = [
            daemon("tracer", 8, ["KEEL_TRACER": ""]),
            daemon("registry", 2, [:]),
            daemon("broker", 0, ["KEEL_REGISTRY": "127.0.0.1:\(basePort + 2)"]),
            daemon("launcher", 4, launcher),
            daemon("health", 6, ["KEEL_BROKER": broker]),
        ]
        for daemon in daemons {
            let path = "\(binDir)/keel-\(daemon.name)"
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw ValidationError("\(path) is missing: build all executables first with `swift build`")
            }
        }
    }

    /// Starts the daemons in order, each once the previous one is ready.
    func start(timeout: Duration) async throws {
        let fileManager = FileManager.default
        for folder in ["logs", "run"] {
            try fileManager.createDirectory(atPath: "\(dataDir)/\(folder)", withIntermediateDirectories: true)
        }
        for daemon in daemons {
            let readyFile = "\(dataDir)/run/\(daemon.name).ready"
            try? fileManager.removeItem(atPath: readyFile)
            let logPath = "\(dataDir)/logs/\(daemon.name).log"
            _ = fileManager.createFile(atPath: logPath, contents: nil)
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            log.seekToEndOfFile()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "\(binDir)/keel-\(daemon.name)")
            var environment = ProcessInfo.processInfo.environment
            environment.merge(daemon.environment) { $1 }
            process.environment = environment
            process.standardOutput = log
            process.standardError = log
            process.standardInput = FileHandle.nullDevice
            try process.run()
            processes.withLock { $0[daemon.name] = process }
            try await waitUntilReady(daemon, readyFile: readyFile, logPath: logPath, timeout: timeout)
            Output.note("keel up: \(daemon.name) ready on 127.0.0.1:\(daemon.grpcPort)")
        }
        try writeEndpoints()
    }

    private func waitUntilReady(_ daemon: Daemon, readyFile: String, logPath: String, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while !FileManager.default.fileExists(atPath: readyFile) {
            let running = processes.withLock { $0[daemon.name]?.isRunning ?? false }
            guard running else {
                throw ValidationError("keel-\(daemon.name) exited during start:\n\(Self.tail(of: logPath))")
            }
            guard ContinuousClock.now < deadline else {
                throw ValidationError("keel-\(daemon.name) was not ready after \(timeout):\n\(Self.tail(of: logPath))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Returns a description once any daemon has exited.
    func waitForAnyExit() async -> String {
        while !Task.isCancelled {
            let exited = processes.withLock { processes in
                processes.first { !$0.value.isRunning }.map { ($0.key, $0.value.terminationStatus) }
            }
            if let (name, status) = exited {
                return "keel-\(name) exited with status \(status); see \(dataDir)/logs/\(name).log"
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return "cancelled"
    }

    /// Stops the daemons in reverse order: SIGTERM, then SIGKILL after 15 seconds.
    func stop() async {
        for daemon in daemons.reversed() {
            guard let process = processes.withLock({ $0[daemon.name] }), process.isRunning else { continue }
            kill(process.processIdentifier, SIGTERM)
            let deadline = ContinuousClock.now + .seconds(15)
            while process.isRunning && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(50))
            }
            if process.isRunning {
                Output.note("keel up: keel-\(daemon.name) did not stop in 15s; killing it")
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
    }

    /// The endpoints, for people.
    func summary() -> String {
        var lines = ["Keel is up. Data and logs: \(dataDir)", ""]
        lines.append("SERVICE   GRPC              ADMIN (/metrics /healthz /readyz)")
        for daemon in daemons {
            let name = daemon.name.padding(toLength: 9, withPad: " ", startingAt: 0)
            let grpc = "127.0.0.1:\(daemon.grpcPort)".padding(toLength: 17, withPad: " ", startingAt: 0)
            lines.append("\(name) \(grpc) http://127.0.0.1:\(daemon.adminPort)")
        }
        lines.append("")
        lines.append("Try: keel run -- echo hello    then    keel tasks")
        return lines.joined(separator: "\n")
    }

    /// The endpoints as JSON, as written to DATA_DIR/endpoints.json.
    func endpointsJSON() -> String {
        let data = FileManager.default.contents(atPath: "\(dataDir)/endpoints.json") ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    private func writeEndpoints() throws {
        var object: [String: [String: String]] = [:]
        for daemon in daemons {
            object[daemon.name] = ["grpc": "127.0.0.1:\(daemon.grpcPort)", "admin": "127.0.0.1:\(daemon.adminPort)"]
        }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        let path = "\(dataDir)/endpoints.json"
        try data.write(to: URL(fileURLWithPath: path + ".tmp"))
        guard rename(path + ".tmp", path) == 0 else {
            throw ValidationError("could not write \(path): errno \(errno)")
        }
    }

    private static func tail(of path: String) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(15).joined(separator: "\n")
    }

    /// The directory of the running `keel` executable.
    private static func executableDirectory() -> String {
        let path = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: path).deletingLastPathComponent().path
    }
}
