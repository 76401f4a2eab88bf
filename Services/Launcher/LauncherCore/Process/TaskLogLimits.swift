/// How big a task's `stdout` and `stderr` files may grow: each is rotated like logrotate
/// (`stdout` → `stdout.1` → … → `stdout.<maxFiles-1>`, the oldest dropped) before it would pass
/// ``maxFileBytes``, so a task never holds more than `maxFiles × maxFileBytes` per stream.
///
/// `keel-task-supervisor` does the rotation: it reads the task's output through pipes and
/// writes the files itself, so it keeps going while the launcher is down. The newest output
/// is always in `stdout`/`stderr`; readers that follow a file notice a rotation by its inode.
package struct TaskLogLimits: Sendable, Hashable {
    /// The default cap of one file: 10 MiB.
    package static let defaultMaxFileBytes = 10 << 20
    /// The default number of files per stream: 5 (`stdout`, `stdout.1` … `stdout.4`).
    package static let defaultMaxFiles = 5

    /// A file is rotated before it would grow past this many bytes; at least 1.
    package var maxFileBytes: Int
    /// The most files kept per stream, the live one included; at least 1.
    package var maxFiles: Int

    /// Creates limits; both values must be at least 1, else ``LauncherError/Code/invalidArgument``.
    package init(maxFileBytes: Int = defaultMaxFileBytes, maxFiles: Int = defaultMaxFiles) throws(LauncherError) {
        guard maxFileBytes > 0, maxFiles > 0 else {
            throw LauncherError(
                code: .invalidArgument,
                message: "task log limits need at least 1 byte per file and 1 file, got \(maxFileBytes) bytes "
                    + "and \(maxFiles) files")
        }
        self.init(checkedMaxFileBytes: maxFileBytes, maxFiles: maxFiles)
    }

    private init(checkedMaxFileBytes maxFileBytes: Int, maxFiles: Int) {
        self.maxFileBytes = maxFileBytes
        self.maxFiles = maxFiles
    }

    /// 10 MiB × 5 files.
    package static let defaults = TaskLogLimits(checkedMaxFileBytes: defaultMaxFileBytes, maxFiles: defaultMaxFiles)

    /// Parses a size: bytes, or a number with a `K`, `M` or `G` suffix (also `KiB`, `MiB`,
    /// `GiB`; binary units). `nil` unless it is a positive whole number of bytes.
    package static func parseSize(_ text: String) -> Int? {
        let units: [(String, Int)] = [
            ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30),
        ]
        var number = Substring(text)
        var scale = 1
        for (suffix, value) in units where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            scale = value
            break
        }
        guard let value = Int(number), value > 0 else { return nil }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: scale)
        return overflow ? nil : bytes
    }
}
