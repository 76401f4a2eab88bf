import Foundation
import KeelCore
import Synchronization

/// Emptied task cgroups kept for the next tasks.
///
/// Making a task's cgroup in every hierarchy (a directory with all its controllers' files, a
/// kernel object per controller) and removing it afterwards was a fifth of the launcher's CPU
/// per task in the launch benchmark. A cgroup whose task left nothing behind that the next task
/// would inherit (``TaskCgroup/isReusable()``) is kept here instead, up to ``capacity``, and the
/// next task gets it with its counters reset and its own limits written
/// (``NodeIsolation/reuseTaskCgroup(path:limits:logger:)``).
///
/// Cgroups that may be kept are named after the pool (`<root>/slot-<random>`), not after a task,
/// since they serve one task after the other; a task's cgroup is in its checkpoint record and in
/// the launcher's container listing. A kept cgroup keeps its note in the checkpoint
/// (``TaskCheckpointStore/recordCgroup(_:)``): a launcher that crashes sweeps the pool at its next
/// start like any leftover, and one that stops gracefully removes it.
package final class CgroupPool: Sendable {
    /// The most cgroups kept.
    package let capacity: Int
    /// The most memory an ended task may leave charged to its memory cgroup for the cgroup to be
    /// reused. What a task that exited leaves is kernel memory such as the dentries and inodes
    /// of the files it touched (a few hundred KiB for a short command), which the kernel reclaims
    /// when the next task needs the room, so the next task can still use all of its limit.
    package static let reusableMemoryLeftover: UInt64 = 1 << 20

    /// A kept cgroup: its path and the limits written in it.
    package struct Kept: Sendable, Hashable {
        package var path: String
        package var limits: TaskResourceLimits

        package init(path: String, limits: TaskResourceLimits) {
            self.path = path
            self.limits = limits
        }
    }

    private let idle = Mutex<[Kept]>([])

    /// A pool keeping up to `capacity` cgroups.
    package init(capacity: Int) {
        precondition(capacity > 0, "a cgroup pool keeps at least one cgroup")
        self.capacity = capacity
    }

    /// A kept cgroup, most recently kept first; `nil` if none is kept.
    package func take() -> Kept? {
        idle.withLock { $0.popLast() }
    }

    /// Keeps an emptied, reusable cgroup; `false` if the pool is full.
    package func put(_ kept: Kept) -> Bool {
        idle.withLock { idle in
            guard idle.count < capacity else { return false }
            idle.append(kept)
            return true
        }
    }

    /// Every kept cgroup, which the pool forgets.
    package func drain() -> [Kept] {
        idle.withLock { idle in
            defer { idle.removeAll() }
            return idle
        }
    }

    /// How many cgroups are kept.
    package var count: Int {
        idle.withLock(\.count)
    }

    /// Whether the cgroup at `path` was named to be kept (``slotName()``); cgroups named after a
    /// task's run are never kept.
    package static func isSlot(_ path: String) -> Bool {
        path.split(separator: "/").last?.hasPrefix("slot-") == true
    }

    /// A new name for a cgroup that may be kept: `slot-` and 16 random hex digits.
    package static func slotName() -> String {
        "slot-" + String(UUID.random().uuidString.lowercased().filter { $0 != "-" }.prefix(16))
    }
}
