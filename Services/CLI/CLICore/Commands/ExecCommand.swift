import ArgumentParser
import Foundation
import GRPCCore
import KeelAPI
import KeelRPC
import SwiftProtobuf

/// `keel exec TASK -- CMD ARGS...`: runs a command inside a running task (its cgroups, user,
/// sandbox, environment and namespaces) and exits with the command's exit status.
struct ExecCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run a command inside a running task; exits with the command's exit code.",
        discussion: """
            The command runs on the task's agent, in the task's cgroups (it counts against the \
            task's limits), as the task's user, in its sandbox, with its environment (plus \
            KEEL_EXEC=1), and in its PID and mount namespaces when it has its own. It is killed \
            if keel exec is interrupted. A command ended by signal N exits with 128+N.
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @Flag(name: .shortAndLong, help: "Pass this terminal's standard input to the command (otherwise it reads nothing).")
    var interactive = false

    @Argument(help: "The task id.")
    var task: String

    @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.")
    var command: [String] = []

    func validate() throws {
        guard !command.isEmpty else { throw ValidationError("give the command after --, e.g. keel exec TASK -- ls -l") }
    }

    func run() async throws {
        let launcher = try await LauncherLocator.launcher(forTask: task, broker: try cluster.brokerEndpoint())
        let interactive = self.interactive
        let start = Keel_V1_ExecInput.with {
            $0.start = .with {
                $0.taskID.value = task
                $0.command = command
                $0.stdin = interactive
            }
        }
        let exit = try await withKeelClient(launcher) { client in
            try await Keel_V1_Launcher.Client(wrapping: client).exec(
                requestProducer: { writer in
                    try await writer.write(start)
                    guard interactive else { return }
                    for try await chunk in StandardInput.chunks() {
                        try await writer.write(.with { $0.stdin = chunk })
                    }
                    try await writer.write(.with { $0.closeStdin = true })
                },
                onResponse: { response -> Keel_V1_ExecOutput.Exit? in
                    for try await output in response.messages {
                        switch output.output {
                        case .stdout(let data): FileHandle.standardOutput.write(data)
                        case .stderr(let data): FileHandle.standardError.write(data)
                        case .exit(let exit): return exit
                        case nil: continue
                        }
                    }
                    return nil
                }
            )
        }
        guard let exit else {
            throw ValidationError("the launcher ended the exec without an exit status")
        }
        let code = exit.signal != 0 ? 128 + exit.signal : exit.exitCode
        if code != 0 { throw ExitCode(code) }
    }
}

/// This process's standard input as chunks, read on a dedicated thread.
enum StandardInput {
    /// The chunks until end of file.
    static func chunks() -> AsyncStream<Data> {
        let (stream, continuation) = AsyncStream.makeStream(of: Data.self)
        let thread = Thread {
            while true {
                let data = FileHandle.standardInput.availableData
                if data.isEmpty { break }
                continuation.yield(data)
            }
            continuation.finish()
        }
        thread.start()
        return stream
    }
}
