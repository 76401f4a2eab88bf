@preconcurrency import Glibc

/// Creating the directory trees the launcher keeps per task (sandbox, checkpoint, cgroups).
enum Directories {
    /// `mkdir -p`: creates `path` and any missing parents with `mode`; an existing directory
    /// (or a symlink to one) is fine. Returns `nil` on success, else the directory that could
    /// not be created and the `errno` of the failure.
    ///
    /// It tries `path` itself first and walks up only when a parent is missing, so the usual
    /// case, where only the last directory is new, costs one `mkdir` instead of one per
    /// component: the launcher creates several directories for every task it starts.
    static func make(_ path: String, mode: mode_t) -> (path: String, errno: Int32)? {
        let path = trimmingTrailingSlashes(path)
        if mkdir(path, mode) == 0 { return nil }
        let code = errno
        switch code {
        case EEXIST:
            return isDirectory(path) ? nil : (path, ENOTDIR)
        case ENOENT, ENOTDIR:
            // A parent is missing, or is not a directory: the walk up finds which.
            let parent = parent(of: path)
            guard parent != path else { return (path, code) }
            if let failure = make(parent, mode: mode) { return failure }
            if mkdir(path, mode) == 0 || (errno == EEXIST && isDirectory(path)) { return nil }
            return (path, errno)
        default:
            return (path, code)
        }
    }

    /// Whether `path` is a directory, symlinks followed.
    static func isDirectory(_ path: String) -> Bool {
        var info = Glibc.stat()
        return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    /// The directory holding `path`: `/` for a top-level path, `.` for a bare name.
    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func trimmingTrailingSlashes(_ path: String) -> String {
        var path = Substring(path)
        while path.count > 1, path.hasSuffix("/") { path = path.dropLast() }
        return String(path)
    }
}
