package import Foundation
package import KeelAPI
import KeelCore
package import KeelStore
package import Logging
import SwiftProtobuf

/// The registry's records of frameworks, persisted in the store under `/keel/registry/frameworks/`.
///
/// Registration assigns a FrameworkID; re-registration with that id (failover) updates the
/// record; teardown completes it for good. Every change is a compare-and-put on the record's
/// revision, so concurrent changes never interleave half-way.
package struct FrameworkRegistry: Sendable {
    /// The key prefix of framework records.
    package static let prefix = "/keel/registry/frameworks/"

    private let store: any KeyValueStore
    private let logger: Logger

    /// Creates the registry over `store`.
    package init(store: any KeyValueStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// Registers a new framework, or re-registers an existing one when `info.id` is set.
    ///
    /// - Throws: `KeelError` `.invalidArgument` for a malformed FrameworkInfo, `.notFound` for
    ///   an unknown id, `.failedPrecondition` for a completed framework.
    package func register(_ info: Keel_V1_FrameworkInfo, now: Date = Date()) async throws -> Keel_V1_FrameworkRecord {
        try Self.validate(info)
        if info.hasID, !info.id.value.isEmpty {
            return try await reregister(info, now: now)
        }
        var info = info
        info.id = .with { $0.value = FrameworkID.random().value }
        if info.roles.isEmpty { info.roles = ["*"] }
        let record = Keel_V1_FrameworkRecord.with {
            $0.frameworkInfo = info
            $0.state = .active
            $0.registeredAt = Google_Protobuf_Timestamp(date: now)
        }
        _ = try await store.compareAndPut(key(info.id.value), value: try record.serializedBytes(), expectedModRevision: nil)
        logger.info("framework registered", metadata: ["keel.framework_id": "\(info.id.value)", "keel.name": "\(info.name)"])
        return record
    }

    private func reregister(_ info: Keel_V1_FrameworkInfo, now: Date) async throws -> Keel_V1_FrameworkRecord {
        let id = info.id.value
        guard let stored = try await store.get(key(id)) else {
            throw KeelError.notFound("framework \(id) is not registered; leave the id empty to register a new framework")
        }
        var record = try Keel_V1_FrameworkRecord(serializedBytes: stored.value)
        guard record.state != .completed else {
            throw KeelError.failedPrecondition(
                "framework \(id) was torn down and cannot re-register; register a new framework (empty id)"
            )
        }
        let owner = record.frameworkInfo.principal
        guard owner.isEmpty || owner == info.principal else {
            throw KeelError.permissionDenied(
                "framework \(id) was registered by principal '\(owner)'; only '\(owner)' may re-register it, so use its credential"
            )
        }
        var info = info
        if info.roles.isEmpty { info.roles = ["*"] }
        record.frameworkInfo = info
        _ = try await store.compareAndPut(key(id), value: try record.serializedBytes(), expectedModRevision: stored.modRevision)
        logger.info("framework re-registered", metadata: ["keel.framework_id": "\(id)"])
        return record
    }

    /// Changes what a framework may change about itself (Mesos' UPDATE_FRAMEWORK): roles,
    /// capabilities, name, labels, web UI and failover timeout. Its id, principal and user stay.
    ///
    /// Throws ``KeelError/Code/notFound`` for an unknown framework,
    /// ``KeelError/Code/failedPrecondition`` for a completed one and
    /// ``KeelError/Code/invalidArgument`` for invalid info or an attempt to change the user;
    /// nothing changes on error.
    package func update(_ info: Keel_V1_FrameworkInfo) async throws -> Keel_V1_FrameworkRecord {
        let id = info.id.value
        guard !id.isEmpty else {
            throw KeelError.invalidArgument("framework_info.id is empty; name the framework to update")
        }
        guard let stored = try await store.get(key(id)) else {
            throw KeelError.notFound("framework \(id) is not registered")
        }
        var record = try Keel_V1_FrameworkRecord(serializedBytes: stored.value)
        guard record.state != .completed else {
            throw KeelError.failedPrecondition("framework \(id) was torn down; register a new framework")
        }
        var changed = info
        changed.principal = record.frameworkInfo.principal
        if changed.user.isEmpty { changed.user = record.frameworkInfo.user }
        guard changed.user == record.frameworkInfo.user else {
            throw KeelError.invalidArgument(
                "framework \(id) runs as user '\(record.frameworkInfo.user)'; the user cannot change (register a new framework)")
        }
        if changed.roles.isEmpty { changed.roles = ["*"] }
        try Self.validate(changed)
        record.frameworkInfo = changed
        _ = try await store.compareAndPut(key(id), value: try record.serializedBytes(), expectedModRevision: stored.modRevision)
        logger.info("framework updated", metadata: ["keel.framework_id": "\(id)", "keel.roles": "\(changed.roles)"])
        return record
    }

    /// The record of one framework.
    package func get(_ id: String) async throws -> Keel_V1_FrameworkRecord {
        guard !id.isEmpty else { throw KeelError.invalidArgument("framework_id is empty; pass the id returned by RegisterFramework") }
        guard let stored = try await store.get(key(id)) else {
            throw KeelError.notFound("framework \(id) is not registered")
        }
        return try Keel_V1_FrameworkRecord(serializedBytes: stored.value)
    }

    /// Every record, active ones only unless `includeCompleted`.
    package func list(includeCompleted: Bool) async throws -> [Keel_V1_FrameworkRecord] {
        try await store.range(prefix: Self.prefix).compactMap { entry in
            let record = try Keel_V1_FrameworkRecord(serializedBytes: entry.value)
            return includeCompleted || record.state != .completed ? record : nil
        }
    }

    /// Completes a framework: it can no longer subscribe and the broker kills its tasks.
    package func teardown(_ id: String, now: Date = Date()) async throws -> Keel_V1_FrameworkRecord {
        guard !id.isEmpty else { throw KeelError.invalidArgument("framework_id is empty; say which framework to tear down") }
        guard let stored = try await store.get(key(id)) else {
            throw KeelError.notFound("framework \(id) is not registered")
        }
        var record = try Keel_V1_FrameworkRecord(serializedBytes: stored.value)
        guard record.state != .completed else { return record }
        record.state = .completed
        record.completedAt = Google_Protobuf_Timestamp(date: now)
        _ = try await store.compareAndPut(key(id), value: try record.serializedBytes(), expectedModRevision: stored.modRevision)
        logger.notice("framework torn down", metadata: ["keel.framework_id": "\(id)"])
        return record
    }

    private func key(_ id: String) -> String { Self.prefix + id }

    /// Checks a FrameworkInfo a caller sent; the message says which field is wrong and how.
    package static func validate(_ info: Keel_V1_FrameworkInfo) throws {
        guard !info.name.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw KeelError.invalidArgument("framework_info.name is empty; give the framework a name")
        }
        guard info.name.utf8.count <= 256 else {
            throw KeelError.invalidArgument("framework_info.name is longer than 256 bytes")
        }
        guard !info.user.isEmpty else {
            throw KeelError.invalidArgument("framework_info.user is empty; name the Unix user tasks run as")
        }
        if info.hasID, !info.id.value.isEmpty {
            _ = try FrameworkID(validating: info.id.value)
        }
        if info.hasFailoverTimeout {
            let timeout = info.failoverTimeout
            guard timeout.seconds >= 0, timeout.nanos >= 0 else {
                throw KeelError.invalidArgument("framework_info.failover_timeout is negative")
            }
        }
        for role in info.roles {
            try validateRole(role)
        }
        guard Set(info.roles).count == info.roles.count else {
            throw KeelError.invalidArgument("framework_info.roles names a role twice (\(info.roles)); list each role once")
        }
    }

    /// Checks a role name: `*`, or `/`-separated segments of letters, digits, `.`, `_`, `-`.
    package static func validateRole(_ role: String) throws {
        if role == "*" { return }
        let segments = role.split(separator: "/", omittingEmptySubsequences: false)
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        for segment in segments {
            guard !segment.isEmpty, segment != ".", segment != "..", segment.allSatisfy({ allowed.contains($0) }) else {
                throw KeelError.invalidArgument(
                    "role '\(role)' is not a valid role: use '*' or path segments of letters, digits, '.', '_' and '-' separated by '/' (e.g. eng/backend)"
                )
            }
        }
    }
}
