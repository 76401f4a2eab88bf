/// Argument checks shared by all backends, so every backend rejects the same requests with the same messages.
enum KeyValidation {
    /// The longest key (and prefix) in UTF-8 bytes; etcd accepts longer, but control-plane keys are paths.
    static let maxKeyBytes = 1024

    /// The largest value in bytes; etcd's default request limit is 1.5 MiB.
    static let maxValueBytes = 1536 * 1024

    /// Throws ``StoreError/Code/invalidArgument`` unless `key` is a valid key.
    static func check(key: String) throws(StoreError) {
        if key.isEmpty {
            throw .invalidArgument("key is empty; keys must be non-empty UTF-8 strings such as 'registry/agents/a1'")
        }
        try self.checkCommon(key, what: "key")
    }

    /// Throws ``StoreError/Code/invalidArgument`` unless `prefix` is a valid prefix (empty is allowed).
    static func check(prefix: String) throws(StoreError) {
        try self.checkCommon(prefix, what: "prefix")
    }

    /// Throws unless `prefix` is valid and non-empty (used where an empty prefix would mean "everything").
    static func check(nonEmptyPrefix prefix: String, operation: String) throws(StoreError) {
        if prefix.isEmpty {
            throw .invalidArgument(
                "\(operation) needs a non-empty prefix; an empty prefix would affect every key in the store"
            )
        }
        try self.checkCommon(prefix, what: "prefix")
    }

    /// Throws ``StoreError/Code/invalidArgument`` if `value` is larger than ``maxValueBytes``.
    static func check(value: [UInt8], key: String) throws(StoreError) {
        if value.count > self.maxValueBytes {
            throw .invalidArgument(
                "value for '\(key)' is \(value.count) bytes, more than the \(self.maxValueBytes)-byte limit; "
                    + "split it across several keys"
            )
        }
    }

    /// Throws ``StoreError/Code/invalidArgument`` if `election` is not usable as an election name.
    static func check(election: String) throws(StoreError) {
        if election.isEmpty {
            throw .invalidArgument("election name is empty; use a name such as 'keel/broker/leader'")
        }
        try self.checkCommon(election, what: "election name")
    }

    private static func checkCommon(_ string: String, what: String) throws(StoreError) {
        let bytes = string.utf8.count
        if bytes > self.maxKeyBytes {
            throw .invalidArgument(
                "\(what) '\(string.prefix(64))…' is \(bytes) bytes long; the limit is \(self.maxKeyBytes) UTF-8 bytes"
            )
        }
        if string.utf8.contains(0) {
            throw .invalidArgument(
                "\(what) '\(string.replacing("\0", with: "\\0"))' contains a NUL byte, which is not allowed"
            )
        }
    }

    /// etcd's range end for a prefix: the smallest byte string greater than every string with that prefix,
    /// or `nil` when there is none (empty prefix or all 0xFF bytes), meaning "to the end of the keyspace".
    static func prefixEnd(_ prefix: [UInt8]) -> [UInt8]? {
        var end = prefix
        while let last = end.last {
            if last < 0xFF {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return nil
    }

    /// Whether `key` starts with `prefix`, comparing UTF-8 bytes like etcd.
    static func key(_ key: String, hasPrefix prefix: String) -> Bool {
        key.utf8.starts(with: prefix.utf8)
    }

    /// Rejects transactions whose operations overlap, as etcd does ("duplicate key given in txn request").
    static func checkNoOverlap(_ operations: [StoreOperation]) throws(StoreError) {
        var keys = Set<String>()
        var prefixes: [String] = []
        for operation in operations {
            switch operation {
            case .put(let key, let value, _):
                try self.check(key: key)
                try self.check(value: value, key: key)
                if !keys.insert(key).inserted {
                    throw .invalidArgument("transaction touches '\(key)' twice; combine the operations into one")
                }
            case .delete(let key):
                try self.check(key: key)
                if !keys.insert(key).inserted {
                    throw .invalidArgument("transaction touches '\(key)' twice; combine the operations into one")
                }
            case .deletePrefix(let prefix):
                try self.check(nonEmptyPrefix: prefix, operation: "deletePrefix in a transaction")
                prefixes.append(prefix)
            }
        }
        for (index, prefix) in prefixes.enumerated() {
            if let key = keys.first(where: { self.key($0, hasPrefix: prefix) }) {
                throw .invalidArgument("transaction deletes prefix '\(prefix)' and also writes '\(key)' inside it")
            }
            for other in prefixes[(index + 1)...]
            where self.key(other, hasPrefix: prefix) || self.key(prefix, hasPrefix: other) {
                throw .invalidArgument("transaction deletes overlapping prefixes '\(prefix)' and '\(other)'")
            }
        }
    }

    /// Checks the keys named by transaction conditions.
    static func check(conditions: [StoreCondition]) throws(StoreError) {
        for condition in conditions {
            switch condition {
            case .modRevisionEquals(let key, _), .keyAbsent(let key), .keyExists(let key):
                try self.check(key: key)
            }
        }
    }
}
