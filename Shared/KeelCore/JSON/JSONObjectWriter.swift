package import Foundation

/// Appends the fields of one flat JSON object, for hot paths where `JSONEncoder`'s generic
/// containers cost too much (a launcher's task checkpoint, the tracer's span attributes). The
/// output is plain JSON that `JSONDecoder` reads: strings with `"`, `\` and control characters
/// escaped, `Data` as padded base64, keys in the order they are written.
package struct JSONObjectWriter {
    private var bytes: [UInt8]
    private var empty = true

    package init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
        bytes.append(UInt8(ascii: "{"))
    }

    package mutating func field(_ key: StaticString, string value: String) {
        self.key(key)
        append(string: value)
    }

    package mutating func field(_ key: StaticString, number value: some BinaryInteger) {
        self.key(key)
        bytes.append(contentsOf: String(value).utf8)
    }

    package mutating func field(_ key: StaticString, bool value: Bool) {
        self.key(key)
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    package mutating func field(_ key: StaticString, base64 value: Data) {
        self.key(key)
        append(base64: value)
    }

    package mutating func field(_ key: StaticString, base64Array values: [Data]) {
        self.key(key)
        bytes.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            append(base64: value)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    package mutating func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    /// A field whose key is only known at run time (escaped like a value).
    package mutating func field(named key: String, string value: String) {
        separate()
        append(string: key)
        bytes.append(UInt8(ascii: ":"))
        append(string: value)
    }

    private mutating func key(_ key: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount))
        bytes.append(contentsOf: "\":".utf8)
    }

    private mutating func separate() {
        if !empty { bytes.append(UInt8(ascii: ",")) }
        empty = false
    }

    /// A JSON string: `"` and `\` escaped, control characters as `\uXXXX`, the rest as UTF-8.
    private mutating func append(string value: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                bytes.append(UInt8(ascii: "\\"))
                bytes.append(byte)
            case 0..<0x20:
                bytes.append(contentsOf: "\\u00".utf8)
                bytes.append(Self.hexDigits[Int(byte >> 4)])
                bytes.append(Self.hexDigits[Int(byte & 0xf)])
            default:
                bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// `value` as a quoted, padded base64 string (what `JSONEncoder` writes for `Data`).
    private mutating func append(base64 value: Data) {
        bytes.append(UInt8(ascii: "\""))
        value.withUnsafeBytes { (input: UnsafeRawBufferPointer) in
            var index = 0
            while index + 3 <= input.count {
                let chunk = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
                appendSextets(chunk, count: 4)
                index += 3
            }
            switch input.count - index {
            case 1:
                appendSextets(UInt32(input[index]) << 16, count: 2)
                bytes.append(contentsOf: "==".utf8)
            case 2:
                appendSextets(UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8, count: 3)
                bytes.append(UInt8(ascii: "="))
            default:
                break
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// The first `count` base64 digits of the 24 bits in `chunk`.
    private mutating func appendSextets(_ chunk: UInt32, count: Int) {
        for position in 0..<count {
            bytes.append(Self.base64Digits[Int((chunk >> (18 - 6 * UInt32(position))) & 0x3f)])
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
    private static let base64Digits = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
}
