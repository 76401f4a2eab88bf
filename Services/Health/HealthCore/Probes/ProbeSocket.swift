import Dispatch
@preconcurrency import Glibc

/// Why a socket operation of a probe failed; the message is meant for operators.
struct ProbeSocketError: Error, CustomStringConvertible {
    var description: String
}

/// A non-blocking TCP client socket for probes.
///
/// Waiting is done by polling the descriptor without blocking and sleeping briefly in between, so
/// probes never block a thread of the cooperative pool and stop promptly when cancelled.
struct ProbeSocket {
    private let descriptor: Int32

    private init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Connects to `host:port`, trying each resolved address, until `deadline`.
    static func connect(host: String, port: Int, deadline: ContinuousClock.Instant) async throws -> ProbeSocket {
        guard (1...65535).contains(port) else {
            throw ProbeSocketError(description: "port \(port) is not a TCP port (1-65535)")
        }
        let addresses = try await resolve(host: host, port: port)
        var lastError = ProbeSocketError(description: "\(host) has no addresses")
        for address in addresses {
            do {
                return try await connect(to: address, deadline: deadline)
            } catch let error as ProbeSocketError {
                lastError = error
            }
        }
        throw lastError
    }

    private static func connect(to address: ResolvedAddress, deadline: ContinuousClock.Instant) async throws -> ProbeSocket {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let descriptor = socket(address.family, type, 0)
        guard descriptor >= 0 else { throw ProbeSocketError(description: "socket() failed: \(errnoText())") }
        let socket = ProbeSocket(descriptor: descriptor)
        do {
            guard fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK) == 0 else {
                throw ProbeSocketError(description: "could not make the socket non-blocking: \(errnoText())")
            }
            let result = address.bytes.withUnsafeBytes { raw in
                Glibc.connect(descriptor, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
            }
            if result != 0 {
                guard errno == EINPROGRESS else { throw ProbeSocketError(description: errnoText()) }
                try await socket.wait(for: Int16(POLLOUT), until: deadline, doing: "connecting")
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                guard getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length) == 0 else {
                    throw ProbeSocketError(description: errnoText())
                }
                if error != 0 { throw ProbeSocketError(description: String(cString: strerror(error))) }
            }
            return socket
        } catch {
            socket.close()
            throw error
        }
    }

    /// Sends all of `bytes` before `deadline`.
    func send(_ bytes: [UInt8], until deadline: ContinuousClock.Instant) async throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { raw in
                Glibc.send(descriptor, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL))
            }
            if sent > 0 {
                offset += sent
            } else if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                try await wait(for: Int16(POLLOUT), until: deadline, doing: "sending")
            } else {
                throw ProbeSocketError(description: "send failed: \(errnoText())")
            }
        }
    }

    /// Receives up to `limit` bytes before `deadline`; empty at end of stream.
    func receive(limit: Int, until deadline: ContinuousClock.Instant) async throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: limit)
        while true {
            let count = buffer.withUnsafeMutableBytes { raw in
                recv(descriptor, raw.baseAddress, raw.count, 0)
            }
            if count >= 0 { return Array(buffer.prefix(count)) }
            guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else {
                throw ProbeSocketError(description: "receive failed: \(errnoText())")
            }
            try await wait(for: Int16(POLLIN), until: deadline, doing: "waiting for a response")
        }
    }

    /// Closes the descriptor.
    func close() {
        _ = Glibc.close(descriptor)
    }

    /// Polls until the descriptor is ready for `events` (or has an error), sleeping 1-20 ms between polls.
    private func wait(for events: Int16, until deadline: ContinuousClock.Instant, doing activity: String) async throws {
        var pause = Duration.milliseconds(1)
        while true {
            var entry = pollfd(fd: descriptor, events: events, revents: 0)
            let ready = poll(&entry, 1, 0)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR { throw ProbeSocketError(description: "poll failed: \(errnoText())") }
            let now = ContinuousClock.now
            guard now < deadline else { throw ProbeSocketError(description: "timed out \(activity)") }
            do {
                try await Task.sleep(for: min(pause, now.duration(to: deadline)))
            } catch {
                throw ProbeSocketError(description: "cancelled while \(activity)")
            }
            pause = min(pause * 2, .milliseconds(20))
        }
    }

    // MARK: Name resolution

    /// One address from `getaddrinfo`, as raw `sockaddr` bytes.
    private struct ResolvedAddress: Sendable {
        var family: Int32
        var bytes: [UInt8]
    }

    /// Resolves `host`: IP literals directly, names by `getaddrinfo` on a Dispatch thread (it blocks).
    private static func resolve(host: String, port: Int) async throws -> [ResolvedAddress] {
        if case .success(let addresses) = lookup(host: host, port: port, numericOnly: true) { return addresses }
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<[ResolvedAddress], ProbeSocketError>, Never>) in
            DispatchQueue.global().async {
                continuation.resume(returning: lookup(host: host, port: port, numericOnly: false))
            }
        }
        return try result.get()
    }

    private static func lookup(host: String, port: Int, numericOnly: Bool) -> Result<[ResolvedAddress], ProbeSocketError> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | (numericOnly ? AI_NUMERICHOST : 0)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            return .failure(ProbeSocketError(description: "could not resolve \(host): \(String(cString: gai_strerror(status)))"))
        }
        defer { freeaddrinfo(first) }
        var addresses: [ResolvedAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            if let address = entry.pointee.ai_addr {
                let bytes = UnsafeRawBufferPointer(start: address, count: Int(entry.pointee.ai_addrlen))
                addresses.append(ResolvedAddress(family: entry.pointee.ai_family, bytes: Array(bytes)))
            }
            cursor = entry.pointee.ai_next
        }
        return .success(addresses)
    }
}

/// The text of the current `errno`.
private func errnoText() -> String {
    String(cString: strerror(errno))
}
