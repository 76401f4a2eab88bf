@preconcurrency import Glibc
import Logging

/// The cgroups of one task: the same relative path (`<root>/<task>-<run>`) in every hierarchy
/// the node uses, plus any rlimit fallbacks.
///
/// How the task gets inside *before* it runs anything: `posix_spawn` cannot put the child into
/// a cgroup (and `clone3(CLONE_INTO_CGROUP)` is v2-only and not reachable through glibc's
/// spawn), so the join happens in the child between `fork` and `exec`, where the process writes
/// itself into every `cgroup.procs`, exiting with 127 (and saying why on its standard error) if
/// any write fails. Since the task's program only starts after the last write, every process it
/// ever forks is born inside the cgroups: a fork bomb cannot escape the pids limit.
/// - A supervised task (the launcher's normal case) is joined by `keel-task-supervisor`, which
///   forks the task itself: the launcher passes ``procsFiles`` as `--join-cgroup` options (see
///   ``limited(executable:arguments:)``), and the supervisor stays outside the cgroups.
/// - Otherwise (`keel exec` sessions, tests without a supervisor) the process is started
///   through a tiny `/bin/sh` shim (see ``wrap(executable:arguments:)``) that writes its own
///   pid (`$$`) into every `cgroup.procs` and then `exec`s the real argv. The pid stays the same
///   across `exec`, so the session leader the launcher watches is the process itself. This was
///   preferred over a pipe handshake (needs a helper that blocks before `exec`, i.e. the same
///   shim plus a protocol) and over a hidden launcher subcommand (ties the library to the
///   `keel-launcher` binary and costs a Swift process start). `/bin/sh` is always present; its
///   cost is one extra `execve`.
package final class TaskCgroup: Sendable {
    /// One hierarchy the task has a cgroup in.
    struct Member: Sendable {
        let isolator: any CgroupIsolator
        let controllers: Set<CgroupController>
    }

    /// The cgroup's path relative to each mount point, e.g. `keel/web-1-3f2a…`.
    package let path: String
    /// The limits written into the cgroups (with the node default pids limit filled in).
    package let limits: TaskResourceLimits
    let members: [Member]
    /// `prlimit … --`, prepended to the command for rlimit fallbacks; empty if none.
    let rlimitPrefix: [String]
    private let baseLogger: Logger

    /// The launcher's logger with this cgroup's path (made when something is logged, which is
    /// rare: a logger's metadata is copied at every change).
    var logger: Logger {
        var logger = baseLogger
        logger[metadataKey: "keel.cgroup"] = "\(path)"
        return logger
    }

    init(path: String, members: [Member], limits: TaskResourceLimits, rlimitPrefix: [String], logger: Logger) {
        self.path = path
        self.members = members
        self.limits = limits
        self.rlimitPrefix = rlimitPrefix
        self.baseLogger = logger
    }

    /// The absolute directory of this task's cgroup in every hierarchy, e.g.
    /// `/sys/fs/cgroup/memory/keel/web-1-…`.
    package var directories: [String] {
        members.map { $0.isolator.directory(path) }
    }

    /// The directory of this task's cgroup in the hierarchy that enforces `controller`, if any.
    package func directory(for controller: CgroupController) -> String? {
        members.first { $0.controllers.contains(controller) }.map { $0.isolator.directory(path) }
    }

    /// The shell program of the join shim; its arguments are the `cgroup.procs` files, `--`, argv.
    static let joinScript =
        #"while [ "$1" != -- ]; do echo $$ > "$1" || { echo "keel: cannot join cgroup '$1'" >&2; exit 127; }; "#
        + #"shift; done; shift; exec "$@""#

    /// The `cgroup.procs` file of this task's cgroup in every hierarchy: what a process writes
    /// itself into to join them all.
    ///
    /// The unified (v2) hierarchy's comes first, so a process in any of the task's v1 cgroups is
    /// in its v2 cgroup as well, whose `populated` flag then speaks for all of them
    /// (``isReusable()``).
    var procsFiles: [String] {
        let unifiedFirst =
            members.filter { $0.isolator is CgroupV2Hierarchy } + members.filter { !($0.isolator is CgroupV2Hierarchy) }
        return unifiedFirst.map { $0.isolator.procsFile(path) }
    }

    /// Rewrites a spawn so that the process takes the rlimits (``rlimitPrefix``) before
    /// executing `executable` with `arguments`, but leaves joining the cgroups to whoever
    /// forks it: a supervisor given ``procsFiles``. Unchanged (`argv[0]` included) without
    /// rlimits; with them `argv[0]` becomes the executable path, as `prlimit` cannot set it.
    func limited(executable: String, arguments: [String]) -> (executable: String, arguments: [String]) {
        guard !rlimitPrefix.isEmpty else { return (executable, arguments) }
        let command = rlimitPrefix + [executable] + arguments.dropFirst()
        return (command[0], command)
    }

    /// Rewrites a spawn so that the process joins every cgroup (and takes the rlimits) before
    /// executing `executable` with `arguments` (whose first element, `argv[0]`, is replaced by
    /// the executable path, since `exec` in `sh` cannot set it), through the `/bin/sh` shim.
    func wrap(executable: String, arguments: [String]) -> (executable: String, arguments: [String]) {
        let program = rlimitPrefix.isEmpty ? [executable] : rlimitPrefix + [executable]
        let command = program + arguments.dropFirst()
        guard !members.isEmpty else { return (command[0], command) }
        return ("/bin/sh", ["/bin/sh", "-c", Self.joinScript, "keel-cgroup-join"] + procsFiles + ["--"] + command)
    }

    /// Every process now in any of the task's cgroups.
    package var pids: Set<Int32> {
        Set(members.flatMap { $0.isolator.pids(path) })
    }

    /// What the task's cgroups recorded when it ended, each file read once: what the memory
    /// limit did (for the task's final status), and the counters the reuse check
    /// (``isReusable(known:)``) needs. Read it before ``destroy()`` or reuse.
    ///
    /// `cgroup.events` of the unified hierarchy is read first: if nothing is left in the cgroup,
    /// nothing can be OOM-killed later, so the `oom_kill` counter read after it is final and
    /// the reuse check takes it as it is.
    package func endRecord() -> (memoryLimitation: MemoryLimitation?, readings: CgroupReadings) {
        var readings = CgroupReadings()
        if let unified = members.lazy.compactMap({ $0.isolator as? CgroupV2Hierarchy }).first {
            (readings.populated, readings.frozen) = unified.events(path)
        }
        for member in members where member.controllers.contains(.memory) {
            guard let record = member.isolator.memoryRecord(path) else { continue }
            if readings.populated == false { readings.oomKills = record.oomKills }
            if let limitation = record.limitation, limitation.oomKills > 0 { return (limitation, readings) }
        }
        return (nil, readings)
    }

    /// Removes `directories` that are empty, ignoring errors (cleanup after a failed setup).
    static func removeDirectories(_ directories: [String]) {
        for directory in directories {
            _ = CgroupFiles.removeDirectory(directory)
        }
    }
}
