import Foundation
import KeelAPI
import KeelRPC
import LauncherCore
import SwiftProtobuf
import Testing

/// Tasks with URIs through the launcher's task manager: the artifact is in the sandbox before the
/// command starts, and a failed fetch ends the task TASK_FAILED with REASON_FETCHER_FAILED.
@Suite("Fetching a task's URIs")
struct TaskFetchTests {
    @Test("the command sees its fetched, executable artifact; a 404 fails the task with REASON_FETCHER_FAILED; only tasks that fetch report TASK_STARTING")
    func fetchBeforeStart() async throws {
        let workDir = FileManager.default.temporaryDirectory.appendingPathComponent("keel-task-fetch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: workDir) }
        try FileManager.default.createDirectory(at: workDir, withIntermediateDirectories: true)
        let script = Data("#!/bin/sh\nexit 7\n".utf8)
        try await FileServer.with(files: ["tool.sh": script]) { server in
            let launcher = try LauncherUnderTest(workDir: workDir.path)
            try await launcher.running {
                launcher.manager.launch(framework: TaskRecoveryTests.framework, task: .with {
                    $0.taskID.value = "uses-tool"
                    $0.command.argv.args = ["./tool.sh"]
                    $0.command.uris = [.with {
                        $0.value = server.url("tool.sh")
                        $0.executable = true
                        $0.cache = true
                    }]
                })
                launcher.manager.launch(framework: TaskRecoveryTests.framework, task: .with {
                    $0.taskID.value = "missing"
                    $0.command.argv.args = ["true"]
                    $0.command.uris = [.with { $0.value = server.url("missing.tgz") }]
                })
                launcher.manager.launch(framework: TaskRecoveryTests.framework, task: .with {
                    $0.taskID.value = "nothing-to-fetch"
                    $0.command.argv.args = ["true"]
                })
                let ran = await launcher.waitForUpdate(TaskRecoveryTests.key("uses-tool")) { $0.state.isTerminal }
                #expect(ran?.state == .taskFailed)
                #expect(ran?.exitCode == 7, "the fetched script ran: \(String(describing: ran))")
                let failed = await launcher.waitForUpdate(TaskRecoveryTests.key("missing")) { $0.state.isTerminal }
                #expect(failed?.state == .taskFailed)
                #expect(failed?.reason == .fetcherFailed)
                #expect(failed?.message.contains("404") == true, "\(String(describing: failed?.message))")
                let finished = await launcher.waitForUpdate(TaskRecoveryTests.key("nothing-to-fetch")) { $0.state.isTerminal }
                #expect(finished?.state == .taskFinished)
                // Nothing acknowledges here, so every update of a task is still pending, in order.
                func states(_ id: String) -> [Keel_V1_TaskState] {
                    launcher.updates.pending(TaskRecoveryTests.key(id)).map(\.state)
                }
                #expect(states("uses-tool") == [.taskStarting, .taskRunning, .taskFailed])
                #expect(states("missing") == [.taskStarting, .taskFailed])
                #expect(states("nothing-to-fetch") == [.taskRunning, .taskFinished])
                #expect(launcher.updates.pending(TaskRecoveryTests.key("uses-tool")).first?.message.contains("fetching 1 URIs") == true)
            }
            #expect(server.requests("tool.sh") == 1)
        }
    }
}
