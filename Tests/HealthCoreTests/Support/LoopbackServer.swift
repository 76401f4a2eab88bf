import Foundation
@preconcurrency import Glibc
import Synchronization

/// A tiny TCP/HTTP server on 127.0.0.1 with a kernel-chosen port, served by one thread.
///
/// In HTTP mode it reads each request's head and answers with the current ``status``; in TCP
/// mode it accepts and closes. ``stop()`` shuts the listener down and waits for the thread.
final class LoopbackServer: Sendable {
    /// The bound port.
    let port: Int
    private let descriptor: Int32
    private let http: Bool
    private let state = Mutex<(status: Int, requests: [String])>((200, []))
    private let finished = DispatchSemaphore(value: 0)

    /// Starts listening; `http: false` only accepts connections.
    init(http: Bool = true, status: Int = 200) throws {
        let (descriptor, port) = try Self.listen()
        self.descriptor = descriptor
        self.port = port
        self.http = http
        state.withLock { $0.status = status }
        let thread = Thread { [self] in
            acceptLoop()
            finished.signal()
        }
        thread.start()
    }

    /// The status answered from now on.
    func setStatus(_ status: Int) {
        state.withLock { $0.status = status }
    }

    /// The request lines received so far, e.g. `GET /health HTTP/1.1`.
    var requests: [String] {
        state.withLock { $0.requests }
    }

    /// Stops accepting and waits for the serving thread to end.
    func stop() {
        _ = shutdown(descriptor, Int32(SHUT_RDWR))
        _ = finished.wait(timeout: .now() + 10)
        _ = close(descriptor)
    }

    private func acceptLoop() {
        while true {
            let client = accept(descriptor, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            if http { answer(client) }
            _ = close(client)
        }
    }

    private func answer(_ client: Int32) {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        _ = setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: head, as: UTF8.self).contains("\r\n\r\n") {
            let count = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            head += buffer.prefix(count)
        }
        let line = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n").first ?? ""
        let status = state.withLock { state in
            state.requests.append(line)
            return state.status
        }
        let response = Array("HTTP/1.1 \(status) Test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".utf8)
        _ = response.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// A listening socket on 127.0.0.1 port 0 and the port it got.
    static func listen(backlog: Int32 = 16) throws -> (descriptor: Int32, port: Int) {
        let (descriptor, port) = try refusingPort()
        guard Glibc.listen(descriptor, backlog) == 0 else {
            _ = close(descriptor)
            throw POSIXError(.EADDRINUSE)
        }
        return (descriptor, port)
    }

    /// A loopback port nothing listens on: bound but not listening, so a connection is refused,
    /// and held until the descriptor is closed (``closeDescriptor(_:)``), so no server started
    /// meanwhile by another test can be given it.
    static func refusingPort() throws -> (descriptor: Int32, port: Int) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard bound else {
            _ = close(descriptor)
            throw POSIXError(.EADDRINUSE)
        }
        return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
    }
}

/// Polls `condition` every few milliseconds until it holds or `timeout` passes; true if it held.
func eventually(timeout: Duration = .seconds(20), _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try condition()
}

extension LoopbackServer {
    /// Closes a descriptor from ``listen(backlog:)``.
    static func closeDescriptor(_ descriptor: Int32) {
        _ = close(descriptor)
    }
}
