@preconcurrency import Glibc

/// A local user account a task can run as, resolved from the password database.
package struct TaskUser: Sendable, Hashable, CustomStringConvertible {
    /// The login name, e.g. `"nobody"`.
    package var name: String
    /// The numeric user ID.
    package var uid: UInt32
    /// The primary group ID.
    package var gid: UInt32
    /// The home directory from the password entry (not created or checked).
    package var homeDirectory: String

    /// Creates a user from known values; prefer ``lookup(name:)``.
    package init(name: String, uid: UInt32, gid: UInt32, homeDirectory: String) {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.homeDirectory = homeDirectory
    }

    /// Looks `name` up with `getpwnam_r` (thread-safe).
    ///
    /// An unknown name is ``LauncherError/Code/notFound``; the message tells the operator to
    /// create the account on the agent or change the task's user. An empty name is
    /// ``LauncherError/Code/invalidArgument``.
    package static func lookup(name: String) throws(LauncherError) -> TaskUser {
        guard !name.isEmpty, !name.utf8.contains(0) else {
            throw LauncherError(code: .invalidArgument, message: "user name '\(name)' is empty or contains NUL")
        }
        var bufferSize = max(Int(sysconf(Int32(_SC_GETPW_R_SIZE_MAX))), 1024)
        while true {
            var buffer = [CChar](repeating: 0, count: bufferSize)
            // Copy the strings out while `buffer`, which they point into, is still borrowed.
            let (status, user) = buffer.withUnsafeMutableBufferPointer { bytes -> (Int32, TaskUser?) in
                var entry = passwd()
                var result: UnsafeMutablePointer<passwd>?
                let status = getpwnam_r(name, &entry, bytes.baseAddress!, bytes.count, &result)
                guard status == 0, let found = result?.pointee else { return (status, nil) }
                let user = TaskUser(
                    name: String(cString: found.pw_name),
                    uid: found.pw_uid,
                    gid: found.pw_gid,
                    homeDirectory: found.pw_dir.map { String(cString: $0) } ?? "/"
                )
                return (0, user)
            }
            if status == ERANGE, bufferSize < 1 << 20 {
                bufferSize *= 4
                continue
            }
            // glibc reports "no such user" as 0 with no result; some NSS modules use ENOENT/ESRCH.
            guard status == 0 || status == ENOENT || status == ESRCH else {
                throw LauncherError.system(
                    "getpwnam_r", errno: status, message: "cannot look up user '\(name)'", fallback: .internalError)
            }
            guard let user else {
                throw LauncherError(
                    code: .notFound,
                    message: "user '\(name)' does not exist on this agent; create the account or "
                        + "launch the task as an existing user"
                )
            }
            return user
        }
    }

    /// `name(uid:gid)`.
    package var description: String { "\(name)(\(uid):\(gid))" }
}
