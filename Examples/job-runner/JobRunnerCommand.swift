import ArgumentParser
import KeelAPI
import KeelSDK

/// `keel-job-runner`: runs a command as N tasks on Keel, at most P at a time, retrying failures.
@main
struct JobRunnerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keel-job-runner",
        abstract: "Run a command as N tasks on a Keel cluster, at most P at a time, retrying each failed task up to R times.",
        discussion: """
            Each task sees KEEL_JOB_INDEX (0..<N) and KEEL_JOB_ATTEMPT (1, 2, ...) in its environment. \
            Prints a summary and exits with 1 if any task finally failed.
            """
    )

    @Option(name: .shortAndLong, help: "How many tasks to run.")
    var tasks = 1

    @Option(name: .shortAndLong, help: "How many tasks may run at once.")
    var parallel = 2

    @Option(name: .shortAndLong, help: "How many times a failed task is run again.")
    var retries = 2

    @Option(help: "CPUs per task.")
    var cpus = 0.1

    @Option(help: "Memory per task, MiB.")
    var mem = 32.0

    @Option(help: "keel-registry address.")
    var registry = "127.0.0.1:5052"

    @Option(help: "keel-broker address.")
    var broker = "127.0.0.1:5050"

    @Flag(help: "Run the command with /bin/sh -c (give it as one argument).")
    var shell = false

    @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (after --).")
    var command: [String]

    func validate() throws {
        guard tasks > 0, parallel > 0, retries >= 0 else {
            throw ValidationError("--tasks and --parallel must be positive and --retries not negative")
        }
        guard !command.isEmpty, command != ["--"] else { throw ValidationError("give the command to run after --") }
    }

    func run() async throws {
        let job = JobRunner.Job(
            command: command.first == "--" ? Array(command.dropFirst()) : command, shell: shell, tasks: tasks,
            parallel: parallel, retries: retries, request: ResourceRequest(cpus: cpus, mem: mem)
        )
        let results = try await JobRunner(job: job, registry: registry, broker: broker).run()
        var failed = 0
        for result in results {
            let ok = result.state == .taskFinished
            if !ok { failed += 1 }
            print("task \(result.index): \(result.state) after \(result.attempts) attempt(s)\(result.message.isEmpty ? "" : ": \(result.message)")")
        }
        print("\(results.count - failed) of \(results.count) tasks finished, \(failed) failed")
        if failed > 0 { throw ExitCode(1) }
    }
}
