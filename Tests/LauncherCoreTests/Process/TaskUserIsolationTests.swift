import Foundation
@preconcurrency import Glibc
import KeelAPI
import KeelRPC
import LauncherCore
import SwiftProtobuf
import Testing

@Suite("Tasks run as their user with no privileges left", .enabled(if: geteuid() == 0, "switching users needs root"))
struct TaskUserIsolationTests {
    /// The `Key:\tvalue` lines of a `/proc/PID/status` dump.
    static func statusFields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return fields
    }

    /// The groups `name` gets from the group database (what `--init-groups` gives), as `id -G` says.
    static func groups(of name: String) throws -> Set<String> {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/id")
        process.arguments = ["-G", name]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return Set(text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
    }

    @Test("the task has the user's ids and groups only, no capabilities in any set, and no_new_privs")
    func dropsEverything() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let nobody = try TaskUser.lookup(name: "nobody")
        try sandbox.setOwner(nobody)
        let process = try ProcessTestSupport.launch(.argv(["cat", "/proc/self/status"]), in: sandbox, user: "nobody")
        let status = try await process.wait()
        let output = ProcessTestSupport.contents(sandbox.stdoutPath) ?? ""
        #expect(status == .exited(code: 0), "\(ProcessTestSupport.contents(sandbox.stderrPath) ?? "")")
        let fields = Self.statusFields(output)
        #expect(fields["Uid"]?.split(separator: "\t").allSatisfy { $0 == "\(nobody.uid)" } == true, "\(output)")
        #expect(fields["Gid"]?.split(separator: "\t").allSatisfy { $0 == "\(nobody.gid)" } == true, "\(output)")
        let groups = Set((fields["Groups"] ?? "").split(separator: " ").map(String.init))
        #expect(!groups.contains("0"), "none of root's groups: \(output)")
        #expect(groups == (try Self.groups(of: "nobody")), "\(output)")
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            #expect(fields[set] == "0000000000000000", "\(set) is empty: \(output)")
        }
        #expect(fields["NoNewPrivs"] == "1", "\(output)")
    }

    @Test("an unknown user fails that task with a clear message; a task launched with it runs as its user in its own sandbox")
    func unknownUser() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let launcher = try LauncherUnderTest(workDir: workDir)
        let framework = Keel_V1_FrameworkInfo.with { $0.id.value = "fw-1" }
        try await launcher.running {
            launcher.manager.launch(framework: framework, task: .with {
                $0.taskID.value = "t-ghost"
                $0.command.shell = "echo should not run"
                $0.command.user = "keel-no-such-user"
            })
            launcher.manager.launch(framework: framework, task: .with {
                $0.taskID.value = "t-fine"
                $0.command.shell = "echo fine; touch made-by-task"
                $0.command.user = "nobody"
            })
            let ghost = await launcher.waitForUpdate(LauncherTaskKey(frameworkID: "fw-1", taskID: "t-ghost")) {
                $0.state.isTerminal
            }
            #expect(ghost?.state == .taskFailed)
            #expect(ghost?.reason == .containerLaunchFailed)
            #expect(ghost?.message.contains("user 'keel-no-such-user' does not exist on this agent") == true, "\(ghost?.message ?? "")")
            let fine = await launcher.waitForUpdate(LauncherTaskKey(frameworkID: "fw-1", taskID: "t-fine")) {
                $0.state.isTerminal
            }
            #expect(fine?.state == .taskFinished, "\(fine?.message ?? "")")
            let sandbox = try #require(launcher.manager.container(taskID: "t-fine")?.sandbox)
            #expect(ProcessTestSupport.contents(sandbox.stdoutPath) == "fine\n")
            // The sandbox was given to the task's user, so it could write in its working directory.
            let owner = try FileManager.default.attributesOfItem(atPath: sandbox.root + "/made-by-task")[.ownerAccountID]
            #expect((owner as? NSNumber)?.uint32Value == (try TaskUser.lookup(name: "nobody")).uid)
        }
    }
}
