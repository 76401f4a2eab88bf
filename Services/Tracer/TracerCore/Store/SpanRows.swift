import Foundation
import KeelCore
import SQLiteNIO

/// Conversions between store rows and span values.
enum SpanRows {
    /// The columns ``hop(_:isEvent:)`` reads, selected from `spans` as `s`.
    static let spanHopColumns = """
        s.name AS name, s.service AS service, s.start_ns AS start_ns, s.end_ns AS end_ns,
        s.trace_id AS trace_id, s.span_id AS span_id, s.attributes AS attributes, s.error AS error
        """

    /// An integer binding.
    static func integer(_ value: Int64) -> SQLiteData {
        .integer(numericCast(value))
    }

    /// An integer binding.
    static func integer(_ value: Int) -> SQLiteData {
        .integer(numericCast(value))
    }

    /// Text, or NULL for nil.
    static func text(_ value: String?) -> SQLiteData {
        value.map { .text($0) } ?? .null
    }

    /// Attributes as a JSON object with sorted keys (stable, greppable with `sqlite3`).
    ///
    /// Written with ``JSONObjectWriter``: every stored span and event is encoded once, and
    /// `JSONEncoder` made that a sixth of the tracer's CPU under a steady flow of task spans.
    static func json(_ attributes: [String: String]) -> String {
        guard !attributes.isEmpty else { return "{}" }
        var writer = JSONObjectWriter(capacity: attributes.reduce(2) { $0 + $1.key.utf8.count + $1.value.utf8.count + 6 })
        for (key, value) in attributes.sorted(by: { $0.key < $1.key }) {
            writer.field(named: key, string: value)
        }
        return String(decoding: writer.finish(), as: UTF8.self)
    }

    /// Attributes decoded from ``json(_:)`` text; a damaged value yields a single explanatory attribute
    /// rather than failing the whole query.
    static func attributes(_ text: String) -> [String: String] {
        guard !text.isEmpty else { return [:] }
        do {
            return try JSONDecoder().decode([String: String].self, from: Data(text.utf8))
        } catch {
            return ["keel.tracer.damaged_attributes": text]
        }
    }

    /// Decodes a row selected with ``spanHopColumns`` (or the same names from `span_events`).
    static func hop(_ row: SQLiteRow, isEvent: Bool) throws -> HopRecord {
        guard
            let name = row.column("name")?.string,
            let service = row.column("service")?.string,
            let start = row.column("start_ns")?.integer,
            let end = row.column("end_ns")?.integer,
            let traceID = row.column("trace_id")?.string,
            let spanID = row.column("span_id")?.string
        else {
            throw KeelError.internalError("a span row lacks required columns; the span store file is damaged: \(row)")
        }
        return HopRecord(
            name: name,
            service: service,
            startNanos: Int64(start),
            endNanos: Int64(end),
            traceID: traceID,
            spanID: spanID,
            attributes: attributes(row.column("attributes")?.string ?? ""),
            error: row.column("error")?.string ?? "",
            isEvent: isEvent
        )
    }
}
