import ArgumentParser
import Foundation
import UnixSignals

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `keel up`: a whole local cluster (tracer, registry, broker, launcher, health checker) as child
/// processes with their state under one data directory, until Ctrl-C or SIGTERM.
struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start a local Keel cluster: all five daemons, stopped together on Ctrl-C.",
        discussion: """
            Ports, from --base-port B (default 5050): broker B (admin B+1), registry B+2 (B+3), \
            launcher B+4 (B+5), health B+6 (B+7), tracer B+8 (B+9). Daemon logs go to \
            DATA_DIR/logs/NAME.log; DATA_DIR/endpoints.json lists the endpoints once all are ready. \
            With KEEL_EXIT_WITH_PARENT=1 the cluster stops when the process that started keel up exits.
            """
    )

    @Option(help: "Directory for the daemons' state and logs. [env: KEEL_DATA_DIR] (default: ./.keel)")
    var dataDir: String?

    @Option(help: "First of the ten ports the cluster uses.")
    var basePort: Int = 5050

    @Option(help: "Resources the local launcher offers, e.g. 'cpus:2;mem:2048'. (default: detected)")
    var resources: String?

    @Option(help: "Log level of the daemons.")
    var logLevel: String = "info"

    @Flag(help: "Print the endpoints as JSON (the content of DATA_DIR/endpoints.json) instead of a table.")
    var json = false

    @Option(help: "Seconds to wait for every daemon to become ready.")
    var startTimeout: Int = 120

    func validate() throws {
        guard (1024...65525).contains(basePort) else {
            throw ValidationError("--base-port must be between 1024 and 65525 (the cluster uses ten ports from it)")
        }
    }

    func run() async throws {
        let directory = dataDir ?? ProcessInfo.processInfo.environment["KEEL_DATA_DIR"] ?? ".keel"
        let cluster = try LocalCluster(
            dataDir: URL(fileURLWithPath: directory).standardizedFileURL.path,
            basePort: basePort,
            launcherResources: resources,
            logLevel: logLevel
        )
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        do {
            try await cluster.start(timeout: .seconds(startTimeout))
        } catch {
            Output.note("keel up: \(error)")
            await cluster.stop()
            throw ExitCode.failure
        }
        if json {
            print(cluster.endpointsJSON())
        } else {
            print(cluster.summary())
            print("Press Ctrl-C to stop.")
        }
        let reason = await withTaskGroup(of: String.self) { group in
            group.addTask {
                for await signal in signals { return "received \(signal)" }
                return "signal stream ended"
            }
            group.addTask { await cluster.waitForAnyExit() }
            if ProcessInfo.processInfo.environment["KEEL_EXIT_WITH_PARENT"] == "1" {
                // Started by a test or a supervisor: never outlive it.
                group.addTask {
                    let parent = getppid()
                    while !Task.isCancelled && getppid() == parent {
                        try? await Task.sleep(for: .milliseconds(500))
                    }
                    return "the parent process exited"
                }
            }
            let first = await group.next() ?? "stopping"
            group.cancelAll()
            return first
        }
        Output.note("keel up: \(reason); stopping the cluster")
        await cluster.stop()
        Output.note("keel up: stopped")
    }
}
