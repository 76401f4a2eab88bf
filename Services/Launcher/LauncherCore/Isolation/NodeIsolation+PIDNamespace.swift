@preconcurrency import Glibc
package import Logging

extension NodeIsolation {
    /// Whether tasks can get PID and mount namespaces of their own here, found by trying it:
    /// `supervisor` runs a task in a new PID namespace (exactly as for real tasks), and that task
    /// (`keel-task-supervisor --namespace-check`) checks that it is PID 2 with a private `/proc`.
    ///
    /// Needs root (`CAP_SYS_ADMIN`). Logs the outcome either way: without PID namespaces tasks
    /// still run, isolated by process group (and cgroups), but can see every process of the node.
    package static func checkPIDNamespaces(supervisor: String, logger: Logger) -> Bool {
        guard geteuid() == 0 else {
            logger.warning(
                "PID namespaces need root; tasks run in the node's PID namespace and can see every process",
                metadata: ["keel.euid": "\(geteuid())"])
            return false
        }
        var template = Array("/tmp/keel-pid-namespace-check-XXXXXX".utf8CString)
        guard let created = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            logger.warning(
                "cannot create a directory to check PID namespaces; tasks run in the node's PID namespace",
                metadata: ["keel.error": "\(SystemCallError(call: "mkdtemp", errno: errno))"])
            return false
        }
        let directory = String(cString: created)
        defer {
            for file in ["exit-status", "output"] { unlink(directory + "/" + file) }
            rmdir(directory)
        }
        let outcome = runCheck(supervisor: supervisor, directory: directory)
        switch outcome {
        case .success:
            logger.notice("tasks run in PID and mount namespaces of their own, with a private /proc")
            return true
        case .failure(let reason):
            logger.warning(
                "PID namespaces do not work here; tasks run in the node's PID namespace and can see every process",
                metadata: ["keel.reason": "\(reason)"])
            return false
        }
    }

    /// Runs the check task; on failure, says why (the supervisor's own words where it gave any).
    private static func runCheck(supervisor: String, directory: String) -> Result<Void, CheckFailure> {
        let arguments = [
            supervisor, "--pid-namespace", directory + "/exit-status", supervisor, "keel-task-supervisor",
            "--namespace-check",
        ]
        let request = ProcessSpawner.Request(
            command: .argv(arguments), executable: supervisor, arguments: arguments, environment: [],
            workingDirectory: "/", stdoutPath: directory + "/output", stderrPath: directory + "/output")
        let pid: pid_t
        do {
            pid = try ProcessSpawner.spawn(request)
        } catch {
            return .failure(CheckFailure(text: error.message))
        }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 {
            guard errno == EINTR else { return .failure(CheckFailure(text: "cannot wait for the check: \(errno)")) }
        }
        if raw == 0 { return .success(()) }
        let output = CgroupFiles.read(directory + "/output")?.trimmingTrailingNewlines ?? ""
        return .failure(CheckFailure(text: output.isEmpty ? "the check ended with wait status \(raw)" : output))
    }

    private struct CheckFailure: Error, CustomStringConvertible {
        var text: String
        var description: String { text }
    }
}

extension String {
    fileprivate var trimmingTrailingNewlines: String {
        var text = self
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }
}
