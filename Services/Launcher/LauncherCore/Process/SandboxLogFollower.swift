/// The device and inode of a sandbox file: what a path names at one moment.
package struct SandboxFileIdentity: Sendable, Hashable {
    package var device: UInt64
    package var inode: UInt64
}

/// Reads a task's output file (`stdout` or `stderr`) as it grows, across rotations.
///
/// `keel-task-supervisor` rotates a full `stdout` to `stdout.1` and starts a new `stdout` (see
/// ``TaskLogLimits``). The follower remembers which file it was reading; when `stdout` names
/// another one, it first reads what is left of its file, now `stdout.1`, and then goes on with
/// the new `stdout` from its start. Output is lost only if a file is rotated twice between
/// two reads (i.e. more than a whole file is written in that time).
package struct SandboxLogFollower: Sendable {
    /// The sandbox the file is in.
    package let sandbox: TaskSandbox
    /// The followed path, relative to the sandbox (`stdout` or `stderr`).
    package let path: String
    /// Where the next read starts, in the file being read.
    package private(set) var offset: Int64
    private var file: SandboxFileIdentity?

    /// Follows `path` from `offset` of the file it names now.
    package init(sandbox: TaskSandbox, path: String, offset: Int64 = 0) {
        self.sandbox = sandbox
        self.path = path
        self.offset = offset
    }

    /// Starts `lastBytes` before the current end of the file (or at its start).
    package init(sandbox: TaskSandbox, path: String, lastBytes: Int64) throws(LauncherError) {
        let (chunk, file) = try sandbox.readIdentified(path: path, offset: 0, length: 0)
        self.init(sandbox: sandbox, path: path, offset: max(0, chunk.fileSize - lastBytes))
        self.file = file
    }

    /// Reads the next bytes (at most `length`); empty data means nothing new for now. The chunk's
    /// offset is the offset in the file it came from, so it starts again at 0 after a rotation.
    package mutating func next(length: Int) throws(LauncherError) -> SandboxFileChunk {
        let (chunk, current) = try sandbox.readIdentified(path: path, offset: offset, length: length)
        if let file, file != current {
            // Rotated since the last read: finish the old file if it is still there as `.1`.
            if let (rest, rotated) = try? sandbox.readIdentified(path: path + ".1", offset: offset, length: length),
                rotated == file, !rest.data.isEmpty
            {
                offset += Int64(rest.data.count)
                return rest
            }
            self.file = current
            offset = 0
            return try next(length: length)
        }
        file = current
        offset += Int64(chunk.data.count)
        return chunk
    }
}
