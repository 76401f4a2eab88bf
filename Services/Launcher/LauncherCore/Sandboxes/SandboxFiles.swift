@preconcurrency import Glibc

/// File checks the sandbox garbage collector needs, on paths it found by listing directories.
enum SandboxFiles {
    /// Whether `path` is a directory itself (not a symlink to one).
    static func isDirectory(_ path: String) -> Bool {
        var info = Glibc.stat()
        return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
    }

    /// The latest modification time, in seconds since the epoch, of the directory `path` and of
    /// the entries directly in it (symlinks not followed); 0 if none can be read.
    static func lastChange(of path: String) -> Int {
        var latest = 0
        var info = Glibc.stat()
        if lstat(path, &info) == 0 { latest = info.st_mtim.tv_sec }
        guard let directory = opendir(path) else { return latest }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name == "." || name == ".." { continue }
            if lstat(path + "/" + name, &info) == 0 { latest = max(latest, info.st_mtim.tv_sec) }
        }
        return latest
    }

    /// How full the file system holding `path` is, as `df` counts it: used ÷ (used + available
    /// to unprivileged users); `nil` if `statvfs` fails.
    static func usage(of path: String) -> Double? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        let used = Double(info.f_blocks - info.f_bfree)
        let total = used + Double(info.f_bavail)
        return total > 0 ? used / total : nil
    }
}
