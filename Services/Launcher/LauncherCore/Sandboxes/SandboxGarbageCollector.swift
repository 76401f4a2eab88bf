package import Foundation
@preconcurrency import Glibc
package import Logging
import ServiceLifecycle

/// Removes the sandboxes of ended tasks, with their checkpoints, as Mesos' `--gc_delay` and
/// `--disk_watermark` do.
///
/// Every ``Settings/interval`` it lists `WORK_DIR/sandboxes/<framework>/<task>/<run>` and
/// - removes every sandbox of an ended task older than ``Settings/maxAge`` (counted from the
///   task's end, or, for a sandbox no task of this launcher knows, from its last change);
/// - then, while the work dir's file system is fuller than ``Settings/diskWatermark``, removes
///   the remaining sandboxes of ended tasks, oldest first.
/// A sandbox of a task that has not ended, or whose end the broker has not acknowledged yet,
/// is never removed (nor any other run of that task). When the removed sandbox is the task's
/// latest, the task is forgotten too: its container goes, and its checkpoint if one is left
/// (normally the acknowledgement of its end has removed it already). Each
/// removal is logged with the task, the path, the age and the reason.
package final class SandboxGarbageCollector: Service {
    /// When sandboxes are removed.
    package struct Settings: Sendable, Hashable {
        /// How long the sandbox of an ended task is kept: one week by default, like Mesos.
        package var maxAge: Duration
        /// The fraction (0…1) of the work dir's file system in use above which ended tasks'
        /// sandboxes are removed early, oldest first: 0.9 by default.
        package var diskWatermark: Double
        /// How often the sandboxes are checked: every minute by default.
        package var interval: Duration

        /// Creates settings; see each property.
        package init(maxAge: Duration = .seconds(7 * 86400), diskWatermark: Double = 0.9, interval: Duration = .seconds(60)) {
            self.maxAge = maxAge
            self.diskWatermark = diskWatermark
            self.interval = interval
        }
    }

    /// One sandbox removed by ``collect(now:)``.
    package struct Removal: Sendable, Hashable {
        /// Why a sandbox was removed.
        package enum Reason: String, Sendable, Hashable {
            /// It was older than ``Settings/maxAge``.
            case age
            /// The disk was fuller than ``Settings/diskWatermark``.
            case diskPressure = "disk-pressure"
        }

        /// The task the sandbox belonged to.
        package var key: LauncherTaskKey
        /// The sandbox directory.
        package var path: String
        /// How long ago the task ended (or the sandbox last changed).
        package var age: Duration
        /// Why it was removed.
        package var reason: Reason
    }

    /// A sandbox that may be removed.
    private struct Candidate {
        var key: LauncherTaskKey
        var path: String
        var endedAt: Date
    }

    private let workDir: String
    private let settings: Settings
    private let tasks: TaskManager
    private let logger: Logger
    private let diskUsage: @Sendable (String) -> Double?

    /// Creates a collector for the sandboxes under `workDir` of `tasks`.
    ///
    /// `diskUsage` tells how full the file system holding a path is (0…1); the default asks the
    /// kernel (``fileSystemUsage(of:)``).
    package init(
        workDir: String, settings: Settings, tasks: TaskManager, logger: Logger,
        diskUsage: @escaping @Sendable (String) -> Double? = SandboxGarbageCollector.fileSystemUsage(of:)
    ) {
        self.workDir = workDir
        self.settings = settings
        self.tasks = tasks
        self.logger = logger
        self.diskUsage = diskUsage
    }

    package func run() async throws {
        logger.info(
            "sandbox garbage collection",
            metadata: [
                "keel.max_age": "\(settings.maxAge)", "keel.disk_watermark": "\(settings.diskWatermark)",
                "keel.interval": "\(settings.interval)",
            ])
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            collect()
            let interval = settings.interval
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }

    /// Removes what is due now (see the type's documentation) and returns what was removed.
    @discardableResult
    package func collect(now: Date = Date()) -> [Removal] {
        let uses = tasks.sandboxUses
        var candidates: [Candidate] = []
        for (key, path) in sandboxDirectories() {
            let use = uses[key]
            if use?.mustKeep == true { continue }
            let endedAt = (use?.sandboxRoot == path ? use?.endedAt : nil) ?? Date(timeIntervalSince1970: TimeInterval(SandboxFiles.lastChange(of: path)))
            candidates.append(Candidate(key: key, path: path, endedAt: endedAt))
        }
        candidates.sort { $0.endedAt < $1.endedAt }
        var removals: [Removal] = []
        let maxAge = Double(settings.maxAge.components.seconds) + Double(settings.maxAge.components.attoseconds) * 1e-18
        var remaining: [Candidate] = []
        for candidate in candidates {
            if now.timeIntervalSince(candidate.endedAt) >= maxAge {
                if let removal = remove(candidate, now: now, reason: .age) { removals.append(removal) }
            } else {
                remaining.append(candidate)
            }
        }
        for candidate in remaining {
            guard let usage = diskUsage(workDir), usage > settings.diskWatermark else { break }
            if let removal = remove(candidate, now: now, reason: .diskPressure) { removals.append(removal) }
        }
        if let usage = diskUsage(workDir), usage > settings.diskWatermark {
            logger.warning(
                "the work dir's disk is above its watermark and no sandbox of an ended task is left to remove",
                metadata: ["keel.disk_usage": "\(usage)", "keel.disk_watermark": "\(settings.diskWatermark)"])
        }
        return removals
    }

    private func remove(_ candidate: Candidate, now: Date, reason: Removal.Reason) -> Removal? {
        // Checked again right before removing: the task may have been launched again since.
        if tasks.sandboxUses[candidate.key]?.mustKeep == true { return nil }
        let age = Duration.milliseconds(Int64(max(0, now.timeIntervalSince(candidate.endedAt)) * 1000))
        do {
            try FileManager.default.removeItem(atPath: candidate.path)
        } catch {
            logger.error(
                "cannot remove the sandbox of an ended task",
                metadata: ["keel.task_id": "\(candidate.key.taskID)", "keel.path": "\(candidate.path)", "keel.error": "\(error)"])
            return nil
        }
        let forgotten = tasks.forgetEndedTask(candidate.key, sandboxRoot: candidate.path)
        // The task's and framework's directories go when they are empty (rmdir refuses otherwise).
        let taskDirectory = (candidate.path as NSString).deletingLastPathComponent
        if rmdir(taskDirectory) == 0 {
            rmdir((taskDirectory as NSString).deletingLastPathComponent)
        }
        logger.notice(
            "removed the sandbox of an ended task",
            metadata: [
                "keel.task_id": "\(candidate.key.taskID)", "keel.framework_id": "\(candidate.key.frameworkID)",
                "keel.path": "\(candidate.path)", "keel.age": "\(age)", "keel.reason": "\(reason.rawValue)",
                "keel.checkpoint_removed": "\(forgotten)",
            ])
        return Removal(key: candidate.key, path: candidate.path, age: age, reason: reason)
    }

    /// Every `sandboxes/<framework>/<task>/<run>` directory, with its task's key.
    private func sandboxDirectories() -> [(LauncherTaskKey, String)] {
        let manager = FileManager.default
        let root = (try? TaskSandbox.realPath(workDir + "/sandboxes")) ?? workDir + "/sandboxes"
        var result: [(LauncherTaskKey, String)] = []
        for framework in (try? manager.contentsOfDirectory(atPath: root)) ?? [] {
            let frameworkPath = root + "/" + framework
            for task in (try? manager.contentsOfDirectory(atPath: frameworkPath)) ?? [] {
                let taskPath = frameworkPath + "/" + task
                for run in (try? manager.contentsOfDirectory(atPath: taskPath)) ?? [] {
                    let path = taskPath + "/" + run
                    guard SandboxFiles.isDirectory(path) else { continue }
                    result.append((LauncherTaskKey(frameworkID: framework, taskID: task), path))
                }
            }
        }
        return result
    }

    /// How full the file system holding `path` is, as `df` counts it: used ÷ (used + available
    /// to unprivileged users); `nil` if `statvfs` fails.
    @Sendable
    package static func fileSystemUsage(of path: String) -> Double? {
        SandboxFiles.usage(of: path)
    }
}
