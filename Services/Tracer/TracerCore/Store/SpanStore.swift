package import Foundation
import KeelCore
package import Logging
import KeelStore
import SQLiteNIO

/// The span store: one SQLite file in WAL mode holding spans, their events, and an index on the task id.
///
/// - Exports write through one writer connection, one `BEGIN IMMEDIATE … COMMIT` per export, serialized
///   first come, first served by a ``StoreGate``; so concurrent exports from many daemons are safe.
/// - Queries use a second, read-only connection and never wait for writers.
/// - A span (trace id, span id) is stored once: a retried export that resends it changes nothing.
/// - ``prune(now:)`` drops spans older than the retention and the first-arrived spans beyond the cap;
///   ``SpanStoreService`` runs it periodically. Each export also trims the cap by a bounded amount.
///
/// Open with ``open(path:configuration:logger:)``; always ``close()`` before releasing it.
package final class SpanStore: Sendable {
    /// How many rows one pruning transaction deletes at most, so exports are never blocked for long.
    static let pruneChunk = 5_000

    let path: String
    let configuration: TracerConfiguration
    let logger: Logger
    let writer: SQLiteConnection
    let reader: SQLiteConnection
    let gate: StoreGate

    private init(
        path: String, configuration: TracerConfiguration, logger: Logger, writer: SQLiteConnection, reader: SQLiteConnection
    ) {
        self.path = path
        self.configuration = configuration
        self.logger = logger
        self.writer = writer
        self.reader = reader
        self.gate = StoreGate(path: path)
    }

    /// Opens (creating if needed) the span store at `path` and applies schema migrations.
    ///
    /// - Throws: ``KeelError/Code/unavailable`` when the file cannot be opened (missing directory,
    ///   permissions, full disk); ``KeelError/Code/failedPrecondition`` when it was written by a newer build.
    package static func open(
        path: String,
        configuration: TracerConfiguration = .defaults,
        logger: Logger
    ) async throws -> SpanStore {
        var logger = logger
        logger[metadataKey: "keel.store.path"] = "\(path)"
        let writer: SQLiteConnection
        do {
            writer = try await SQLiteConnection.openIgnoringCancellation(path: path, logger: logger)
        } catch {
            throw KeelError.unavailable(
                "cannot open the span store at \(path); check that its directory exists and is writable (--data-dir)",
                cause: error
            )
        }
        var reader: SQLiteConnection?
        do {
            try await SpanSchema.configure(writer)
            try await SpanSchema.migrate(writer, path: path, logger: logger)
            let opened = try await SQLiteConnection.openIgnoringCancellation(path: path, logger: logger)
            reader = opened
            try await SpanSchema.configure(opened)
            _ = try await opened.execute("PRAGMA query_only = ON")
            let store = SpanStore(path: path, configuration: configuration, logger: logger, writer: writer, reader: opened)
            let spans = try await store.count()
            logger.info("opened span store", metadata: ["keel.store.spans": "\(spans)"])
            return store
        } catch {
            try? await reader?.closeIgnoringCancellation()
            try? await writer.closeIgnoringCancellation()
            throw storeError(error, path: path, while: "opening the span store")
        }
    }

    /// Closes the file once in-flight exports and queries are done; later calls fail with
    /// ``KeelError/Code/unavailable``. Calling it twice is harmless.
    package func close() async throws {
        let closed = try await gate.close {
            do {
                try await reader.closeIgnoringCancellation()
                try await writer.closeIgnoringCancellation()
            } catch {
                throw Self.storeError(error, path: path, while: "closing the span store")
            }
        }
        if closed { logger.info("closed span store") }
    }

    /// Stores `spans` (and their events) in one transaction, skipping spans already stored.
    ///
    /// - Parameter receivedAt: the arrival time, which retention is measured from.
    /// - Returns: how many spans were new.
    @discardableResult
    package func insert(_ spans: [SpanRecord], receivedAt: Date = Date()) async throws -> Int {
        guard !spans.isEmpty else { return 0 }
        let received = Self.nanoseconds(receivedAt)
        let encoded = spans.map { span in
            (span, SpanRows.json(span.attributes), span.events.map { SpanRows.json($0.attributes) })
        }
        return try await storeOperation("storing \(spans.count) spans") {
            try await gate.write {
                try await writer.inTransaction {
                    var stored = 0
                    // Many rows per statement: SQLite compiles every statement it is given, and
                    // compiling costs more than inserting a row.
                    for chunk in encoded.chunked(into: Self.spansPerStatement) {
                        // Which spans are new matters only for their events; without events the
                        // count will do, and SQLite need not hand every inserted row back.
                        guard chunk.contains(where: { !$0.0.events.isEmpty }) else {
                            stored += try await insertSpansCounting(chunk, receivedNanos: received)
                            continue
                        }
                        let new = try await insertSpans(chunk, receivedNanos: received)
                        stored += new.count
                        var events: [(SpanEventRecord, index: Int, span: SpanRecord, attributes: String)] = []
                        for (span, _, eventAttributes) in chunk where new.contains(SpanKey(span)) {
                            for (index, event) in span.events.enumerated() {
                                events.append((event, index, span, eventAttributes[index]))
                            }
                        }
                        for events in events.chunked(into: Self.eventsPerStatement) {
                            try await insertEvents(events)
                        }
                    }
                    _ = try await trimToCap()
                    return stored
                }
            }
        }
    }

    /// Deletes spans that arrived more than the retention before `now`, then the first-arrived spans
    /// beyond the cap, in small transactions. Stops early (without error) when the task is cancelled.
    ///
    /// - Returns: how many spans were deleted (their events go with them).
    @discardableResult
    package func prune(now: Date = Date()) async throws -> Int {
        let (difference, overflow) = Self.nanoseconds(now)
            .subtractingReportingOverflow(Self.saturatingNanoseconds(configuration.retention))
        let cutoff = overflow ? Int64.min : difference
        var removed = 0
        while !Task.isCancelled {
            let deleted = try await storeOperation("pruning spans past the retention") {
                try await gate.write {
                    try await writer.inTransaction {
                        _ = try await writer.execute(
                            "DELETE FROM spans WHERE id IN (SELECT id FROM spans WHERE received_ns < ? LIMIT ?)",
                            [SpanRows.integer(cutoff), SpanRows.integer(Self.pruneChunk)]
                        )
                        return try await changes()
                    }
                }
            }
            removed += deleted
            if deleted < Self.pruneChunk { break }
        }
        while !Task.isCancelled {
            let deleted = try await storeOperation("trimming spans beyond the cap") {
                try await gate.write { try await writer.inTransaction { try await trimToCap() } }
            }
            removed += deleted
            if deleted < Self.pruneChunk { break }
        }
        return removed
    }

    /// How many spans are stored.
    package func count() async throws -> Int {
        try await storeOperation("counting spans") {
            try await gate.read {
                let rows = try await reader.execute("SELECT count(*) AS n FROM spans")
                return rows.first?.column("n")?.integer.map { Int($0) } ?? 0
            }
        }
    }

    /// How many spans (12 values each) and events (7 values each) one INSERT carries; both stay
    /// well under SQLite's limit of 32766 bound values.
    static let spansPerStatement = 100
    static let eventsPerStatement = 200

    /// A span's identity in the store.
    struct SpanKey: Hashable {
        let traceID: String
        let spanID: String

        init(_ span: SpanRecord) {
            self.init(traceID: span.traceID, spanID: span.spanID)
        }

        init(traceID: String, spanID: String) {
            self.traceID = traceID
            self.spanID = spanID
        }
    }

    /// Inserts the spans not stored yet (by trace id and span id). - Returns: how many it inserted.
    private func insertSpansCounting(
        _ spans: ArraySlice<(SpanRecord, String, [String])>, receivedNanos: Int64
    ) async throws -> Int {
        _ = try await writer.execute(
            """
            INSERT INTO spans (trace_id, span_id, parent_span_id, name, service, kind, start_ns, end_ns,
                               error, task_id, attributes, received_ns)
            VALUES \(Self.placeholders(rows: spans.count, columns: 12))
            ON CONFLICT (trace_id, span_id) DO NOTHING
            """,
            Self.spanBinds(spans, receivedNanos: receivedNanos)
        )
        return try await changes()
    }

    /// The values of ``insertSpans(_:receivedNanos:)``'s rows, in column order.
    private static func spanBinds(_ spans: ArraySlice<(SpanRecord, String, [String])>, receivedNanos: Int64) -> [SQLiteData] {
        var binds: [SQLiteData] = []
        binds.reserveCapacity(spans.count * 12)
        for (span, attributes, _) in spans {
            binds += [
                .text(span.traceID), .text(span.spanID), .text(span.parentSpanID), .text(span.name),
                .text(span.service), SpanRows.integer(span.kind), SpanRows.integer(span.startNanos),
                SpanRows.integer(span.endNanos), .text(span.error), SpanRows.text(span.taskID), .text(attributes),
                SpanRows.integer(receivedNanos),
            ]
        }
        return binds
    }

    /// Inserts the spans not stored yet (by trace id and span id). - Returns: those it inserted.
    private func insertSpans(
        _ spans: ArraySlice<(SpanRecord, String, [String])>, receivedNanos: Int64
    ) async throws -> Set<SpanKey> {
        let rows = try await writer.execute(
            """
            INSERT INTO spans (trace_id, span_id, parent_span_id, name, service, kind, start_ns, end_ns,
                               error, task_id, attributes, received_ns)
            VALUES \(Self.placeholders(rows: spans.count, columns: 12))
            ON CONFLICT (trace_id, span_id) DO NOTHING
            RETURNING trace_id, span_id
            """,
            Self.spanBinds(spans, receivedNanos: receivedNanos)
        )
        return Set(rows.compactMap { row in
            guard let traceID = row.column("trace_id")?.string, let spanID = row.column("span_id")?.string else { return nil }
            return SpanKey(traceID: traceID, spanID: spanID)
        })
    }

    private func insertEvents(_ events: ArraySlice<(SpanEventRecord, index: Int, span: SpanRecord, attributes: String)>) async throws {
        var binds: [SQLiteData] = []
        binds.reserveCapacity(events.count * 7)
        for (event, index, span, attributes) in events {
            binds += [
                .text(span.traceID), .text(span.spanID), SpanRows.integer(index), .text(event.name),
                SpanRows.integer(event.timeNanos), SpanRows.text(event.taskID), .text(attributes),
            ]
        }
        _ = try await writer.execute(
            """
            INSERT INTO span_events (trace_id, span_id, idx, name, time_ns, task_id, attributes)
            VALUES \(Self.placeholders(rows: events.count, columns: 7))
            ON CONFLICT DO NOTHING
            """,
            binds
        )
    }

    /// `(?, ?, …), (?, ?, …), …`: `rows` groups of `columns` placeholders.
    static func placeholders(rows: Int, columns: Int) -> String {
        let row = "(" + Array(repeating: "?", count: columns).joined(separator: ", ") + ")"
        return Array(repeating: row, count: rows).joined(separator: ", ")
    }

    /// Deletes up to ``pruneChunk`` of the first-arrived spans beyond the cap; call inside a write
    /// transaction. Ids grow with arrival, so the newest `maxSpans` spans all have ids above `max(id) - maxSpans`.
    private func trimToCap() async throws -> Int {
        let rows = try await writer.execute("SELECT max(id) AS top FROM spans")
        guard let top = rows.first?.column("top")?.integer else { return 0 }
        let limit = Int64(top) - Int64(configuration.maxSpans)
        guard limit > 0 else { return 0 }
        _ = try await writer.execute(
            "DELETE FROM spans WHERE id IN (SELECT id FROM spans WHERE id <= ? ORDER BY id LIMIT ?)",
            [SpanRows.integer(limit), SpanRows.integer(Self.pruneChunk)]
        )
        return try await changes()
    }

    /// Rows changed by the writer's last statement.
    private func changes() async throws -> Int {
        let rows = try await writer.execute("SELECT changes() AS n")
        return rows.first?.column("n")?.integer.map { Int($0) } ?? 0
    }
}

extension Array {
    /// The array in consecutive slices of at most `size` elements.
    func chunked(into size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
