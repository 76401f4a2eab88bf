/// One record of the checkpoint journal (``CheckpointJournal``) on disk.
///
/// ```
/// u32 magic "KJF1"   u32 key length   u32 payload length   u32 CRC-32 of the 12 bytes before and the key
/// key bytes          (framework id, NUL, task id)
/// u32 CRC-32 of the payload
/// payload bytes      (the task's record as JSON; empty: the task's record was removed)
/// ```
///
/// Integers are little-endian. The key has a checksum of its own, so a damaged payload is still
/// known to be that task's: the launcher reports the task instead of losing it silently. A
/// damaged header is skipped by searching for the next valid one.
package struct JournalFrame: Equatable {
    package var key: LauncherTaskKey
    /// The record's bytes; nil for a removal.
    package var payload: [UInt8]?

    package init(key: LauncherTaskKey, payload: [UInt8]?) {
        self.key = key
        self.payload = payload
    }

    static let magic: UInt32 = 0x3146_4A4B  // "KJF1" in little-endian order
    static let headerSize = 16
    /// Bounds that no real key or record reaches; a header past them is damaged.
    static let maxKeyLength = 4096
    static let maxPayloadLength = 64 * 1024 * 1024

    /// The bytes a frame of `key` with a payload of `payloadCount` bytes takes.
    static func size(key: LauncherTaskKey, payloadCount: Int) -> Int {
        headerSize + key.frameworkID.utf8.count + 1 + key.taskID.utf8.count + 4 + payloadCount
    }

    /// The frame's bytes, appended to `bytes`.
    package func append(to bytes: inout [UInt8]) {
        let keyBytes = Array(key.frameworkID.utf8) + [0] + Array(key.taskID.utf8)
        let body = payload ?? []
        let start = bytes.count
        Self.appendInteger(Self.magic, to: &bytes)
        Self.appendInteger(UInt32(keyBytes.count), to: &bytes)
        Self.appendInteger(UInt32(body.count), to: &bytes)
        var headerCRC = CRC32()
        headerCRC.update(bytes[start...])
        headerCRC.update(keyBytes[...])
        Self.appendInteger(headerCRC.value, to: &bytes)
        bytes += keyBytes
        var payloadCRC = CRC32()
        payloadCRC.update(body[...])
        Self.appendInteger(payloadCRC.value, to: &bytes)
        bytes += body
    }

    /// What is found at one offset of a journal.
    enum Parsed {
        /// A whole frame of `length` bytes.
        case frame(JournalFrame, length: Int)
        /// A valid header whose payload does not match its checksum.
        case damagedPayload(LauncherTaskKey, length: Int)
        /// The frame runs past the end of the bytes (a write cut short, if at the end).
        case truncated
        /// No valid header here.
        case invalid
    }

    /// Parses the frame at `offset` of `bytes`.
    static func parse(_ bytes: [UInt8], at offset: Int) -> Parsed {
        guard bytes.count - offset >= headerSize else { return .truncated }
        guard integer(bytes, at: offset) == magic else { return .invalid }
        let keyLength = Int(integer(bytes, at: offset + 4))
        let payloadLength = Int(integer(bytes, at: offset + 8))
        guard keyLength <= maxKeyLength, payloadLength <= maxPayloadLength else { return .invalid }
        let keyStart = offset + headerSize
        guard bytes.count - keyStart >= keyLength else { return .truncated }
        var headerCRC = CRC32()
        headerCRC.update(bytes[offset..<(offset + 12)])
        headerCRC.update(bytes[keyStart..<(keyStart + keyLength)])
        guard headerCRC.value == integer(bytes, at: offset + 12) else { return .invalid }
        let keyBytes = bytes[keyStart..<(keyStart + keyLength)]
        guard let separator = keyBytes.firstIndex(of: 0) else { return .invalid }
        let key = LauncherTaskKey(
            frameworkID: String(decoding: keyBytes[..<separator], as: UTF8.self),
            taskID: String(decoding: keyBytes[(separator + 1)...], as: UTF8.self))
        let payloadStart = keyStart + keyLength + 4
        let length = payloadStart + payloadLength - offset
        guard bytes.count - offset >= length else { return .truncated }
        let payload = bytes[payloadStart..<(payloadStart + payloadLength)]
        var payloadCRC = CRC32()
        payloadCRC.update(payload)
        guard payloadCRC.value == integer(bytes, at: keyStart + keyLength) else {
            return .damagedPayload(key, length: length)
        }
        return .frame(JournalFrame(key: key, payload: payload.isEmpty ? nil : Array(payload)), length: length)
    }

    private static func appendInteger(_ value: UInt32, to bytes: inout [UInt8]) {
        bytes += [UInt8(value & 0xff), UInt8(value >> 8 & 0xff), UInt8(value >> 16 & 0xff), UInt8(value >> 24)]
    }

    private static func integer(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
            | UInt32(bytes[offset + 3]) << 24
    }
}

/// CRC-32 (IEEE 802.3, the checksum of zlib and gzip).
///
/// Computed eight bytes at a time with eight tables ("slicing-by-8"): every status update and
/// acknowledgement of every task passes through the journal, and the byte-at-a-time loop was
/// over a percent of the launcher's CPU.
package struct CRC32 {
    package private(set) var value: UInt32 = 0

    package init() {}

    package mutating func update(_ bytes: ArraySlice<UInt8>) {
        var crc = ~value
        bytes.withUnsafeBufferPointer { bytes in
            Self.tables.withUnsafeBufferPointer { tables in
                var index = 0
                let count = bytes.count
                while count - index >= 8 {
                    let low =
                        crc ^ (UInt32(bytes[index]) | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2]) << 16
                            | UInt32(bytes[index + 3]) << 24)
                    crc =
                        tables[7 * 256 + Int(low & 0xff)] ^ tables[6 * 256 + Int(low >> 8 & 0xff)]
                        ^ tables[5 * 256 + Int(low >> 16 & 0xff)] ^ tables[4 * 256 + Int(low >> 24)]
                        ^ tables[3 * 256 + Int(bytes[index + 4])] ^ tables[2 * 256 + Int(bytes[index + 5])]
                        ^ tables[1 * 256 + Int(bytes[index + 6])] ^ tables[Int(bytes[index + 7])]
                    index += 8
                }
                while index < count {
                    crc = tables[Int((crc ^ UInt32(bytes[index])) & 0xff)] ^ (crc >> 8)
                    index += 1
                }
            }
        }
        value = ~crc
    }

    /// Table `k` (entries `256 k ..< 256 (k + 1)`) advances a byte's CRC by `k` more zero bytes.
    private static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for index in 0..<256 {
            var entry = UInt32(index)
            for _ in 0..<8 {
                entry = entry & 1 == 1 ? 0xEDB8_8320 ^ (entry >> 1) : entry >> 1
            }
            tables[index] = entry
        }
        for index in 0..<256 {
            for slice in 1..<8 {
                let previous = tables[(slice - 1) * 256 + index]
                tables[slice * 256 + index] = tables[Int(previous & 0xff)] ^ (previous >> 8)
            }
        }
        return tables
    }()
}
