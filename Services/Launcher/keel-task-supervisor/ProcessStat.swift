@preconcurrency import Glibc

/// Fields of `/proc/PID/stat`, read from its bytes without making strings.
enum ProcessStat {
    /// Writes `/proc/PID/stat` and a NUL into `buffer` (32 bytes are enough for any pid).
    static func path(of pid: pid_t, into buffer: UnsafeMutableRawBufferPointer) {
        var writer = ByteWriter(buffer)
        writer.append("/proc/")
        writer.append(decimal: Int(pid))
        writer.append("/stat")
        writer.append(byte: 0)
    }

    /// Field 22, the start time in clock ticks since boot, of the `stat` text in `bytes`.
    ///
    /// The second field, the command name in parentheses, may hold spaces and parentheses of its
    /// own, so the fields are counted from the last `)`: the start time is the 20th after it.
    static func startTime(_ bytes: UnsafeRawBufferPointer) -> UInt64? {
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        var field = 0
        var index = close + 1
        while index < bytes.count {
            // Each field is preceded by one space.
            guard bytes[index] == UInt8(ascii: " ") else { return nil }
            index += 1
            field += 1
            if field == 20 {
                var value: UInt64 = 0
                var digits = 0
                while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                    value = value * 10 + UInt64(bytes[index] - UInt8(ascii: "0"))
                    index += 1
                    digits += 1
                }
                return digits > 0 ? value : nil
            }
            while index < bytes.count, bytes[index] != UInt8(ascii: " ") { index += 1 }
        }
        return nil
    }
}
