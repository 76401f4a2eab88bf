/// The device and inode of a sandbox file: what a path names at one moment.
package struct SandboxFileIdentity: Sendable, Hashable {
    package var device: UInt64
    package var inode: UInt64
}

/// Reads a task's output file (`stdout` or `stderr`) as it grows, across rotations.
///
/// `keel-task-supervisor` rotates a full `stdout` to `stdout.1` (and `stdout.1` to `stdout.2`,
/// and so on, see ``TaskLogLimits``) and starts a new `stdout`, to which it writes from then on.
/// The follower keeps the file it reads open, so it can read it to its end wherever it was
/// renamed, even once deleted, and its identity (device and inode) cannot be taken by a new file
/// meanwhile. At the end of its file, if `stdout` names another file, it goes on with the file
/// written next: the one numbered one lower than its own now (`stdout` after `stdout.1`). So
/// files rotated several times between two reads lose nothing; only files rotated out of the
/// kept ones (deleted) before the follower opened them are skipped, and it goes on with the
/// oldest one still kept.
package final class SandboxLogFollower {
    /// The sandbox the file is in.
    package let sandbox: TaskSandbox
    /// The followed path, relative to the sandbox (`stdout` or `stderr`).
    package let path: String
    /// Where the next read starts, in the file being read.
    package private(set) var offset: Int64
    private var file: SandboxOpenFile?

    /// How many rotated files (`path.1` …) are looked at, at most.
    static let rotatedFilesLimit = 100

    /// Follows `path` from `offset` of the file it names at the first read.
    package init(sandbox: TaskSandbox, path: String, offset: Int64 = 0) {
        self.sandbox = sandbox
        self.path = path
        self.offset = offset
    }

    /// Starts `lastBytes` before the current end of the file (or at its start).
    package init(sandbox: TaskSandbox, path: String, lastBytes: Int64) throws(LauncherError) {
        let file = try sandbox.openFile(path: path)
        let size = try file.read(offset: 0, length: 0).fileSize
        self.sandbox = sandbox
        self.path = path
        self.offset = max(0, size - lastBytes)
        self.file = file
    }

    /// Reads the next bytes (at most `length`); empty data means nothing new for now. The chunk's
    /// offset is the offset in the file it came from, so it starts again at 0 after a rotation.
    package func next(length: Int) throws(LauncherError) -> SandboxFileChunk {
        // Each round either returns or moves on to a newer file; the bound only guards against a
        // writer that rotates faster than this reads.
        for _ in 0...Self.rotatedFilesLimit + 1 {
            let file: SandboxOpenFile
            if let open = self.file {
                file = open
            } else {
                file = try sandbox.openFile(path: path)
                self.file = file
            }
            let chunk = try file.read(offset: offset, length: length)
            if !chunk.data.isEmpty {
                offset += Int64(chunk.data.count)
                return chunk
            }
            // At the end of its file: done with it only if `path` has moved on to another one.
            guard let current = sandbox.identity(path: path), current != file.identity else { return chunk }
            let rotated = rotatedFiles()
            let next: String
            if let index = rotated.firstIndex(of: file.identity) {
                next = index == 0 ? path : rotatedPath(index)
            } else {
                next = rotated.isEmpty ? path : rotatedPath(rotated.count)
            }
            self.file = try sandbox.openFile(path: next)
            offset = 0
        }
        return SandboxFileChunk(data: [], offset: offset, fileSize: offset)
    }

    /// The identities of `path.1`, `path.2`, … as they are now, newest first, up to the first
    /// one missing.
    private func rotatedFiles() -> [SandboxFileIdentity] {
        var files: [SandboxFileIdentity] = []
        for number in 1...Self.rotatedFilesLimit {
            guard let identity = sandbox.identity(path: rotatedPath(number)) else { break }
            files.append(identity)
        }
        return files
    }

    private func rotatedPath(_ number: Int) -> String {
        path + ".\(number)"
    }
}
