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
        let copied: Void? = value.utf8.withContiguousStorageIfAvailable { utf8 in
            // Runs of bytes that need no escape are copied at once.
            var start = 0
            for index in utf8.indices where Self.needsEscape(utf8[index]) {
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<index]))
                appendEscaped(utf8[index])
                start = index + 1
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start...]))
        }
        if copied == nil {
            for byte in value.utf8 {
                if Self.needsEscape(byte) { appendEscaped(byte) } else { bytes.append(byte) }
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\")
    }

    private mutating func appendEscaped(_ byte: UInt8) {
        if byte < 0x20 {
            bytes.append(contentsOf: "\\u00".utf8)
            bytes.append(Self.hexDigits[Int(byte >> 4)])
            bytes.append(Self.hexDigits[Int(byte & 0xf)])
        } else {
            bytes.append(UInt8(ascii: "\\"))
            bytes.append(byte)
        }
    }

    /// `value` as a quoted, padded base64 string (what `JSONEncoder` writes for `Data`).
    private mutating func append(base64 value: Data) {
        let start = bytes.count
        let count = (value.count + 2) / 3 * 4
        bytes.append(contentsOf: repeatElement(UInt8(ascii: "="), count: count + 2))
        bytes[start] = UInt8(ascii: "\"")
        bytes[start + count + 1] = UInt8(ascii: "\"")
        bytes.withUnsafeMutableBufferPointer { output in
            value.withUnsafeBytes { (input: UnsafeRawBufferPointer) in
                Self.base64Digits.withUnsafeBufferPointer { digits in
                    var out = start + 1
                    var index = 0
                    while index + 3 <= input.count {
                        let chunk = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
                        output[out] = digits[Int(chunk >> 18 & 0x3f)]
                        output[out + 1] = digits[Int(chunk >> 12 & 0x3f)]
                        output[out + 2] = digits[Int(chunk >> 6 & 0x3f)]
                        output[out + 3] = digits[Int(chunk & 0x3f)]
                        out += 4
                        index += 3
                    }
                    // The rest (one or two bytes) leaves its padding `=` in place.
                    let rest = input.count - index
                    guard rest > 0 else { return }
                    var chunk = UInt32(input[index]) << 16
                    if rest == 2 { chunk |= UInt32(input[index + 1]) << 8 }
                    output[out] = digits[Int(chunk >> 18 & 0x3f)]
                    output[out + 1] = digits[Int(chunk >> 12 & 0x3f)]
                    if rest == 2 { output[out + 2] = digits[Int(chunk >> 6 & 0x3f)] }
                }
            }
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
    private static let base64Digits = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
}
