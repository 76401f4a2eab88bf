/// A point in the store's history; maps 1:1 onto etcd's `revision` (an `int64` that every committed write
/// bumps by one, shared by all keys).
///
/// `0` means "before anything was written". A transaction's writes all carry the same revision.
package struct Revision: RawRepresentable, Hashable, Comparable, Sendable, Codable,
    ExpressibleByIntegerLiteral, CustomStringConvertible
{
    /// The etcd-compatible 64-bit revision number.
    package var rawValue: Int64

    /// Wraps a raw revision number.
    package init(rawValue: Int64) {
        self.rawValue = rawValue
    }

    /// Wraps a raw revision number.
    package init(_ rawValue: Int64) {
        self.rawValue = rawValue
    }

    /// Allows `let r: Revision = 5` in code and tests.
    package init(integerLiteral value: Int64) {
        self.rawValue = value
    }

    /// The revision of an empty store.
    package static let zero = Revision(0)

    /// The next revision.
    package var next: Revision { Revision(self.rawValue + 1) }

    /// Orders revisions by their number.
    package static func < (lhs: Revision, rhs: Revision) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    /// Encodes as a bare JSON number.
    package init(from decoder: any Decoder) throws {
        self.rawValue = try decoder.singleValueContainer().decode(Int64.self)
    }

    /// Encodes as a bare JSON number.
    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.rawValue)
    }

    /// The decimal number.
    package var description: String { String(self.rawValue) }
}

/// Identifies a lease (etcd `LeaseID`, an `int64`; `0` is never a valid lease).
package struct LeaseID: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    /// The etcd-compatible 64-bit lease identifier.
    package var rawValue: Int64

    /// Wraps a raw lease identifier.
    package init(rawValue: Int64) {
        self.rawValue = rawValue
    }

    /// Wraps a raw lease identifier.
    package init(_ rawValue: Int64) {
        self.rawValue = rawValue
    }

    /// Encodes as a bare JSON number.
    package init(from decoder: any Decoder) throws {
        self.rawValue = try decoder.singleValueContainer().decode(Int64.self)
    }

    /// Encodes as a bare JSON number.
    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.rawValue)
    }

    /// Lower-case hexadecimal, as etcd tools print lease IDs.
    package var description: String { String(self.rawValue, radix: 16) }
}

/// One stored key with its value and etcd-style metadata (`mvccpb.KeyValue`).
package struct KeyValue: Hashable, Sendable {
    /// The key; a non-empty UTF-8 string of at most 1024 bytes without NUL.
    package var key: String
    /// The value bytes (usually a serialized protobuf message).
    package var value: [UInt8]
    /// The revision at which the key was created (or re-created after a delete).
    package var createRevision: Revision
    /// The revision of the last write to this key.
    package var modRevision: Revision
    /// How many times the key was written since it was created (1 after the first put).
    package var version: Int64
    /// The lease the key is attached to; the key is deleted when the lease ends.
    package var lease: LeaseID?

    /// Creates a key-value record.
    package init(
        key: String,
        value: [UInt8],
        createRevision: Revision,
        modRevision: Revision,
        version: Int64,
        lease: LeaseID?
    ) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.lease = lease
    }
}

/// The keys under a prefix together with the revision they were read at; see ``KeyValueStore/snapshot(prefix:)``.
package struct StoreSnapshot: Hashable, Sendable {
    /// The store revision at which ``keyValues`` was read; watch from it to continue without gaps.
    package var revision: Revision
    /// The keys under the prefix, sorted by key bytes.
    package var keyValues: [KeyValue]

    /// Creates a snapshot.
    package init(revision: Revision, keyValues: [KeyValue]) {
        self.revision = revision
        self.keyValues = keyValues
    }
}

/// One write inside ``KeyValueStore/transaction(_:conditions:)`` (etcd `RequestOp` put / delete-range).
package enum StoreOperation: Hashable, Sendable {
    /// Sets `key` to `value`, attached to `lease` if given (detached otherwise, like an etcd put).
    case put(key: String, value: [UInt8], lease: LeaseID? = nil)
    /// Deletes `key` if it exists.
    case delete(key: String)
    /// Deletes every key that starts with `prefix` (etcd delete-range with the prefix's range end).
    case deletePrefix(String)
}

/// A precondition of ``KeyValueStore/transaction(_:conditions:)`` (etcd `Compare`).
package enum StoreCondition: Hashable, Sendable {
    /// The key exists and its ``KeyValue/modRevision`` equals `revision` (etcd `MOD(key) = rev`).
    case modRevisionEquals(key: String, revision: Revision)
    /// The key does not exist (etcd `CREATE(key) = 0`).
    case keyAbsent(key: String)
    /// The key exists, whatever its revision (etcd `CREATE(key) > 0`).
    case keyExists(key: String)
}

/// The outcome of ``KeyValueStore/transaction(_:conditions:)`` (etcd `TxnResponse`).
package struct TransactionResult: Hashable, Sendable {
    /// `true` if every condition held and all operations were applied; `false` if nothing was written.
    package var succeeded: Bool
    /// The store revision after the call: the transaction's own revision if it wrote anything,
    /// otherwise the current revision at which the conditions were evaluated.
    package var revision: Revision
    /// How many keys the transaction's delete operations removed.
    package var deletedCount: Int

    /// Creates a transaction result.
    package init(succeeded: Bool, revision: Revision, deletedCount: Int) {
        self.succeeded = succeeded
        self.revision = revision
        self.deletedCount = deletedCount
    }
}

/// One change delivered by ``KeyValueStore/watch(prefix:fromRevision:)`` (etcd `mvccpb.Event`).
package struct WatchEvent: Hashable, Sendable {
    /// Whether the key was written or removed.
    package enum Kind: Hashable, Sendable {
        /// The key was created or updated.
        case put
        /// The key was deleted (explicitly, by prefix, or because its lease ended).
        case delete
    }

    /// Put or delete.
    package var kind: Kind
    /// The key that changed.
    package var key: String
    /// The new value for a put; empty for a delete.
    package var value: [UInt8]
    /// The revision of this change.
    package var modRevision: Revision
    /// The key's create revision for a put; `zero` for a delete.
    package var createRevision: Revision
    /// The key's lease for a put; `nil` for a delete.
    package var lease: LeaseID?

    /// Creates a watch event.
    package init(
        kind: Kind,
        key: String,
        value: [UInt8],
        modRevision: Revision,
        createRevision: Revision = .zero,
        lease: LeaseID? = nil
    ) {
        self.kind = kind
        self.key = key
        self.value = value
        self.modRevision = modRevision
        self.createRevision = createRevision
        self.lease = lease
    }
}

/// Proof of leadership returned by ``KeyValueStore/campaign(election:candidate:lease:)``.
///
/// Leadership lasts while ``key`` exists, i.e. until ``KeyValueStore/resign(_:)`` or until ``lease`` ends.
package struct LeaderKey: Hashable, Sendable {
    /// The election name.
    package var election: String
    /// The value the leader campaigned with (usually its address or node ID).
    package var candidate: String
    /// The key holding the candidacy: `<election>/<lease in hex>`, as etcd's election recipe does.
    package var key: String
    /// The create revision of ``key``; the lowest one under the election prefix is the leader.
    package var createRevision: Revision
    /// The lease that keeps the candidacy alive.
    package var lease: LeaseID

    /// Creates a leader key.
    package init(election: String, candidate: String, key: String, createRevision: Revision, lease: LeaseID) {
        self.election = election
        self.candidate = candidate
        self.key = key
        self.createRevision = createRevision
        self.lease = lease
    }
}
