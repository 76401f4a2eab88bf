#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Tells systemd about the daemon's state over `$NOTIFY_SOCKET` (the `sd_notify` protocol), for
/// units with `Type=notify`. Without the variable (not run by systemd) it does nothing.
package struct SystemdNotifier: Sendable {
    private let socketPath: String?

    /// Creates a notifier from the process environment as passed in by `main`.
    package init(environment: [String: String]) {
        let path = environment["NOTIFY_SOCKET"]
        self.socketPath = (path?.isEmpty ?? true) ? nil : path
    }

    /// Sends `READY=1`: the daemon is serving.
    package func ready() { send("READY=1") }

    /// Sends `STOPPING=1`: the daemon is shutting down.
    package func stopping() { send("STOPPING=1") }

    /// Sends a free-form status line shown by `systemctl status`.
    package func status(_ text: String) { send("STATUS=\(text)") }

    private func send(_ message: String) {
        #if canImport(Glibc)
        guard var path = socketPath else { return }
        // A leading '@' names a socket in the abstract namespace.
        let abstract = path.hasPrefix("@")
        if abstract { path.removeFirst() }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if abstract { bytes.insert(0, at: 0) }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        _ = message.withCString { text in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                    sendto(fd, text, strlen(text), 0, socketAddress, length)
                }
            }
        }
        #endif
    }
}
