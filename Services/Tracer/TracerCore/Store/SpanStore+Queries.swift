import KeelStore
import SQLiteNIO

extension SpanStore {
    /// The hops of `taskID`: every span whose `keel.task_id` is `taskID`, and every span event that
    /// carries `keel.task_id = taskID` itself; the most recent `limit`, ordered by start time.
    ///
    /// Ties are broken by end time, then arrival order, then the event's position in its span.
    package func taskHops(_ taskID: String, limit: Int) async throws -> [HopRecord] {
        try await storeOperation("reading the timeline of task \(taskID)") {
            try await gate.read {
                let rows = try await reader.execute(
                    """
                    SELECT * FROM (
                        SELECT \(SpanRows.spanHopColumns), s.id AS seq, -1 AS idx
                        FROM spans s WHERE s.task_id = ?1
                        UNION ALL
                        SELECT e.name, s.service, e.time_ns, e.time_ns, e.trace_id, e.span_id, e.attributes, '',
                               s.id, e.idx
                        FROM span_events e JOIN spans s ON s.trace_id = e.trace_id AND s.span_id = e.span_id
                        WHERE e.task_id = ?1
                        ORDER BY start_ns DESC, end_ns DESC, seq DESC, idx DESC
                        LIMIT ?2
                    ) ORDER BY start_ns, end_ns, seq, idx
                    """,
                    [.text(taskID), SpanRows.integer(max(limit, 0))]
                )
                return try rows.map { row in
                    try SpanRows.hop(row, isEvent: (row.column("idx")?.integer ?? -1) >= 0)
                }
            }
        }
    }

    /// The spans matching every filter of `search`, newest (by start time) first.
    ///
    /// A `keel.task_id` attribute filter uses the task index; other attribute filters match the
    /// stored attribute JSON exactly.
    package func search(_ search: SpanSearch) async throws -> [HopRecord] {
        var conditions: [String] = []
        var binds: [SQLiteData] = []
        for (key, value) in search.attributes.sorted(by: { $0.key < $1.key }) {
            if key == taskIDAttribute {
                conditions.append("s.task_id = ?")
                binds.append(.text(value))
            } else {
                conditions.append("EXISTS (SELECT 1 FROM json_each(s.attributes) AS a WHERE a.key = ? AND a.value = ?)")
                binds += [.text(key), .text(value)]
            }
        }
        if !search.namePrefix.isEmpty {
            // SQLite's substr counts Unicode code points, as `unicodeScalars` does.
            conditions.append("substr(s.name, 1, ?) = ?")
            binds += [SpanRows.integer(search.namePrefix.unicodeScalars.count), .text(search.namePrefix)]
        }
        if !search.service.isEmpty {
            conditions.append("s.service = ?")
            binds.append(.text(search.service))
        }
        if let since = search.sinceNanos {
            conditions.append("s.start_ns >= ?")
            binds.append(SpanRows.integer(since))
        }
        binds.append(SpanRows.integer(max(search.limit, 0)))
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let sql = """
            SELECT \(SpanRows.spanHopColumns) FROM spans s \(whereClause)
            ORDER BY s.start_ns DESC, s.id DESC LIMIT ?
            """
        return try await storeOperation("searching spans") {
            try await gate.read {
                try await reader.execute(sql, binds).map { try SpanRows.hop($0, isEvent: false) }
            }
        }
    }
}
