import Foundation
package import GRPCCore
package import KeelAPI
import Logging
import KeelCore
import KeelRPC
import ServiceLifecycle
import SwiftProtobuf

/// The `keel.v1.Launcher` gRPC service of a node: sandbox files and logs, containers, liveness
/// pings and command checks.
package struct LauncherService: Keel_V1_Launcher.SimpleServiceProtocol {
    let tasks: TaskManager
    private let identity: AgentIdentity

    /// Creates the service.
    package init(tasks: TaskManager, identity: AgentIdentity) {
        self.tasks = tasks
        self.identity = identity
    }

    package func listFiles(request: Keel_V1_ListFilesRequest, context: ServerContext) async throws -> Keel_V1_ListFilesResponse {
        try await mappingLauncherErrors {
            let sandbox = try sandbox(for: request.taskID.value)
            let entries = try sandbox.list(path: request.path)
            return .with {
                $0.files = entries.map { entry in
                    .with {
                        $0.path = entry.relativePath
                        $0.size = UInt64(max(0, entry.size))
                        $0.mode = entry.mode
                        $0.isDirectory = entry.isDirectory
                        $0.modifiedAt = Google_Protobuf_Timestamp(seconds: entry.mtime)
                    }
                }
            }
        }
    }

    package func readFile(request: Keel_V1_ReadFileRequest, context: ServerContext) async throws -> Keel_V1_ReadFileResponse {
        try await mappingLauncherErrors {
            guard !request.path.isEmpty else {
                throw KeelError.invalidArgument("path is empty; name a file in the sandbox, e.g. stdout")
            }
            let sandbox = try sandbox(for: request.taskID.value)
            let length = request.length == 0 ? 1 << 20 : Int(min(request.length, UInt64(TaskSandbox.maxReadLength)))
            let chunk = try sandbox.read(path: request.path, offset: Int64(clamping: request.offset), length: length)
            return .with {
                $0.data = Data(chunk.data)
                $0.offset = UInt64(chunk.offset)
                $0.size = UInt64(chunk.fileSize)
            }
        }
    }

    package func tailLog(
        request: Keel_V1_TailLogRequest,
        response: RPCWriter<Keel_V1_LogChunk>,
        context: ServerContext
    ) async throws {
        try await mappingLauncherErrors {
            let path: String
            switch request.stream {
            case .stderr: path = "stderr"
            case .stdout, .unspecified, .UNRECOGNIZED: path = "stdout"
            }
            let sandbox = try sandbox(for: request.taskID.value)
            // Follows the file across rotations by keel-task-supervisor (stdout → stdout.1).
            let follower =
                try request.lastBytes > 0
                ? SandboxLogFollower(sandbox: sandbox, path: path, lastBytes: Int64(clamping: request.lastBytes))
                : SandboxLogFollower(sandbox: sandbox, path: path)
            while true {
                // Read the state first so output written just before the end is not missed.
                let ended = tasks.container(taskID: request.taskID.value)?.state.isTerminal ?? true
                while true {
                    let chunk = try follower.next(length: 64 * 1024)
                    guard !chunk.data.isEmpty else { break }
                    try await response.write(.with {
                        $0.data = Data(chunk.data)
                        $0.offset = UInt64(chunk.offset)
                    })
                }
                if !request.follow || ended {
                    try await response.write(.with {
                        $0.offset = UInt64(follower.offset)
                        $0.endOfLog = ended
                    })
                    return
                }
                try await Task.sleep(for: .milliseconds(200))
                if Task.isShuttingDownGracefully { return }
            }
        }
    }

    package func listContainers(
        request: Keel_V1_ListContainersRequest,
        context: ServerContext
    ) async throws -> Keel_V1_ListContainersResponse {
        let snapshot = tasks.snapshot
        return .with {
            $0.containers = snapshot.sorted { $0.key.description < $1.key.description }.map { key, container in
                .with {
                    $0.frameworkID.value = key.frameworkID
                    $0.taskID.value = key.taskID
                    $0.sandbox = container.sandbox?.root ?? ""
                    $0.pid = container.process?.pid ?? 0
                    $0.state = container.state
                    $0.resources = container.info.resources
                    $0.startedAt = Google_Protobuf_Timestamp(date: container.startedAt)
                }
            }
        }
    }

    package func ping(request: Keel_V1_PingRequest, context: ServerContext) async throws -> Keel_V1_PingResponse {
        let running = tasks.snapshot.values.filter { !$0.state.isTerminal }.count
        return .with {
            $0.agentID.value = identity.agentID ?? ""
            $0.time = Google_Protobuf_Timestamp(date: Date())
            $0.runningTasks = UInt32(running)
        }
    }

    package func runCommandCheck(
        request: Keel_V1_RunCommandCheckRequest,
        context: ServerContext
    ) async throws -> Keel_V1_RunCommandCheckResponse {
        try await mappingLauncherErrors {
            guard let container = tasks.container(taskID: request.taskID.value), let sandbox = container.sandbox else {
                throw KeelError.notFound("task \(request.taskID.value) is not running on this node")
            }
            let command: TaskCommand
            switch request.command.command {
            case .argv(let argv) where !argv.args.isEmpty: command = .argv(argv.args)
            case .shell(let shell) where !shell.isEmpty: command = .shell(shell)
            default: throw KeelError.invalidArgument("the check has no command; set command.argv or command.shell")
            }
            let timeout: Duration = request.hasTimeout
                ? .seconds(request.timeout.seconds) + .nanoseconds(Int64(request.timeout.nanos))
                : .seconds(20)
            let outputPath = sandbox.root + "/.health-check-output"
            let spec = TaskLaunchSpec(
                command: command,
                environment: [
                    "PATH": TaskLaunchSpec.defaultSearchPath, "KEEL_TASK_ID": request.taskID.value, "KEEL_SANDBOX": sandbox.root,
                ],
                workingDirectory: sandbox.root,
                stdoutPath: outputPath,
                stderrPath: outputPath,
                user: container.info.command.user.isEmpty ? nil : container.info.command.user
            )
            try? FileManager.default.removeItem(atPath: outputPath)
            let process = try TaskProcess.launch(spec, logger: .init(label: "keel-launcher.check"))
            let status = try await withThrowingTaskGroup(of: TerminationStatus?.self) { group in
                group.addTask { try await process.wait() }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                let first = try await group.next() ?? nil
                group.cancelAll()
                return first
            }
            let timedOut = status == nil
            let final: TerminationStatus
            if let status {
                final = status
            } else {
                final = await process.terminate(gracePeriod: .milliseconds(100))
            }
            let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            return .with {
                if case .exited(let code) = final { $0.exitCode = code } else { $0.exitCode = -1 }
                $0.timedOut = timedOut
                $0.output = String(output.prefix(1024))
            }
        }
    }

    private func sandbox(for taskID: String) throws -> TaskSandbox {
        guard !taskID.isEmpty else { throw KeelError.invalidArgument("task_id is empty; say whose sandbox to read") }
        guard let container = tasks.container(taskID: taskID) else {
            throw KeelError.notFound("task \(taskID) is not known on this node")
        }
        guard let sandbox = container.sandbox else {
            throw KeelError.failedPrecondition("task \(taskID) has no sandbox yet; it is still being prepared")
        }
        return sandbox
    }
}

/// Maps launcher and Keel errors to gRPC statuses.
func mappingLauncherErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as LauncherError {
        let code: RPCError.Code
        switch error.code {
        case .invalidArgument: code = .invalidArgument
        case .notFound: code = .notFound
        case .permissionDenied: code = .permissionDenied
        default: code = .internalError
        }
        throw RPCError(code: code, message: error.message)
    } catch let error as KeelError {
        throw error.rpcError
    }
}
