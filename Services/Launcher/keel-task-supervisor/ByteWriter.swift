/// Writes text into a caller's buffer without allocating: for the records and paths a forked
/// supervisor and the spawner make on the stack (see ``SupervisorPlan``).
struct ByteWriter {
    private let buffer: UnsafeMutableRawBufferPointer
    /// How many bytes were written.
    private(set) var count = 0

    /// A writer that starts at the beginning of `buffer`; the caller makes it large enough.
    init(_ buffer: UnsafeMutableRawBufferPointer) {
        self.buffer = buffer
    }

    /// What was written.
    var written: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: buffer[0..<count])
    }

    mutating func append(_ text: StaticString) {
        for index in 0..<text.utf8CodeUnitCount {
            append(byte: text.utf8Start[index])
        }
    }

    /// The non-negative `value` in decimal.
    mutating func append(decimal value: Int) {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        var remaining = value
        for position in stride(from: count + digits - 1, through: count, by: -1) {
            buffer[position] = UInt8(ascii: "0") + UInt8(remaining % 10)
            remaining /= 10
        }
        count += digits
    }

    mutating func append(byte: UInt8) {
        buffer[count] = byte
        count += 1
    }
}
