import ArgumentParser
import Foundation
import GRPCCore
import KeelAPI
import KeelRPC
import SwiftProtobuf

/// `keel ls TASK [PATH]`: the files of a task's sandbox (or of a directory in it).
struct ListSandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the files in a task's sandbox.")

    @OptionGroup var cluster: ClusterOptions

    @Argument(help: "The task id.")
    var task: String

    @Argument(help: "A directory relative to the sandbox; the sandbox root if omitted.")
    var path = ""

    func run() async throws {
        let launcher = try await LauncherLocator.launcher(forTask: task, broker: try cluster.brokerEndpoint())
        let request = Keel_V1_ListFilesRequest.with {
            $0.taskID.value = task
            $0.path = path
        }
        let response = try await withKeelClient(launcher) { client in
            try await Keel_V1_Launcher.Client(wrapping: client).listFiles(request)
        }
        if cluster.json {
            try Output.json(response)
            return
        }
        let formatter = ISO8601DateFormatter()
        Output.table(
            ["MODE", "SIZE", "MODIFIED", "PATH"],
            response.files.map { file in
                [
                    String(file.mode & 0o7777, radix: 8), "\(file.size)",
                    formatter.string(from: file.modifiedAt.date), file.path + (file.isDirectory ? "/" : ""),
                ]
            })
    }
}

/// `keel cat TASK PATH`: a file of a task's sandbox, to standard output.
struct CatSandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cat", abstract: "Print a file from a task's sandbox.")

    @OptionGroup var cluster: ClusterOptions

    @Argument(help: "The task id.")
    var task: String

    @Argument(help: "A file relative to the sandbox, e.g. stdout.")
    var path: String

    func run() async throws {
        let launcher = try await LauncherLocator.launcher(forTask: task, broker: try cluster.brokerEndpoint())
        let task = self.task
        let path = self.path
        try await withKeelClient(launcher) { client in
            let launcher = Keel_V1_Launcher.Client(wrapping: client)
            var offset: UInt64 = 0
            while true {
                let request = Keel_V1_ReadFileRequest.with {
                    $0.taskID.value = task
                    $0.path = path
                    $0.offset = offset
                }
                let chunk = try await launcher.readFile(request)
                if chunk.data.isEmpty { break }
                FileHandle.standardOutput.write(chunk.data)
                offset += UInt64(chunk.data.count)
                if offset >= chunk.size { break }
            }
        }
    }
}
