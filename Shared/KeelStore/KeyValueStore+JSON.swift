#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// JSON convenience for small `Codable` records (configuration, markers). Services store protobuf bytes
/// for their main state; use these where a schema-less record is simpler.
extension KeyValueStore {
    /// Encodes `value` as JSON (sorted keys, so equal values give equal bytes) and writes it under `key`.
    /// - Returns: the revision of this write.
    package func putJSON<T: Encodable>(_ key: String, _ value: T, lease: LeaseID? = nil) async throws -> Revision {
        try await self.put(key, value: Self.encodeJSON(value, key: key), lease: lease)
    }

    /// Reads `key` and decodes its JSON value as `T`, or returns `nil` if the key does not exist.
    /// - Throws: ``StoreError/Code/internalError`` if the stored bytes are not valid JSON for `T`.
    package func getJSON<T: Decodable>(_ key: String, as type: T.Type = T.self) async throws -> T? {
        guard let stored = try await self.get(key) else {
            return nil
        }
        return try Self.decodeJSON(type, from: stored.value, key: key)
    }

    /// Compare-and-put of a JSON value; see ``compareAndPut(_:value:expectedModRevision:lease:)``.
    package func compareAndPutJSON<T: Encodable>(
        _ key: String,
        _ value: T,
        expectedModRevision: Revision?,
        lease: LeaseID? = nil
    ) async throws -> Revision {
        try await self.compareAndPut(
            key,
            value: Self.encodeJSON(value, key: key),
            expectedModRevision: expectedModRevision,
            lease: lease
        )
    }

    private static func encodeJSON<T: Encodable>(_ value: T, key: String) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw StoreError(
                code: .invalidArgument,
                message: "cannot encode \(T.self) as JSON for '\(key)'",
                cause: error
            )
        }
    }

    private static func decodeJSON<T: Decodable>(_ type: T.Type, from bytes: [UInt8], key: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw StoreError.internalError(
                "the value at '\(key)' is not valid JSON for \(T.self); it was written by another writer or "
                    + "an incompatible version — inspect it and rewrite or delete the key",
                cause: error
            )
        }
    }
}
