@preconcurrency import Glibc

/// `syscall(2)`, declared variadic in `<unistd.h>` (which Swift cannot call), with the four
/// arguments `rt_sigaction` takes. glibc's `syscall` only moves its arguments into registers, so
/// a fixed prototype reaches it correctly.
@_silgen_name("syscall")
private func systemCall(
    _ number: Int, _ signalNumber: Int, _ action: UnsafeRawPointer?, _ previous: UnsafeMutableRawPointer?,
    _ maskSize: Int
) -> Int

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
            if number == 32 || number == 33 {
                resetReserved(number)
            } else {
                _ = signal(number, SIG_DFL)
            }
        }
        changed = 0
    }

    /// Puts signal 32 or 33 back to its default action. glibc keeps both for itself (thread
    /// cancellation and `setuid` across threads) and its `sigaction` refuses them, but an ignored
    /// one is inherited through `execve` like any other: whoever started this process may have
    /// left them ignored, and the task must not inherit that. So the kernel's `rt_sigaction` is
    /// called directly, with an all-zero `struct sigaction` (`SIG_DFL`, no flags, no restorer,
    /// an empty mask; the same layout on x86_64 and arm64). This process is single-threaded and
    /// never uses either signal.
    private static func resetReserved(_ number: Int32) {
        #if arch(x86_64)
            let rtSigaction = 13
        #elseif arch(arm64)
            let rtSigaction = 134
        #else
            #error("the rt_sigaction system call number of this architecture is needed here")
        #endif
        let action: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        _ = withUnsafeBytes(of: action) { systemCall(rtSigaction, Int(number), $0.baseAddress, nil, 8) }
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
