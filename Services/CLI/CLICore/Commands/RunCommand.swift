import ArgumentParser
import Foundation
import GRPCCore
import KeelAPI
import KeelRPC
import KeelSDK
import SwiftProtobuf
import Synchronization
import UnixSignals

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `keel run -- CMD ARGS...`: a transient framework that runs one task and exits with its exit
/// code, like `mesos-execute`. States go to stderr, the task's stdout to stdout.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run one task on the cluster and wait for it; exits with the task's exit code.",
        discussion: "Example: keel run --cpus 0.5 --mem 128 -- python3 -c 'print(42)'"
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "CPUs for the task.")
    var cpus: Double = 0.1

    @Option(help: "Memory for the task, in MiB.")
    var mem: Double = 64

    @Option(help: "Ports for the task (PORT0.. in its environment).")
    var ports: Int = 0

    @Option(help: "The task's name (and the prefix of its id).")
    var name: String = "keel-run"

    @Flag(help: "Run the command with /bin/sh -c (the arguments are joined with spaces).")
    var shell = false

    @Option(help: "Seconds the task gets between SIGTERM and SIGKILL when killed.")
    var gracePeriod: Int64 = 3

    @Option(parsing: .upToNextOption, help: "Environment variables for the task, NAME=VALUE.")
    var env: [String] = []

    @Option(help: "HTTP health check: GET this path on PORT0 (needs --ports 1 or more).")
    var healthHTTP: String?

    @Flag(help: "TCP health check: connect to PORT0 (needs --ports 1 or more).")
    var healthTCP = false

    @Option(help: "Command health check: run this shell command in the task's sandbox; exit 0 is healthy.")
    var healthCommand: String?

    @Option(help: "Seconds between health checks.")
    var healthInterval: Double = 10

    @Option(help: "Failures in a row before the task counts as unhealthy.")
    var healthFailures: UInt32 = 3

    @Option(help: "The principal to register as when the registry requires credentials; its secret is read from the KEEL_SECRET variable, never from the command line. [env: KEEL_PRINCIPAL]")
    var principal: String?

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (after --).")
    var command: [String] = []

    func validate() throws {
        let args = command.first == "--" ? Array(command.dropFirst()) : command
        guard !args.isEmpty else { throw ValidationError("no command given: write keel run -- COMMAND [ARGS...]") }
        guard cpus > 0, cpus.isFinite else { throw ValidationError("--cpus must be a positive number") }
        guard mem > 0, mem.isFinite else { throw ValidationError("--mem must be a positive number of MiB") }
        guard (0...100).contains(ports) else { throw ValidationError("--ports must be between 0 and 100") }
        let checks = [healthHTTP != nil, healthTCP, healthCommand != nil].filter { $0 }.count
        guard checks <= 1 else { throw ValidationError("give at most one of --health-http, --health-tcp, --health-command") }
        if (healthHTTP != nil || healthTCP) && ports < 1 {
            throw ValidationError("--health-http and --health-tcp check PORT0: add --ports 1")
        }
        guard healthInterval > 0, healthInterval.isFinite else { throw ValidationError("--health-interval must be positive") }
        for pair in env where !pair.contains("=") {
            throw ValidationError("--env '\(pair)' is not NAME=VALUE")
        }
    }

    func run() async throws {
        let args = command.first == "--" ? Array(command.dropFirst()) : command
        let taskID = "\(name)-\(UUID().uuidString.prefix(8).lowercased())"
        let frameworkInfo = Keel_V1_FrameworkInfo.with {
            $0.name = "keel run \(name)"
            $0.user = currentUser()
            $0.roles = ["*"]
            $0.hostname = ProcessInfo.processInfo.hostName
            $0.capabilities = [.with { $0.type = .taskKillingState }]
        }
        let driver = SchedulerDriver(configuration: .init(
            registry: try cluster.registryEndpoint().description,
            broker: try cluster.brokerEndpoint().description,
            frameworkInfo: frameworkInfo,
            credential: try CLICredential.resolve(principal: principal),
            // A broker that stays away for about a minute ends the run instead of hanging it.
            reconnect: ReconnectPolicy(initialDelay: .milliseconds(100), maxDelay: .seconds(5), maxConsecutiveFailures: 20)
        ))
        let brokerEndpoint = try cluster.brokerEndpoint()
        let json = cluster.json
        let request = TaskRequest(
            taskID: taskID, name: name, args: args, shell: shell, cpus: cpus, mem: mem, ports: ports,
            gracePeriod: gracePeriod, environment: env, healthCheck: healthCheck()
        )
        let exitCode = try await driver.run { session in
            try await RunSession(session: session, request: request, broker: brokerEndpoint, json: json).run()
        }
        throw ExitCode(exitCode)
    }

    private func healthCheck() -> Keel_V1_HealthCheck? {
        guard healthHTTP != nil || healthTCP || healthCommand != nil else { return nil }
        let interval = healthInterval
        return .with {
            if let path = healthHTTP {
                $0.type = .http
                $0.http.path = path
            } else if healthTCP {
                $0.type = .tcp
            } else if let command = healthCommand {
                $0.type = .command
                $0.command.command.shell = command
            }
            $0.interval = Google_Protobuf_Duration(seconds: Int64(interval), nanos: Int32((interval - interval.rounded(.down)) * 1e9))
            $0.timeout = Google_Protobuf_Duration(seconds: 5)
            $0.consecutiveFailures = healthFailures
        }
    }

    private func currentUser() -> String {
        guard let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name else { return "root" }
        return String(cString: name)
    }
}

/// What `keel run` asks for.
struct TaskRequest: Sendable {
    var taskID: String
    var name: String
    var args: [String]
    var shell: Bool
    var cpus: Double
    var mem: Double
    var ports: Int
    var gracePeriod: Int64
    var environment: [String]
    var healthCheck: Keel_V1_HealthCheck?

    func taskInfo(on offer: Keel_V1_Offer) -> Keel_V1_TaskInfo {
        .with {
            $0.name = name
            $0.taskID.value = taskID
            $0.agentID = offer.agentID
            var resources: [Keel_V1_Resource] = [.scalar("cpus", cpus), .scalar("mem", mem)]
            if ports > 0 {
                var chosen: [ClosedRange<UInt64>] = []
                var remaining = UInt64(ports)
                for range in offer.portRanges where remaining > 0 {
                    let count = min(remaining, range.upperBound - range.lowerBound + 1)
                    chosen.append(range.lowerBound...(range.lowerBound + count - 1))
                    remaining -= count
                }
                resources.append(.ranges("ports", chosen))
            }
            $0.resources = resources
            if shell {
                $0.command.shell = args.joined(separator: " ")
            } else {
                $0.command.argv.args = args
            }
            $0.command.environment.variables = environment.map { pair in
                let parts = pair.split(separator: "=", maxSplits: 1)
                return .with {
                    $0.name = String(parts[0])
                    $0.value = parts.count > 1 ? String(parts[1]) : ""
                }
            }
            $0.killPolicy.gracePeriod = Google_Protobuf_Duration(seconds: gracePeriod)
            if var check = healthCheck {
                // HTTP and TCP checks probe the task's first port.
                if let port = $0.resources.first(where: { $0.name == "ports" })?.ranges.range.first?.begin {
                    if check.type == .http { check.http.port = UInt32(port) }
                    if check.type == .tcp { check.tcp.port = UInt32(port) }
                }
                $0.healthCheck = check
            }
        }
    }

    func fits(_ offer: Keel_V1_Offer) -> Bool {
        let portCount = offer.portRanges.reduce(UInt64(0)) { $0 + ($1.upperBound - $1.lowerBound + 1) }
        return offer.fits(cpus: cpus, mem: mem) && portCount >= UInt64(ports)
    }
}
