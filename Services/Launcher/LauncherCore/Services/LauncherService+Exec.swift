import Foundation
package import GRPCCore
package import KeelAPI
import KeelCore
import KeelRPC
import Logging
import SwiftProtobuf

extension LauncherService {
    /// `Exec`: runs an operator's command inside a running task (see ``TaskExecTarget``) and
    /// streams its output and exit status back; the command is killed if the call ends first.
    package func exec(
        request: RPCAsyncSequence<Keel_V1_ExecInput, any Error>,
        response: RPCWriter<Keel_V1_ExecOutput>,
        context: ServerContext
    ) async throws {
        try await mappingLauncherErrors {
            // The request is read by a child task and handed over through this stream, so that
            // the end of the command can end the handler even while the client keeps its side open.
            let (inputs, inputContinuation) = AsyncThrowingStream.makeStream(of: Keel_V1_ExecInput.self)
            try await withThrowingTaskGroup(of: ExecPart.self) { group in
                group.addTask {
                    do {
                        for try await input in request { inputContinuation.yield(input) }
                        inputContinuation.finish()
                    } catch {
                        inputContinuation.finish(throwing: error)
                    }
                    return .request
                }
                defer { group.cancelAll() }
                var iterator = inputs.makeAsyncIterator()
                guard let first = try await iterator.next(), case .start(let start) = first.input else {
                    throw KeelError.invalidArgument("the first message of Exec must be `start`, naming the task and command")
                }
                let session = try startExec(start)
                if !start.stdin { session.closeStdin() }
                group.addTask {
                    // Ends the stdin loop below, whatever the client does with its side.
                    defer { inputContinuation.finish() }
                    try await self.streamExec(session, to: response)
                    return .output
                }
                group.addTask {
                    // The client went away (or the server is stopping): kill the command.
                    try await context.cancellation.cancelled
                    await session.process.terminate(gracePeriod: .milliseconds(500))
                    return .cancellation
                }
                group.addTask {
                    // A descendant that left the process group may hold the pipes open: stop
                    // reading shortly after the command itself has ended.
                    _ = await session.process.waitForExit(cancellable: true)
                    try await Task.sleep(for: .seconds(1))
                    session.stopReading()
                    return .drain
                }
                do {
                    while let input = try await iterator.next() {
                        switch input.input {
                        case .stdin(let data) where start.stdin:
                            try? await session.writeStdin(Array(data))
                        case .closeStdin:
                            session.closeStdin()
                        case .start:
                            throw KeelError.invalidArgument("Exec takes one `start` message, the first")
                        case .stdin, nil:
                            continue
                        }
                    }
                    session.closeStdin()
                    // Done once the output and the exit status are sent.
                    while let part = try await group.next(), part != .output {}
                } catch {
                    session.stopReading()
                    await session.process.terminate(gracePeriod: .milliseconds(500))
                    throw error
                }
            }
        }
    }

    /// The concurrent parts of one Exec call.
    private enum ExecPart: Sendable {
        case request, output, cancellation, drain
    }

    /// Validates the start message and spawns the command in its task.
    private func startExec(_ start: Keel_V1_ExecStart) throws -> ExecSession {
        let taskID = start.taskID.value
        guard !taskID.isEmpty else { throw KeelError.invalidArgument("task_id is empty; name the task to exec into") }
        guard let program = start.command.first, !program.isEmpty else {
            throw KeelError.invalidArgument("the command is empty; give the program to run and its arguments")
        }
        guard let container = tasks.container(taskID: taskID) else {
            throw KeelError.notFound("task \(taskID) is not known on this node; `keel tasks` lists the tasks and their agents")
        }
        guard !container.state.isTerminal else {
            throw KeelError.failedPrecondition(
                "task \(taskID) has ended (\(container.state)); exec needs a running task")
        }
        guard let sandbox = container.sandbox, let process = container.process, process.terminationStatus == nil else {
            throw KeelError.failedPrecondition("task \(taskID) is not running yet (\(container.state)); try again once it runs")
        }
        var environment = tasks.environment(for: container.info, frameworkID: container.frameworkID, sandbox: sandbox)
        environment["KEEL_EXEC"] = "1"
        let target = try TaskExecTarget(
            command: start.command, environment: environment, sandbox: sandbox,
            user: container.info.command.user.isEmpty ? nil : container.info.command.user,
            cgroup: process.cgroup,
            taskPID: TaskExecTarget.taskPID(leader: process.pid, cgroup: process.cgroup))
        var logger = Logger(label: "keel-launcher.exec")
        logger[metadataKey: "keel.task_id"] = "\(taskID)"
        if !target.namespaces.isEmpty { logger[metadataKey: "keel.namespaces"] = "\(target.namespaces)" }
        return try ExecSession(target, logger: logger)
    }

    /// Sends the command's output as it comes, then its exit status.
    private func streamExec(_ session: ExecSession, to response: RPCWriter<Keel_V1_ExecOutput>) async throws {
        do {
            for await chunk in session.output {
                switch chunk {
                case .stdout(let bytes): try await response.write(.with { $0.stdout = Data(bytes) })
                case .stderr(let bytes): try await response.write(.with { $0.stderr = Data(bytes) })
                }
                session.consumed(chunk)
            }
        } catch {
            session.stopReading()
            throw error
        }
        let status = await session.process.waitForExit(cancellable: false) ?? .unknown
        try await response.write(.with {
            $0.exit = .with {
                switch status {
                case .exited(let code): $0.exitCode = code
                case .signaled(let signal, _): $0.signal = signal
                case .unknown: $0.exitCode = -1
                }
            }
        })
    }
}
