import ArgumentParser
import Foundation
import KeelAPI
import KeelRPC
import KeelSDK
import SwiftProtobuf

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `keel-bench launch`: launches N short real tasks through a real local cluster (broker,
/// registry, one launcher, a KeelSDK framework in the loop) and compares the rate with
/// spawning the same program directly.
struct LaunchBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch",
        abstract: "Tasks per second through broker, framework and launcher, against posix_spawn of the same program.",
        discussion: """
            Starts `keel up` (from the folder of keel-bench) on free loopback ports with a \
            temporary data directory, registers a framework with KeelSDK, launches --tasks \
            tasks of --program, as many per offer as fit, acknowledges every update, and times \
            the first launch to the last TASK_FINISHED. Then spawns --program the same number \
            of times with posix_spawn, one after the other (waiting for each), and with \
            --parallelism spawners at once. ratio = keel_per_s / raw_per_s (the sequential rate). \
            With --rounds R, all of that R times; the figures are the medians (ratio: the median \
            of the rounds' ratios).
            """
    )

    @Option(help: "Number of tasks.")
    var tasks = 200

    @Option(help: "The program each task runs (no arguments).")
    var program = "/bin/true"

    @Option(help: "CPUs per task.")
    var cpus = 0.01

    @Option(help: "Memory per task, MiB.")
    var mem = 16.0

    @Option(help: "Concurrent spawners for the parallel raw rate (default: the number of CPUs).")
    var parallelism: Int?

    @Option(help: "The broker's offer interval (KEEL_OFFER_INTERVAL), e.g. 1s or 100ms.")
    var offerInterval: String?

    @Option(help: "Rounds of keel and raw spawns (each keel run on a fresh cluster); the figures printed are the medians, and the ratio of each round is listed. On a shared machine several rounds say more than one.")
    var rounds = 1

    @Option(help: "Give up after this many seconds.")
    var timeout = 600.0

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Flag(help: "Keep the cluster's data directory (daemon logs) and print where it is.")
    var keepData = false

    func validate() throws {
        guard tasks > 0 else { throw ValidationError("--tasks must be at least 1") }
        guard cpus > 0, mem > 0 else { throw ValidationError("--cpus and --mem must be positive") }
        guard access(program, X_OK) == 0 else { throw ValidationError("\(program) is not an executable file") }
        if let parallelism, parallelism < 1 { throw ValidationError("--parallelism must be at least 1") }
        guard (1...1000).contains(rounds) else { throw ValidationError("--rounds must be a whole number from 1 to 1000") }
    }

    func run() async throws {
        var measured: [Round] = []
        for index in 0..<rounds {
            if !json, rounds > 1 { Self.note("keel-bench: round \(index + 1) of \(rounds)") }
            measured.append(try await runRound())
        }
        let keelRate = Self.median(measured.map(\.keelRate))
        let rawRate = Self.median(measured.map(\.rawRate))
        let parallelRate = Self.median(measured.map(\.parallelRate))
        let ratios = measured.map { $0.keelRate / $0.rawRate }
        let ratio = Self.median(ratios)
        let ratioParallel = Self.median(measured.map { $0.keelRate / $0.parallelRate })
        var cpuPerTask: [String: Double] = [:]
        for name in Set(measured.flatMap(\.cpuPerTask.keys)) {
            cpuPerTask[name] = Self.round(Self.median(measured.map { $0.cpuPerTask[name] ?? 0 }), 2)
        }
        let keelCPU = Self.median(measured.map { $0.cpuPerTask.values.reduce(0, +) })
        let rawCPU = Self.median(measured.map(\.rawCPU))
        let last = measured[measured.count - 1].keel
        let width = parallelism ?? ProcessInfo.processInfo.activeProcessorCount
        if json {
            var object: [String: Any] = [
                "benchmark": "launch", "tasks": tasks, "program": program, "cpus_per_task": cpus, "mem_per_task": mem,
                "keel_per_s": Self.round(keelRate), "raw_per_s": Self.round(rawRate),
                "raw_parallel_per_s": Self.round(parallelRate), "raw_parallelism": width, "ratio": Self.round(ratio, 3),
                "ratio_parallel": Self.round(ratioParallel, 3),
                "keel_seconds": Self.round(Self.median(measured.map(\.keel.seconds)), 3),
                "offers_used": last.offersUsed, "max_tasks_per_offer": last.maxPerOffer,
                "launch_to_finished_ms_p50": Self.round(Self.median(measured.map(\.keel.launchToFinishedP50)) * 1000, 1),
                "failed_tasks": measured.map(\.keel.failed).reduce(0, +), "offer_interval": offerInterval ?? "default",
                "cpu_ms_per_task": cpuPerTask, "keel_cpu_ms_per_task": Self.round(keelCPU, 2),
                "raw_cpu_ms_per_task": Self.round(rawCPU, 3),
            ]
            if rounds > 1 {
                object["rounds"] = rounds
                object["ratios"] = ratios.map { Self.round($0, 3) }
                object["ratio_min"] = Self.round(ratios.min() ?? 0, 3)
                object["ratio_max"] = Self.round(ratios.max() ?? 0, 3)
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            let kind = rounds > 1 ? "medians of \(rounds) rounds" : "one round"
            print("tasks: \(tasks) × \(program) (cpus \(cpus), mem \(mem) MiB each); \(kind)")
            print(String(format: "keel:                 %8.1f tasks/s  (%.2f s first launch → last TASK_FINISHED, %d offers, up to %d tasks per offer)",
                keelRate, Self.median(measured.map(\.keel.seconds)), last.offersUsed, last.maxPerOffer))
            print(String(format: "posix_spawn, serial:  %8.1f tasks/s", rawRate))
            print(String(format: "posix_spawn, %2d wide: %8.1f tasks/s", width, parallelRate))
            print(String(format: "ratio keel/serial:    %8.3f   (keel/parallel %.3f)", ratio, ratioParallel))
            if rounds > 1 {
                print("ratio of each round: " + ratios.map { String(format: "%.3f", $0) }.joined(separator: ", "))
            }
            print(String(format: "launch → TASK_FINISHED per task, p50: %.1f ms",
                Self.median(measured.map(\.keel.launchToFinishedP50)) * 1000))
            print("CPU ms per task: " + cpuPerTask.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            print(String(format: "CPU ms per task, all of keel: %.2f; posix_spawn + wait, serial: %.3f", keelCPU, rawCPU))
            let failed = measured.map(\.keel.failed).reduce(0, +)
            if failed > 0 { print("tasks not finished successfully: \(failed)") }
        }
    }

    /// One round's figures: the keel run and, right after it, the raw spawns.
    struct Round {
        var keel: LaunchRun
        var cpuPerTask: [String: Double]
        var keelRate: Double
        var rawRate: Double
        var parallelRate: Double
        var rawCPU: Double
    }

    /// Launches the tasks through a fresh cluster, then spawns the program directly, serially
    /// and `parallelism` wide.
    func runRound() async throws -> Round {
        var environment: [String: String] = [:]
        if let offerInterval { environment["KEEL_OFFER_INTERVAL"] = offerInterval }
        let log: (@Sendable (String) -> Void)? = json ? nil : { @Sendable text in Self.note(text) }
        let cluster = try await BenchCluster.start(environment: environment, log: log)
        let keel: LaunchRun
        var cpuPerTask: [String: Double] = [:]
        do {
            var cpuBefore = cluster.daemonCPUSeconds()
            cpuBefore["framework"] = CPUTime.own()
            keel = try await LaunchRun.run(
                tasks: tasks, program: program, cpus: cpus, mem: mem, cluster: cluster, timeout: .seconds(timeout))
            var cpuAfter = cluster.daemonCPUSeconds()
            cpuAfter["framework"] = CPUTime.own()
            for (name, seconds) in cpuAfter {
                cpuPerTask[name] = Self.round((seconds - (cpuBefore[name] ?? 0)) * 1000 / Double(tasks), 2)
            }
        } catch {
            await cluster.stop(keepData: true)
            Self.note("keel-bench: failed; the cluster's logs are in \(cluster.dataDir)/logs")
            throw error
        }
        await cluster.stop(keepData: keepData)
        if keepData { Self.note("keel-bench: the cluster's data and logs are in \(cluster.dataDir)") }

        let width = parallelism ?? ProcessInfo.processInfo.activeProcessorCount
        let rawCPUBefore = CPUTime.own() + CPUTime.children()
        let sequential = try RawSpawn.run(program: program, count: tasks, parallelism: 1)
        let rawCPU = (CPUTime.own() + CPUTime.children() - rawCPUBefore) * 1000 / Double(tasks)
        let parallel = try RawSpawn.run(program: program, count: tasks, parallelism: width)
        return Round(
            keel: keel, cpuPerTask: cpuPerTask, keelRate: Double(tasks) / keel.seconds,
            rawRate: Double(tasks) / sequential, parallelRate: Double(tasks) / parallel, rawCPU: rawCPU)
    }

    /// The middle value (the mean of the two middle ones for an even count); 0 for none.
    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    static func note(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    static func round(_ value: Double, _ digits: Int = 1) -> Double {
        let scale = pow(10, Double(digits))
        return (value * scale).rounded() / scale
    }
}

/// What the framework side measured.
struct LaunchRun: Sendable {
    var seconds: Double
    var offersUsed: Int
    var maxPerOffer: Int
    var failed: Int
    /// Median time from a task's launch (Accept sent) to its TASK_FINISHED arriving.
    var launchToFinishedP50: Double

    /// Registers a framework and launches `tasks` tasks, as many per offer as fit.
    static func run(
        tasks total: Int, program: String, cpus: Double, mem: Double, cluster: BenchCluster, timeout: Duration
    ) async throws -> LaunchRun {
        let frameworkInfo = Keel_V1_FrameworkInfo.with {
            $0.name = "keel-bench launch"
            $0.user = String(cString: getpwuid(geteuid()).pointee.pw_name)
            $0.roles = ["*"]
        }
        let driver = SchedulerDriver(configuration: .init(
            registry: "127.0.0.1:\(cluster.basePort + 2)", broker: "127.0.0.1:\(cluster.basePort)",
            frameworkInfo: frameworkInfo))
        return try await driver.run { session in
            try await withThrowingTaskGroup(of: LaunchRun?.self) { group in
                group.addTask {
                    try await Task.sleep(for: timeout)
                    throw ValidationError("the tasks did not all finish within \(timeout)")
                }
                group.addTask {
                    try await drive(session, total: total, program: program, cpus: cpus, mem: mem)
                }
                defer { group.cancelAll() }
                while let result = try await group.next() {
                    if let result {
                        try? await session.teardown()
                        return result
                    }
                }
                throw ValidationError("the framework's event stream ended early")
            }
        }
    }

    private static func drive(
        _ session: SchedulerSession, total: Int, program: String, cpus: Double, mem: Double
    ) async throws -> LaunchRun {
        var launched = 0
        var suppressed = false
        var ended = 0
        var failed = 0
        var offersUsed = 0
        var maxPerOffer = 0
        var firstLaunch: ContinuousClock.Instant?
        var launchTimes: [String: ContinuousClock.Instant] = [:]
        var latencies: [Double] = []
        for try await event in session.events {
            switch event {
            case .offers(let offers):
                var unused: [Keel_V1_Offer] = []
                for offer in offers {
                    let fit = Int(min((offer.scalar("cpus") + 1e-9) / cpus, (offer.scalar("mem") + 1e-9) / mem))
                    let count = min(fit, total - launched)
                    guard count > 0 else {
                        unused.append(offer)
                        continue
                    }
                    let infos = (0..<count).map { index in
                        Keel_V1_TaskInfo.with {
                            $0.name = "bench"
                            $0.taskID.value = "bench-\(launched + index)"
                            $0.agentID = offer.agentID
                            $0.resources = [.scalar("cpus", cpus), .scalar("mem", mem)]
                            $0.command.argv.args = [program]
                        }
                    }
                    let now = ContinuousClock.now
                    if firstLaunch == nil { firstLaunch = now }
                    for info in infos { launchTimes[info.taskID.value] = now }
                    launched += count
                    offersUsed += 1
                    maxPerOffer = max(maxPerOffer, count)
                    // Unused resources come back at the next offer cycle (no long filter).
                    try await session.launch(infos, on: [offer], refuseSeconds: 0)
                }
                if !unused.isEmpty { try await session.decline(unused, refuseSeconds: launched < total ? 0 : 3600) }
                // With every task launched, no more offers are wanted: as a framework with nothing
                // left to launch should, it suppresses them instead of declining each one.
                if launched == total, !suppressed {
                    try await session.suppress()
                    suppressed = true
                }
            case .update(let status):
                try await session.acknowledge(status)
                guard status.state.isTerminal else { continue }
                ended += 1
                if status.state != .taskFinished { failed += 1 }
                if let start = launchTimes.removeValue(forKey: status.taskID.value) {
                    latencies.append(Self.seconds(ContinuousClock.now - start))
                }
                if ended == total, let firstLaunch {
                    latencies.sort()
                    return LaunchRun(
                        seconds: Self.seconds(ContinuousClock.now - firstLaunch), offersUsed: offersUsed,
                        maxPerOffer: maxPerOffer, failed: failed,
                        launchToFinishedP50: latencies.isEmpty ? 0 : latencies[latencies.count / 2])
                }
            default:
                continue
            }
        }
        throw ValidationError("the framework's event stream ended after \(ended) of \(total) tasks")
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
}

/// CPU time (user + system) of this process and of its reaped children, in seconds.
enum CPUTime {
    static func own() -> Double { seconds(RUSAGE_SELF) }
    static func children() -> Double { seconds(RUSAGE_CHILDREN) }

    private static func seconds(_ who: __rusage_who) -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(who.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1_000_000
    }
}
