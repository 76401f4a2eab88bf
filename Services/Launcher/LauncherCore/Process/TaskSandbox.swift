@preconcurrency import Glibc
import Synchronization

/// The private directory a task runs in: its working directory and the home of its `stdout`
/// and `stderr` files.
///
/// Layout: `<workDir>/sandboxes/<frameworkID>/<taskID>/<runID>/{stdout,stderr}`. The launcher
/// runs as root, so every path a client names (for browsing or reading task output) must go
/// through ``resolve(relativePath:)``, which refuses anything outside the sandbox.
///
/// Limitation: resolution and the later `open` are two steps, so a task that swaps a directory
/// inside its own sandbox for a symlink between them could redirect a read. Final components
/// are opened with `O_NOFOLLOW`; a later step can switch to `openat2(RESOLVE_BENEATH)`.
package struct TaskSandbox: Sendable, Hashable {
    /// The canonical (symlink-free, absolute) path of the sandbox directory.
    package let root: String

    /// The file the task's standard output is appended to.
    package var stdoutPath: String { root + "/stdout" }

    /// The file the task's standard error is appended to.
    package var stderrPath: String { root + "/stderr" }

    /// Wraps an existing sandbox directory, canonicalising `root` with `realpath`.
    ///
    /// Throws ``LauncherError/Code/notFound`` if it does not exist and
    /// ``LauncherError/Code/invalidArgument`` if it is not a directory.
    package init(existingAt root: String) throws(LauncherError) {
        let canonical = try Self.realPath(root)
        guard try Self.fileType(canonical) == S_IFDIR else {
            throw LauncherError(
                code: .invalidArgument,
                message: "sandbox '\(root)' is not a directory; pass the directory created by TaskSandbox.create"
            )
        }
        self.root = canonical
    }

    /// A sandbox at `root`, already canonical.
    private init(canonicalRoot root: String) {
        self.root = root
    }

    /// `<workDir>/sandboxes` canonicalised, per work directory: resolved once, created if missing.
    private static let sandboxRoots = Mutex<[String: String]>([:])

    private static func canonicalSandboxes(workDir: String) throws(LauncherError) -> String {
        if let known = sandboxRoots.withLock({ $0[workDir] }) { return known }
        let path = (workDir.hasSuffix("/") ? workDir : workDir + "/") + "sandboxes"
        try makeDirectories(path)
        let canonical = try realPath(path)
        sandboxRoots.withLock { $0[workDir] = canonical }
        return canonical
    }

    /// Creates (or reuses) the sandbox for one run of a task and its empty `stdout`/`stderr`.
    ///
    /// Missing parent directories are created with mode 0755; existing output files are kept
    /// (they are opened for append). Each ID must be a single non-empty path component:
    /// no `/`, no NUL, not `.` or `..`, else ``LauncherError/Code/invalidArgument``.
    package static func create(
        workDir: String, frameworkID: String, taskID: String, runID: String
    ) throws(LauncherError) -> TaskSandbox {
        for (kind, id) in [("framework ID", frameworkID), ("task ID", taskID), ("run ID", runID)] {
            try validateComponent(id, kind: kind)
        }
        guard !workDir.isEmpty else {
            throw LauncherError(code: .invalidArgument, message: "work directory is empty; pass the agent's work dir")
        }
        var sandboxes = try canonicalSandboxes(workDir: workDir)
        // The usual case, a task's first run, takes two `mkdir` calls: the task's directory and
        // the run's. A missing parent (the framework's first task, or a sandboxes directory
        // removed by hand) makes the whole path.
        var taskDirectory = sandboxes + "/" + frameworkID + "/" + taskID
        var existed: [String] = []
        if mkdir(taskDirectory, 0o755) != 0 {
            switch errno {
            case EEXIST:
                existed.append(taskDirectory)
            case ENOENT:
                sandboxRoots.withLock { $0[workDir] = nil }
                sandboxes = try canonicalSandboxes(workDir: workDir)
                taskDirectory = sandboxes + "/" + frameworkID + "/" + taskID
                try makeDirectories(taskDirectory)
                existed.append(taskDirectory)
            case let code:
                throw LauncherError.system("mkdir", errno: code, message: "cannot create directory '\(taskDirectory)'")
            }
        }
        let path = taskDirectory + "/" + runID
        if mkdir(path, 0o755) != 0 {
            guard errno == EEXIST else {
                throw LauncherError.system("mkdir", errno: errno, message: "cannot create directory '\(path)'")
            }
            existed.append(path)
        }
        // Below the canonical root only the launcher creates directories, and none is a
        // symlink: the framework's directory, and any that existed before, are checked for
        // that, which is cheaper than resolving the whole path again. A directory made above
        // inside a checked one is one.
        for directory in [sandboxes + "/" + frameworkID] + existed {
            var info = Glibc.stat()
            guard lstat(directory, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
                throw LauncherError(
                    code: .launchFailed,
                    message: "'\(directory)' is not a directory the launcher created (a symlink or a file?); remove it")
            }
        }
        let sandbox = TaskSandbox(canonicalRoot: path)
        for file in [sandbox.stdoutPath, sandbox.stderrPath] {
            let fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0o644)
            guard fd >= 0 else {
                throw LauncherError.system("open", errno: errno, message: "cannot create sandbox file '\(file)'")
            }
            close(fd)
        }
        return sandbox
    }

    /// Makes the sandbox directory and its `stdout`/`stderr` owned by `user`, so a task running
    /// as that user can write in its working directory.
    ///
    /// Call this before launching a task with ``TaskLaunchSpec/user`` set. Requires root.
    package func setOwner(_ user: TaskUser) throws(LauncherError) {
        for path in [root, stdoutPath, stderrPath] {
            guard lchown(path, user.uid, user.gid) == 0 else {
                throw LauncherError.system(
                    "lchown", errno: errno, message: "cannot give '\(path)' to user '\(user.name)'")
            }
        }
    }

    /// Resolves a client-supplied path relative to the sandbox to a canonical absolute path.
    ///
    /// `""` and `"."` name the sandbox itself. Rejected with
    /// ``LauncherError/Code/permissionDenied``: absolute paths, any `..` component, and paths
    /// whose canonical form (symlinks followed with `realpath`) lies outside the sandbox.
    /// A path that does not exist is ``LauncherError/Code/notFound``.
    package func resolve(relativePath: String) throws(LauncherError) -> String {
        guard !relativePath.utf8.contains(0) else {
            throw LauncherError(code: .invalidArgument, message: "path contains a NUL byte; pass a plain relative path")
        }
        guard !relativePath.hasPrefix("/") else {
            throw escape(relativePath, because: "absolute paths are not allowed")
        }
        if relativePath.split(separator: "/").contains("..") {
            throw escape(relativePath, because: "'..' components are not allowed")
        }
        let joined = relativePath.isEmpty ? root : root + "/" + relativePath
        let canonical = try Self.realPath(joined)
        guard canonical == root || canonical.hasPrefix(root == "/" ? "/" : root + "/") else {
            throw escape(relativePath, because: "it resolves to '\(canonical)' through a symlink")
        }
        return canonical
    }

    private func escape(_ path: String, because reason: String) -> LauncherError {
        LauncherError(
            code: .permissionDenied,
            message: "path '\(path)' escapes the sandbox \(root): \(reason); name a path inside the sandbox"
        )
    }

    private static func validateComponent(_ id: String, kind: String) throws(LauncherError) {
        guard !id.isEmpty, id != ".", id != "..", !id.contains("/"), !id.utf8.contains(0) else {
            throw LauncherError(
                code: .invalidArgument,
                message: "\(kind) '\(id)' cannot be used as a directory name; it must be non-empty, "
                    + "not '.' or '..', and contain no '/' or NUL"
            )
        }
    }

    /// `mkdir -p` with mode 0755.
    private static func makeDirectories(_ path: String) throws(LauncherError) {
        if let failure = Directories.make(path, mode: 0o755) {
            throw LauncherError.system("mkdir", errno: failure.errno, message: "cannot create directory '\(failure.path)'")
        }
    }

    /// `realpath(3)` as a Swift string.
    static func realPath(_ path: String) throws(LauncherError) -> String {
        guard let resolved = realpath(path, nil) else {
            throw LauncherError.system("realpath", errno: errno, message: "cannot resolve '\(path)'")
        }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The `S_IFMT` bits of `path` (symlinks followed).
    static func fileType(_ path: String) throws(LauncherError) -> mode_t {
        var info = Glibc.stat()
        guard stat(path, &info) == 0 else {
            throw LauncherError.system("stat", errno: errno, message: "cannot stat '\(path)'")
        }
        return info.st_mode & S_IFMT
    }
}
