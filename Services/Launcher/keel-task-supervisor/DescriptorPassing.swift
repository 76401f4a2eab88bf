@preconcurrency import Glibc

/// Messages on a Unix socket with up to two descriptors attached (`SCM_RIGHTS`), as the spawner
/// and reusable supervisors exchange them.
///
/// One control message of `SOL_SOCKET`/`SCM_RIGHTS`: its header is 16 bytes on 64-bit Linux,
/// the descriptors follow as `Int32`s, so `CMSG_LEN(4)` is 20, `CMSG_LEN(8)` 24, and 24 bytes
/// (`CMSG_SPACE` of either) hold it.
///
/// keel-launcher reads the spawner's replies with the same `recvmsg` in `SupervisorSpawner`: this
/// program links nothing but the Swift runtime and the C library, so the two cannot share it.
enum DescriptorPassing {
    private static let controlSpace = 24

    /// Sends `payload` with `descriptors` (at most two) attached; the bytes sent, or -1.
    static func send(_ socket: Int32, _ payload: UnsafeRawBufferPointer, descriptors: [Int32], flags: Int32 = 0) -> Int {
        precondition(descriptors.count <= 2, "at most two descriptors")
        var control = [UInt8](repeating: 0, count: controlSpace)
        control.withUnsafeMutableBytes { bytes in
            bytes.storeBytes(of: 16 + 4 * descriptors.count, toByteOffset: 0, as: Int.self)
            bytes.storeBytes(of: SOL_SOCKET, toByteOffset: 8, as: Int32.self)
            bytes.storeBytes(of: Int32(SCM_RIGHTS), toByteOffset: 12, as: Int32.self)
            for (index, descriptor) in descriptors.enumerated() {
                bytes.storeBytes(of: descriptor, toByteOffset: 16 + 4 * index, as: Int32.self)
            }
        }
        return control.withUnsafeMutableBytes { controlBytes in
            var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: payload.baseAddress), iov_len: payload.count)
            return withUnsafeMutablePointer(to: &vector) { vectorPointer -> Int in
                var message = msghdr()
                message.msg_iov = vectorPointer
                message.msg_iovlen = 1
                if !descriptors.isEmpty {
                    message.msg_control = controlBytes.baseAddress
                    message.msg_controllen = controlBytes.count
                }
                while true {
                    let count = sendmsg(socket, &message, flags)
                    if count < 0, errno == EINTR { continue }
                    return count
                }
            }
        }
    }

    /// Receives one message into `payload`: the bytes received (or -1) and the descriptors that
    /// came with it (close-on-exec; the caller owns them).
    static func receive(_ socket: Int32, into payload: UnsafeMutableRawBufferPointer) -> (count: Int, descriptors: [Int32]) {
        var control = [UInt8](repeating: 0, count: controlSpace)
        let (count, controlLength) = control.withUnsafeMutableBytes { controlBytes -> (Int, Int) in
            var vector = iovec(iov_base: payload.baseAddress, iov_len: payload.count)
            return withUnsafeMutablePointer(to: &vector) { vectorPointer -> (Int, Int) in
                var message = msghdr()
                message.msg_iov = vectorPointer
                message.msg_iovlen = 1
                message.msg_control = controlBytes.baseAddress
                message.msg_controllen = controlBytes.count
                while true {
                    let count = recvmsg(socket, &message, Int32(MSG_CMSG_CLOEXEC))
                    if count < 0, errno == EINTR { continue }
                    return (count, Int(message.msg_controllen))
                }
            }
        }
        let descriptors = control.withUnsafeBytes { bytes -> [Int32] in
            guard controlLength >= 20, bytes.load(fromByteOffset: 8, as: Int32.self) == SOL_SOCKET,
                bytes.load(fromByteOffset: 12, as: Int32.self) == Int32(SCM_RIGHTS)
            else { return [] }
            let length = min(bytes.load(fromByteOffset: 0, as: Int.self), controlLength)
            return (0..<max(0, (length - 16) / 4)).map { bytes.load(fromByteOffset: 16 + 4 * $0, as: Int32.self) }
        }
        return (count, descriptors)
    }
}
