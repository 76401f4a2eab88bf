import ArgumentParser
import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A local cluster for a benchmark: `keel up` from the folder of `keel-bench`, on free
/// loopback ports, with a temporary data directory.
final class BenchCluster: Sendable {
    let dataDir: String
    let basePort: Int
    private let up: Process

    private init(dataDir: String, basePort: Int, up: Process) {
        self.dataDir = dataDir
        self.basePort = basePort
        self.up = up
    }

    /// Starts `keel up` with `environment` added to this process's and waits until every daemon is ready.
    static func start(environment: [String: String], log: (@Sendable (String) -> Void)?) async throws -> BenchCluster {
        let binDir = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            .deletingLastPathComponent().path
        let keel = "\(binDir)/keel"
        guard FileManager.default.isExecutableFile(atPath: keel) else {
            throw ValidationError("\(keel) is missing: build every product (swift build) before keel-bench launch")
        }
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("keel-bench-\(UUID().uuidString)").path
        let basePort = try freeBasePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: keel)
        process.arguments = [
            "up", "--data-dir", dataDir, "--base-port", "\(basePort)",
            "--resources", "cpus:64;mem:65536;ports:[\(basePort + 10)-\(basePort + 19)]",
        ]
        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { $1 }
        merged["KEEL_EXIT_WITH_PARENT"] = "1"
        process.environment = merged
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let cluster = BenchCluster(dataDir: dataDir, basePort: basePort, up: process)
        log?("keel-bench: starting a local cluster in \(dataDir) on ports \(basePort)-\(basePort + 9)")
        let deadline = ContinuousClock.now + .seconds(120)
        while !FileManager.default.fileExists(atPath: "\(dataDir)/endpoints.json") {
            guard process.isRunning else {
                await cluster.stop(keepData: true)
                throw ValidationError("keel up exited during start; see \(dataDir)/logs")
            }
            guard ContinuousClock.now < deadline else {
                await cluster.stop(keepData: true)
                throw ValidationError("keel up was not ready within 120 s; see \(dataDir)/logs")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return cluster
    }

    /// Stops `keel up` (SIGTERM; its daemons stop with it) and removes the data unless `keepData`.
    func stop(keepData: Bool) async {
        if up.isRunning {
            kill(up.processIdentifier, SIGTERM)
            let deadline = ContinuousClock.now + .seconds(60)
            while up.isRunning, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(50))
            }
            if up.isRunning { kill(up.processIdentifier, SIGKILL) }
        }
        if !keepData { try? FileManager.default.removeItem(atPath: dataDir) }
    }

    /// CPU seconds (user + system) each daemon has used so far, by name, from the pids in their
    /// ready files, and `task_processes`: the tasks' processes (supervisors, namespace inits,
    /// programs), counted once reaped — by the launcher, or by the launcher's supervisor
    /// spawner (`keel-task-supervisor --spawner`, its child), whose own CPU counts here too.
    func daemonCPUSeconds() -> [String: Double] {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var result: [String: Double] = [:]
        for name in ["broker", "registry", "launcher", "health", "tracer"] {
            guard let data = FileManager.default.contents(atPath: "\(dataDir)/run/\(name).ready"),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let pid = object["pid"] as? Int,
                let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            // Fields after the command name: state is field 3, utime 14 and stime 15, and the
            // reaped children's cutime 16 and cstime 17.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 14, let user = Double(fields[11]), let system = Double(fields[12]),
                let childrenUser = Double(fields[13]), let childrenSystem = Double(fields[14])
            else { continue }
            result[name] = (user + system) / ticks
            if name == "launcher" {
                result["task_processes"] = (childrenUser + childrenSystem + Self.spawnerTicks(parent: pid)) / ticks
            }
        }
        return result
    }

    /// User and system ticks, own and of reaped children, of the running children of `parent`
    /// that are supervisor spawners, and of the supervisors they started that still run (a
    /// supervisor that serves several tasks reaps their programs, and is reaped itself only
    /// when it exits).
    private static func spawnerTicks(parent: Int) -> Double {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        var supervisors: [(pid: Int, parent: Int, ticks: Double)] = []
        for entry in entries {
            guard let pid = Int(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                stat.contains("(keel-task-super)"), let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 14, let ppid = Int(fields[1]) else { continue }
            supervisors.append((pid, ppid, fields[11...14].compactMap { Double($0) }.reduce(0, +)))
        }
        let spawners = Set(supervisors.filter { $0.parent == parent }.map(\.pid))
        return supervisors.filter { $0.parent == parent || spawners.contains($0.parent) }.map(\.ticks).reduce(0, +)
    }

    /// A base port with twenty free loopback ports above it.
    private static func freeBasePort() throws -> Int {
        for _ in 0..<200 {
            let base = Int.random(in: 20_000...40_000)
            if (0..<20).allSatisfy({ isFree(base + $0) }) { return base }
        }
        throw ValidationError("found no range of 20 free loopback ports")
    }

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
