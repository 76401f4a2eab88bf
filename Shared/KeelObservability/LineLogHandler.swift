import Glibc
package import Logging
import Synchronization

/// The daemons' log handler: one line per message on standard error, in the format of
/// swift-log's `StreamLogHandler` (`TIME LEVEL LABEL: KEY=VALUE… [SOURCE] MESSAGE`, metadata
/// sorted by key), so logs read and parse as before.
///
/// What it does differently is when the work is done. `StreamLogHandler` renders all of a
/// logger's metadata again at every change of it, and the launcher sets a few keys on a logger
/// for every task it starts (task, framework, pid), most of them never logged with; here the
/// metadata is only rendered for a line that is written. The timestamp is formatted once per
/// second, and a line goes out in one `write`.
package struct LineLogHandler: LogHandler {
    package var logLevel: Logger.Level = .info
    package var metadata = Logger.Metadata()
    package var metadataProvider: Logger.MetadataProvider?

    private let label: String
    private let output: @Sendable (String) -> Void

    /// A handler writing to standard error.
    package init(label: String, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider) {
        self.init(label: label, metadataProvider: metadataProvider) { line in
            var line = line
            line.withUTF8 { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                    if written < 0, errno == EINTR { continue }
                    guard written > 0 else { return }
                    offset += written
                }
            }
        }
    }

    /// A handler giving each line (with its newline) to `output`.
    package init(
        label: String, metadataProvider: Logger.MetadataProvider? = nil, output: @escaping @Sendable (String) -> Void
    ) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.output = output
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty {
            merged.merge(provided) { _, provided in provided }
        }
        if let explicit = event.metadata, !explicit.isEmpty {
            merged.merge(explicit) { _, explicit in explicit }
        }
        if let error = event.error {
            merged["error.message"] = "\(error)"
            merged["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        var line = Self.timestamp()
        line += " "
        line += event.level.rawValue
        if !label.isEmpty { line += " " }
        line += label
        line += ":"
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            line += " "
            line += key
            line += "="
            line += value.description
        }
        line += " ["
        line += event.source
        line += "] "
        line += event.message.description
        line += "\n"
        output(line)
    }

    /// The local time of the last second a line was written in, formatted.
    private static let lastSecond = Mutex<(second: time_t, text: String)>((-1, ""))

    /// The current local time as `strftime` formats `%Y-%m-%dT%H:%M:%S%z`.
    static func timestamp() -> String {
        let now = time(nil)
        if let cached = lastSecond.withLock({ $0.second == now ? $0.text : nil }) { return cached }
        var seconds = now
        var parts = tm()
        guard localtime_r(&seconds, &parts) != nil else { return "<unknown>" }
        let text = withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buffer -> String in
            let count = strftime(buffer.baseAddress!, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
            return String(decoding: UnsafeRawBufferPointer(start: buffer.baseAddress, count: count), as: UTF8.self)
        }
        lastSecond.withLock { $0 = (now, text) }
        return text
    }
}
