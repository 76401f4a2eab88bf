import SQLiteNIO

/// SQL fragments and conversions between SQLite values and store types.
enum SQLRows {
    /// The `keel_kv` columns ``keyValue(_:)`` expects, in `SELECT` order.
    static let kvColumns = "key, value, create_revision, mod_revision, version, lease"

    /// ``kvColumns`` qualified with a table alias (result column names stay unqualified).
    static func kvColumns(table: String) -> String {
        ["key", "value", "create_revision", "mod_revision", "version", "lease"]
            .map { "\(table).\($0) AS \($0)" }
            .joined(separator: ", ")
    }

    /// A key or prefix as a BLOB of its UTF-8 bytes (keys are compared bytewise, like etcd).
    static func blob(_ string: String) -> SQLiteData {
        .blob(ByteBuffer(string: string))
    }

    /// Value bytes as a BLOB.
    static func blob(_ bytes: [UInt8]) -> SQLiteData {
        .blob(ByteBuffer(bytes: bytes))
    }

    /// A revision as an INTEGER.
    static func integer(_ revision: Revision) -> SQLiteData {
        .integer(numericCast(revision.rawValue))
    }

    /// An optional lease as an INTEGER or NULL.
    static func integer(_ lease: LeaseID?) -> SQLiteData {
        lease.map { .integer(numericCast($0.rawValue)) } ?? .null
    }

    /// A `WHERE` clause (and its bindings) selecting every key that starts with `prefix`.
    static func prefixClause(_ prefix: String, column: String = "key") -> (sql: String, binds: [SQLiteData]) {
        let start = Array(prefix.utf8)
        if start.isEmpty {
            return ("1", [])  // Every key.
        }
        guard let end = KeyValidation.prefixEnd(start) else {
            return ("\(column) >= ?", [.blob(ByteBuffer(bytes: start))])
        }
        return (
            "\(column) >= ? AND \(column) < ?",
            [.blob(ByteBuffer(bytes: start)), .blob(ByteBuffer(bytes: end))]
        )
    }

    /// Decodes a row selected with ``kvColumns``.
    static func keyValue(_ row: SQLiteRow) throws -> KeyValue {
        guard
            let key = row.column("key").flatMap(self.string(_:)),
            let createRevision = row.column("create_revision")?.integer,
            let modRevision = row.column("mod_revision")?.integer,
            let version = row.column("version")?.integer
        else {
            throw StoreError.internalError("a row in keel_kv is missing columns; the store file is damaged: \(row)")
        }
        return KeyValue(
            key: key,
            value: row.column("value").map(self.bytes(_:)) ?? [],
            createRevision: Revision(Int64(createRevision)),
            modRevision: Revision(Int64(modRevision)),
            version: Int64(version),
            lease: row.column("lease")?.integer.map { LeaseID(Int64($0)) }
        )
    }

    /// A key column (BLOB of UTF-8, or TEXT) as a string.
    static func string(_ data: SQLiteData) -> String? {
        switch data {
        case .blob(let buffer): String(decoding: buffer.readableBytesView, as: UTF8.self)
        case .text(let text): text
        default: nil
        }
    }

    /// A value column as bytes; SQLite hands back a zero-length BLOB as NULL.
    static func bytes(_ data: SQLiteData) -> [UInt8] {
        switch data {
        case .blob(let buffer): Array(buffer.readableBytesView)
        case .text(let text): Array(text.utf8)
        default: []
        }
    }
}
