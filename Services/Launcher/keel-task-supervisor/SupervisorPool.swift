@preconcurrency import Glibc

/// The spawner's supervisors that may serve more than one task (see ``TaskReuse``): each with
/// its control socket, its reuse key, its pidfd (sent with every reply that names it) and
/// whether it is idle.
///
/// A supervisor is idle from its "idle" message until the spawner hands it a request. It leaves
/// the pool when its control socket closes (it exited), when the pool already holds
/// ``maxIdle`` idle ones, or when a hand-off fails; no more than ``maxMembers`` are in it. The
/// spawner is single-threaded; so is this.
enum SupervisorPool {
    struct Member {
        var pid: pid_t
        var startTime: UInt64
        var pidfd: Int32
        var control: Int32
        var key: String
        /// The first cgroup its last task joined (a `cgroup.procs` file), if any.
        var cgroup: String?
        var idle = false
    }

    /// The most idle supervisors kept; more are let go (they exit).
    static let maxIdle = 64
    /// The most supervisors in the pool, busy or idle; a supervisor started beyond it serves one
    /// task. Each member holds two descriptors of the spawner.
    static let maxMembers = 256

    /// Whether another supervisor may join the pool.
    static var hasRoom: Bool { members.count < maxMembers }
    /// How long a supervisor may take to answer a request before it is taken for stuck.
    static let answerTimeout: Int32 = 10_000

    nonisolated(unsafe) private static var members: [Int32: Member] = [:]
    /// The control sockets of the idle members by reuse key, the most recently idle last.
    nonisolated(unsafe) private static var idle: [String: [Int32]] = [:]
    nonisolated(unsafe) private static var idleCount = 0
    /// Where the members' control sockets are watched (see ``Spawner``).
    nonisolated(unsafe) static var events: EventPoll?

    /// Takes `member` in and watches its control socket; `false` (and not taken) if it cannot be
    /// watched.
    static func add(_ member: Member) -> Bool {
        guard events?.watch(member.control) ?? false else { return false }
        members[member.control] = member
        return true
    }

    /// Whether an idle supervisor for `key` is there.
    static func hasIdle(_ key: String) -> Bool { idle[key] != nil }

    /// When a supervisor of each key last became idle (``now``).
    nonisolated(unsafe) private static var lastIdle: [String: UInt64] = [:]
    /// Until when ``awaitIdle(_:)`` does not wait (after a wait in vain).
    nonisolated(unsafe) private static var noWaitUntil: UInt64 = 0

    /// How long the spawner waits for a supervisor to become idle before it forks a new one
    /// (nanoseconds, as the three below).
    static let idleWait: UInt64 = 5_000_000
    /// A key whose supervisors became idle this recently serves short tasks: worth waiting for.
    static let recentIdle: UInt64 = 50_000_000
    /// How long the spawner forks without waiting after a wait in vain.
    static let waitBackoff: UInt64 = 5_000_000

    /// Waits up to ``idleWait`` for a supervisor of `key` to become idle, if one is likely to:
    /// some of the key's supervisors are busy and one of them became idle within ``recentIdle``.
    /// Whether one is idle now.
    ///
    /// In a burst of short tasks a request often comes while the supervisors of the tasks that
    /// just ended are still on their way to idle: they only report it once keel-launcher has let
    /// go of their task's link, and under load that takes a little while. Forking a supervisor
    /// for such a request, with its PID and mount namespaces and its `/proc`, and ending one
    /// more later, costs far more CPU than the wait, which is no CPU at all. For tasks that run
    /// long nothing becomes idle, so the spawner does not wait (nor again for a while after a
    /// wait in vain).
    static func awaitIdle(_ key: String) -> Bool {
        let start = now
        guard let events, start >= noWaitUntil else { return false }
        guard let last = lastIdle[key], start - last < recentIdle,
            members.values.contains(where: { $0.key == key && !$0.idle })
        else { return false }
        while now - start < idleWait {
            guard events.wait(timeout: 1, { heard(from: $0) }) else { break }
            if hasIdle(key) { return true }
        }
        noWaitUntil = now + waitBackoff
        return hasIdle(key)
    }

    /// Takes every message of the members that is there (see ``heard(from:)``).
    static func hearAll() {
        _ = events?.wait(timeout: 0) { heard(from: $0) }
    }

    /// `CLOCK_MONOTONIC` in nanoseconds.
    private static var now: UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// An idle supervisor for `key`, now taken (not idle); nil if there is none.
    ///
    /// The one whose last task joined `cgroup`, if that one is idle: a supervisor keeps the
    /// `cgroup.procs` files of its last task open for the next (see `PreparedChild`), and the
    /// launcher hands out the cgroup that came free last, which is mostly one whose supervisor
    /// has just become idle too. Otherwise the one idle longest, so that those that became idle
    /// last stay for the cgroups their tasks used.
    static func takeIdle(_ key: String, cgroup: String?) -> Member? {
        guard var controls = idle[key], !controls.isEmpty else { return nil }
        var position = 0
        if let cgroup, let match = controls.lastIndex(where: { members[$0]?.cgroup == cgroup }) {
            position = match
        }
        let control = controls.remove(at: position)
        idle[key] = controls.isEmpty ? nil : controls
        idleCount -= 1
        members[control]?.idle = false
        members[control]?.cgroup = cgroup
        return members[control]
    }

    /// The control socket `descriptor` is readable: an idle message, or the supervisor is gone.
    static func heard(from descriptor: Int32) {
        guard let member = members[descriptor] else { return }
        var byte: UInt8 = 0
        let count = recv(descriptor, &byte, 1, Int32(MSG_DONTWAIT))
        if count < 0, errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK { return }
        guard count == 1, byte == TaskReuse.idleMessage, !member.idle, idleCount < maxIdle else {
            remove(descriptor)
            return
        }
        members[descriptor]?.idle = true
        idle[member.key, default: []].append(descriptor)
        idleCount += 1
        let time = now
        lastIdle[member.key] = time
        // Keys come and go with frameworks: those not heard from lately are forgotten.
        if lastIdle.count > maxMembers {
            lastIdle = lastIdle.filter { time - $0.value < recentIdle }
        }
    }

    /// How a hand-off went.
    enum HandOff {
        /// The supervisor is starting the task.
        case started
        /// The supervisor could not set itself up for the task (the `errno`); it stays in the pool.
        case failed(Int32)
        /// The supervisor is gone (or stuck, and is killed): start a new one.
        case gone
    }

    /// Passes `request` and the supervisor's end of the task's `link` to `member` and waits for
    /// its answer.
    static func handOff(_ request: ArraySlice<UInt8>, link: Int32, to member: Member) -> HandOff {
        let payload = Array(request)
        let sent = payload.withUnsafeBytes {
            DescriptorPassing.send(member.control, $0, descriptors: [link], flags: Int32(MSG_NOSIGNAL))
        }
        guard sent == payload.count else {
            remove(member.control)
            return .gone
        }
        var entry = pollfd(fd: member.control, events: Int16(POLLIN), revents: 0)
        var ready: Int32
        repeat {
            ready = poll(&entry, 1, answerTimeout)
        } while ready < 0 && errno == EINTR
        var code: Int32 = -1
        let count = ready > 0 ? recv(member.control, &code, MemoryLayout<Int32>.size, 0) : -1
        guard count == MemoryLayout<Int32>.size else {
            if ready == 0 { kill(member.pid, SIGKILL) }
            remove(member.control)
            return .gone
        }
        return code == 0 ? .started : .failed(code)
    }

    /// Lets go of the supervisor with control socket `descriptor`: closing it makes an idle one
    /// exit, and a busy one exit after its task.
    private static func remove(_ descriptor: Int32) {
        guard let member = members.removeValue(forKey: descriptor) else { return }
        if member.idle, let index = idle[member.key]?.firstIndex(of: descriptor) {
            idle[member.key]?.remove(at: index)
            if idle[member.key]?.isEmpty ?? false { idle[member.key] = nil }
            idleCount -= 1
        }
        events?.forget(member.control)
        close(member.control)
        close(member.pidfd)
    }
}
