@preconcurrency import Glibc

/// How a task's leader process ended.
package enum TerminationStatus: Sendable, Hashable, CustomStringConvertible {
    /// The process called `exit` (or returned from `main`) with `code` (0...255).
    case exited(code: Int32)
    /// The process was killed by `signal`; `coreDumped` tells whether it left a core file.
    case signaled(signal: Int32, coreDumped: Bool)
    /// The status could not be collected because something else in the launcher reaped the
    /// pid first (e.g. `SIGCHLD` set to `SIG_IGN`, or a foreign `waitpid(-1)`). The process is gone.
    case unknown

    /// Decodes a raw `waitpid` status word (the `WIFEXITED`/`WIFSIGNALED` macros, which Swift
    /// does not import).
    init(waitStatus status: Int32) {
        let low = status & 0x7f
        if low == 0 {
            self = .exited(code: (status >> 8) & 0xff)
        } else if low != 0x7f {
            self = .signaled(signal: low, coreDumped: status & 0x80 != 0)
        } else {
            // Stopped/continued states are never requested (no WUNTRACED/WCONTINUED).
            self = .unknown
        }
    }

    /// Whether the process exited with code 0.
    package var isSuccess: Bool { self == .exited(code: 0) }

    /// `exited with code 3`, `killed by signal 9 (SIGKILL)`, `... (core dumped)`.
    package var description: String {
        switch self {
        case .exited(let code):
            return "exited with code \(code)"
        case .signaled(let signal, let coreDumped):
            return "killed by signal \(signal) (\(Self.signalName(signal)))" + (coreDumped ? " (core dumped)" : "")
        case .unknown:
            return "exit status unknown (reaped elsewhere)"
        }
    }

    /// The conventional name of `signal`, e.g. `SIGTERM`, or `SIG<n>` if unknown.
    package static func signalName(_ signal: Int32) -> String {
        switch signal {
        case SIGHUP: "SIGHUP"
        case SIGINT: "SIGINT"
        case SIGQUIT: "SIGQUIT"
        case SIGILL: "SIGILL"
        case SIGTRAP: "SIGTRAP"
        case SIGABRT: "SIGABRT"
        case SIGBUS: "SIGBUS"
        case SIGFPE: "SIGFPE"
        case SIGKILL: "SIGKILL"
        case SIGUSR1: "SIGUSR1"
        case SIGSEGV: "SIGSEGV"
        case SIGUSR2: "SIGUSR2"
        case SIGPIPE: "SIGPIPE"
        case SIGALRM: "SIGALRM"
        case SIGTERM: "SIGTERM"
        case SIGCHLD: "SIGCHLD"
        case SIGCONT: "SIGCONT"
        case SIGSTOP: "SIGSTOP"
        case SIGXCPU: "SIGXCPU"
        case SIGXFSZ: "SIGXFSZ"
        case SIGSYS: "SIGSYS"
        default: "SIG\(signal)"
        }
    }
}
