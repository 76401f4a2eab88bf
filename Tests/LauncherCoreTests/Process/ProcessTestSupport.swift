import Foundation
@preconcurrency import Glibc
import LauncherCore
import Logging
import Testing

/// Shared helpers for the process-machinery tests: scratch work dirs, file access, and
/// deadline-bounded polling for process events (never fixed sleeps).
enum ProcessTestSupport {
    /// A logger that discards everything, so test output stays readable.
    static let logger = Logger(label: "keel.test.process", factory: { _ in SwiftLogNoOpLogHandler() })

    /// The environment given to test tasks.
    static let environment = ["PATH": "/usr/bin:/bin"]

    /// A fresh, empty directory under the system temp dir; remove it with ``removeTree(_:)``.
    static func makeWorkDir() throws -> String {
        var template = Array("\(NSTemporaryDirectory())/keel-launcher-test-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard let created else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        return URL(fileURLWithPath: String(cString: created)).standardizedFileURL.path
    }

    /// Deletes `path` recursively, ignoring errors.
    static func removeTree(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// A sandbox for a uniquely named task under `workDir`.
    /// Whether `/proc/PID/status` lines `SigBlk:` and `SigIgn:` say that no signal is blocked
    /// and none ignored, glibc's two reserved ones (32 and 33) included.
    static func signalsAtDefaults(in status: String) -> Bool {
        let masks = Dictionary(uniqueKeysWithValues: status.split(separator: "\n").compactMap { line -> (String, UInt64)? in
            let parts = line.split(separator: "\t")
            guard parts.count == 2, let mask = UInt64(parts[1], radix: 16) else { return nil }
            return (String(parts[0]), mask)
        })
        return masks["SigBlk:"] == 0 && masks["SigIgn:"] == 0
    }

    /// With `forked`, a supervisor spawner (the test fails if it cannot be started), so that
    /// supervisors are forked as in the launcher; else nil, so they are executed.
    static func spawner(supervisor: String, if forked: Bool) throws -> SupervisorSpawner? {
        guard forked else { return nil }
        let spawner: SupervisorSpawner = try #require(SupervisorSpawner.start(supervisor: supervisor, logger: logger))
        return spawner
    }

    static func makeSandbox(in workDir: String, task: String = "task") throws -> TaskSandbox {
        try TaskSandbox.create(workDir: workDir, frameworkID: "framework-1", taskID: task, runID: "run-1")
    }

    /// Launches `command` in `sandbox` with the test environment plus `extraEnvironment`.
    static func launch(
        _ command: TaskCommand, in sandbox: TaskSandbox, extraEnvironment: [String: String] = [:],
        user: String? = nil
    ) throws -> TaskProcess {
        let environment = environment.merging(extraEnvironment) { _, new in new }
        let spec = TaskLaunchSpec(command: command, environment: environment, sandbox: sandbox, user: user)
        return try TaskProcess.launch(spec, logger: logger)
    }

    /// The contents of a file as UTF-8, or `nil` if it cannot be read.
    static func contents(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Writes `text` to `path`, replacing it.
    static func write(_ text: String, to path: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    /// The pid a script wrote to `path`, once the file exists with a complete line.
    static func waitForPid(in path: String, timeout: Duration = .seconds(20)) async -> Int32? {
        var pid: Int32?
        let found = await eventually(timeout: timeout) {
            guard let text = contents(path), text.hasSuffix("\n") else { return false }
            pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
            return pid != nil
        }
        return found ? pid : nil
    }

    /// Polls `condition` every 20 ms until it holds (`true`) or `timeout` passes (`false`).
    static func eventually(timeout: Duration = .seconds(20), _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() {
                return true
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    /// Fields of `/proc/<pid>/stat` after the command name: [state, ppid, pgrp, ...].
    private static func statFields(_ pid: Int32) -> [Substring]? {
        guard let text = contents("/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ")
    }

    /// Whether `pid` no longer runs: `kill(pid, 0)` fails with `ESRCH`, or it is a zombie.
    ///
    /// Zombies count as dead: orphans are reparented to PID 1, which in some containers never
    /// reaps them, so `ESRCH` alone could never be observed there.
    static func isDead(_ pid: Int32) -> Bool {
        if kill(pid, 0) != 0, errno == ESRCH {
            return true
        }
        return statFields(pid)?.first == "Z"
    }

    /// The pids of processes in group `pgid` that are alive (not zombies).
    static func liveMembers(ofGroup pgid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { Int32($0) }.filter { pid in
            guard let fields = statFields(pid), fields.count > 2 else { return false }
            return fields[2] == "\(pgid)" && fields[0] != "Z"
        }
    }

    /// Sends `SIGKILL` to every live process whose command line mentions `text` (e.g. a test's
    /// work dir), for cleanup of tasks a stopped launcher left running.
    static func killProcesses(mentioning text: String) {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for pid in entries.compactMap({ Int32($0) }) where pid != getpid() {
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { continue }
            if String(decoding: data, as: UTF8.self).contains(text) {
                kill(pid, SIGKILL)
            }
        }
    }

    /// The parent of `pid`, from `/proc`.
    static func parent(of pid: Int32) -> Int32? {
        guard let fields = statFields(pid), fields.count > 1 else { return nil }
        return Int32(fields[1])
    }

    /// The arguments `pid` runs with (`argv[0]` first), from `/proc`; empty if it is gone.
    static func commandLine(of pid: Int32) -> [String] {
        (contents("/proc/\(pid)/cmdline") ?? "").split(separator: "\0", omittingEmptySubsequences: false).dropLast()
            .map(String.init)
    }

    /// The process group of `pid`, from `/proc`.
    static func processGroup(of pid: Int32) -> Int32? {
        guard let fields = statFields(pid), fields.count > 2 else { return nil }
        return Int32(fields[2])
    }
}
