@preconcurrency import Glibc

/// The signal dispositions this process changed from the default, so that a child can be put
/// back to the defaults by resetting just those instead of every signal (two children per task,
/// 62 `sigaction`s each, otherwise).
///
/// It holds because each mode starts from the defaults: the spawner and an executed supervisor
/// reset every signal once at start (``resetAll()``), and from then on every change goes
/// through ``set(_:ignored:)``. A forked supervisor inherits the spawner's record along with its
/// dispositions. The process is single-threaded.
///
/// The record is a bit set in one word rather than a `Set`: a forked supervisor and its task's
/// child read it without hashing or allocating (see ``PreparedChild``).
enum SignalDispositions {
    /// Bit `N - 1` is set when signal `N` is not at its default action.
    nonisolated(unsafe) private(set) static var changed: UInt64 = 0

    /// Puts every signal back to its default action (`SIGKILL` and `SIGSTOP` always are), as
    /// `execve` does not for ignored signals.
    static func resetAll() {
        for number: Int32 in 1...64 where number != SIGKILL && number != SIGSTOP {
            // glibc reserves 32 and 33 and refuses them; nothing to reset there.
            _ = signal(number, SIG_DFL)
        }
        changed = 0
    }

    /// Ignores `signalNumber` (or puts it back to its default action) and remembers it. Nothing
    /// to do when the signal is already so: every change goes through here.
    static func set(_ signalNumber: Int32, ignored: Bool) {
        let bit = UInt64(1) << UInt64(signalNumber - 1)
        guard (changed & bit != 0) != ignored else { return }
        _ = signal(signalNumber, ignored ? SIG_IGN : SIG_DFL)
        if ignored { changed |= bit } else { changed &= ~bit }
    }

    /// Puts the changed signals back to their default actions.
    static func resetChanged() {
        reset(changed)
        changed = 0
    }

    /// Puts the signals of `mask` (bit `N - 1` for signal `N`) back to their default actions and
    /// writes no memory: async-signal-safe, so a child that shares this process's memory may call
    /// it between `clone` and `execve` (see ``PreparedChild``).
    static func reset(_ mask: UInt64) {
        var remaining = mask
        while remaining != 0 {
            _ = signal(Int32(remaining.trailingZeroBitCount + 1), SIG_DFL)
            remaining &= remaining - 1
        }
    }
}
