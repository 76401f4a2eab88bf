import Glibc

/// The daemons' local time zone, read once.
///
/// Every log line carries a local timestamp, and swift-log's stream handler calls `tzset()` for
/// each. With `TZ` unset, glibc's `tzset()` looks at `/etc/localtime` again every time (a `stat`
/// per log line, twice per task in the launcher); with `TZ` naming that file it reads it once.
/// So a daemon pins `TZ=:/etc/localtime` at start when `TZ` is unset; a time zone set for the
/// service is left as it is. A change of the system's time zone then reaches a daemon with its
/// next restart, as it does for most services.
package enum LocalTimeZone {
    /// Sets `TZ` to `:/etc/localtime` unless it is set. Call it first in `main`, before any
    /// thread starts (the environment is not safe to change while other threads read it).
    package static func pin() {
        guard getenv("TZ") == nil else { return }
        setenv("TZ", ":/etc/localtime", 0)
    }
}
