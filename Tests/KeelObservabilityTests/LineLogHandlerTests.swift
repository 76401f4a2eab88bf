import KeelObservability
import Logging
import Synchronization
import Testing

@Suite("The daemons' log lines")
struct LineLogHandlerTests {
    /// Collects what a handler writes.
    final class Lines: Sendable {
        private let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
    }

    /// swift-log's `StreamLogHandler` writing into `Lines`.
    struct Stream: TextOutputStream, Sendable {
        let lines: Lines
        mutating func write(_ string: String) { lines.append(string) }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String { "the disk is full" }
    }

    /// The line without its timestamp (the first word), which the two handlers take at
    /// slightly different moments.
    func withoutTime(_ line: String) -> Substring {
        line.drop { $0 != " " }
    }

    @Test("lines are StreamLogHandler's: level, label, metadata sorted by key (logger's, then the call's), source, message")
    func sameAsStreamLogHandler() {
        let ours = Lines()
        let theirs = Lines()
        var lineLogger = Logger(label: "keel-launcher") { LineLogHandler(label: $0) { ours.append($0) } }
        var streamLogger = Logger(label: "keel-launcher") {
            StreamLogHandler(label: $0, stream: Stream(lines: theirs), metadataProvider: nil)
        }
        func use(_ logger: inout Logger) {
            logger.logLevel = .debug
            logger[metadataKey: "keel.task_id"] = "web-1"
            logger[metadataKey: "keel.framework_id"] = "fw"
            logger.info("task exited", metadata: ["keel.status": "exited with code 0", "keel.killed": "false"])
            logger.debug("plain")
            logger[metadataKey: "keel.task_id"] = nil
            logger.warning("overridden", metadata: ["keel.framework_id": "other", "list": ["a", "b"], "map": ["k": "v"]])
            logger.trace("not shown")
            logger.error("failed", error: Failure())
        }
        use(&lineLogger)
        use(&streamLogger)
        #expect(ours.all.count == 4)
        #expect(ours.all.map(withoutTime) == theirs.all.map(withoutTime))
        #expect(ours.all.allSatisfy { $0.hasSuffix("\n") && $0.filter { $0 == "\n" }.count == 1 })
    }

    @Test("an empty label and no metadata")
    func bare() {
        let ours = Lines()
        let theirs = Lines()
        let lineLogger = Logger(label: "") { LineLogHandler(label: $0) { ours.append($0) } }
        let streamLogger = Logger(label: "") { StreamLogHandler(label: $0, stream: Stream(lines: theirs), metadataProvider: nil) }
        lineLogger.notice("hello")
        streamLogger.notice("hello")
        #expect(ours.all.map(withoutTime) == theirs.all.map(withoutTime))
    }
}
