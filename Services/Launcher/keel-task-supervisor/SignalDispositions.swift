@preconcurrency import Glibc

/// The signal dispositions this process changed from the default, so that a child can be put
/// back to the defaults by resetting just those instead of every signal (two children per task,
/// 62 `sigaction`s each, otherwise).
///
/// It holds because each mode starts from the defaults: the spawner and an executed supervisor
/// reset every signal once at start (``resetAll()``), and from then on every change goes
/// through ``set(_:ignored:)``. A forked supervisor inherits the spawner's record along with its
/// dispositions. The process is single-threaded.
enum SignalDispositions {
    nonisolated(unsafe) private static var changed: Set<Int32> = []

    /// Puts every signal back to its default action (`SIGKILL` and `SIGSTOP` always are), as
    /// `execve` does not for ignored signals.
    static func resetAll() {
        for number: Int32 in 1...64 where number != SIGKILL && number != SIGSTOP {
            // glibc reserves 32 and 33 and refuses them; nothing to reset there.
            _ = signal(number, SIG_DFL)
        }
        changed = []
    }

    /// Ignores `signalNumber` (or puts it back to its default action) and remembers it.
    static func set(_ signalNumber: Int32, ignored: Bool) {
        _ = signal(signalNumber, ignored ? SIG_IGN : SIG_DFL)
        if ignored { changed.insert(signalNumber) } else { changed.remove(signalNumber) }
    }

    /// Puts the changed signals back to their default actions.
    static func resetChanged() {
        for signalNumber in changed { _ = signal(signalNumber, SIG_DFL) }
        changed = []
    }

    /// The signals whose action is not the default now.
    static var nonDefault: [Int32] { Array(changed) }
}
