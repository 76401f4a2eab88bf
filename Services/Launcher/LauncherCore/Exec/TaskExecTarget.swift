@preconcurrency import Glibc
import Foundation

/// How to run an operator's command inside a running task: the full command line (cgroup join,
/// namespace entry, user switch, command), environment and working directory.
///
/// The layers, outermost first, each `exec`ing the next so that the pid (and process group)
/// stays the same:
/// 1. the task's cgroup join shim (``TaskCgroup/wrap(executable:arguments:)``), so the command
///    and everything it starts count against the task's memory, CPU and pids limits and die
///    with the task's cgroup;
/// 2. `nsenter --target PID` into the task's PID and mount namespaces, for each one that
///    differs from the launcher's (`/proc/PID/ns/pid`, `/proc/PID/ns/mnt`); `nsenter` forks
///    once to enter a PID namespace and stays in the group as the command's parent;
/// 3. `setpriv` to the task's user, when it is not the launcher's;
/// 4. the command, with the task's environment, in its sandbox.
package struct TaskExecTarget: Sendable, CustomStringConvertible {
    /// The operator's argv.
    package var command: [String]
    /// The program actually spawned (the outermost layer).
    package var executable: String
    /// The argv actually spawned, all layers included.
    package var arguments: [String]
    /// The command's environment.
    package var environment: [String: String]
    /// The directory it starts in (the sandbox).
    package var workingDirectory: String
    /// The user it runs as, `nil` for the launcher's.
    package var user: TaskUser?
    /// The namespaces entered (`pid`, `mnt`), empty when the task shares the launcher's.
    package var namespaces: [String]

    /// The operator's command line.
    package var description: String { command.joined(separator: " ") }

    /// The namespace kinds `nsenter` can enter for a task, with their `/proc/PID/ns` names.
    static let namespaceKinds: [(file: String, option: String)] = [("pid", "--pid"), ("mnt", "--mount")]

    /// Builds the target for `command` in a task whose process is `taskPID`.
    package init(
        command: [String], environment: [String: String], sandbox: TaskSandbox, user userName: String?,
        cgroup: TaskCgroup?, taskPID: Int32?
    ) throws(LauncherError) {
        self.command = command
        self.environment = environment
        self.workingDirectory = sandbox.root
        let user = try userName.map { (name) throws(LauncherError) in try TaskUser.lookup(name: name) }
        self.user = user
        let namespaces = taskPID.map { pid in
            Self.namespaceKinds.map(\.file).filter { Self.namespace($0, of: pid) != Self.namespace($0, of: getpid()) }
        } ?? []
        self.namespaces = namespaces

        var program: [String]
        if namespaces.contains("mnt") {
            // The task's file system view may differ: let the command be found inside it.
            program = command
        } else {
            let resolved = try ExecutableLookup.resolve(
                command[0], searchPath: environment["PATH"] ?? TaskLaunchSpec.defaultSearchPath,
                workingDirectory: sandbox.root, command: .argv(command))
            program = [resolved] + command.dropFirst()
        }
        if let user, user.uid != geteuid() || user.gid != getegid() {
            guard geteuid() == 0 else {
                throw LauncherError(
                    code: .permissionDenied,
                    message: "cannot run as the task's user '\(user.name)': the launcher is not root")
            }
            program = [Self.tool("setpriv"), "--reuid=\(user.uid)", "--regid=\(user.gid)", "--init-groups", "--"]
                + program
        }
        if let taskPID, !namespaces.isEmpty {
            let options = Self.namespaceKinds.filter { namespaces.contains($0.file) }.map(\.option)
            program = [Self.tool("nsenter"), "--target", "\(taskPID)"] + options + ["--wd=\(sandbox.root)", "--"] + program
        }
        if let cgroup {
            (executable, arguments) = cgroup.wrap(executable: program[0], arguments: program)
        } else {
            (executable, arguments) = (program[0], program)
        }
    }

    /// The identity of namespace `kind` of `pid` (e.g. `pid:[4026531836]`), if readable.
    package static func namespace(_ kind: String, of pid: Int32) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(kind)")
    }

    /// The process of the task itself: the lowest pid in its cgroup, else the supervisor's first
    /// child, else `leader` (an unsupervised task is its own leader).
    package static func taskPID(leader: Int32, cgroup: TaskCgroup?) -> Int32 {
        if let pid = cgroup?.pids.min() { return pid }
        let children = (try? String(contentsOfFile: "/proc/\(leader)/task/\(leader)/children", encoding: .utf8)) ?? ""
        return children.split(separator: " ").compactMap { Int32($0) }.min() ?? leader
    }

    /// A util-linux tool's absolute path (falls back to `/usr/bin/NAME`).
    private static func tool(_ name: String) -> String {
        ["/usr/bin/" + name, "/bin/" + name, "/usr/sbin/" + name].first { access($0, X_OK) == 0 } ?? "/usr/bin/" + name
    }
}
