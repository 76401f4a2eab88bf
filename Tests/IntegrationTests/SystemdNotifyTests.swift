import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The daemons speak systemd's notify protocol, as their `Type=notify` units expect.
@Suite("systemd notify")
struct SystemdNotifyTests {
    @Test("a daemon sends READY=1 once serving and STOPPING=1 on SIGTERM, then exits 0")
    func readyAndStopping() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keel-notify-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let socket = try NotifySocket(path: directory.appendingPathComponent("notify").path)
        defer { socket.close() }

        let registry = try Self.startRegistry(dataDirectory: directory.appendingPathComponent("data"), notify: socket)
        try await Self.expectReadyThenStop(registry, notify: socket)
        #expect(socket.received().contains("STOPPING=1"))
    }

    /// Starts keel-registry on free loopback ports, notifying `notify`, with `environment` added.
    static func startRegistry(
        dataDirectory: URL, notify: NotifySocket, environment: [String: String] = [:]
    ) throws -> ChildProcess {
        try ChildProcess(
            "\(LocalClusterFixture.buildDirectory())/keel-registry",
            [],
            environment: [
                "NOTIFY_SOCKET": notify.path,
                "KEEL_LISTEN": "127.0.0.1:0",
                "KEEL_ADMIN_LISTEN": "127.0.0.1:0",
                "KEEL_DATA_DIR": dataDirectory.path,
                "KEEL_EXIT_WITH_PARENT": "1",
            ].merging(environment) { _, added in added }
        )
    }

    /// Waits until `registry` sends READY=1, stops it with SIGTERM and expects exit status 0.
    static func expectReadyThenStop(_ registry: ChildProcess, notify: NotifySocket) async throws {
        try await waitUntil("keel-registry sends READY=1", timeout: .seconds(60)) {
            if registry.exitStatus != nil { throw TestFailure("keel-registry exited:\n\(registry.stderr)") }
            return notify.received().contains("READY=1")
        }
        registry.signal(SIGTERM)
        let status = try await registry.wait(timeout: .seconds(30))
        #expect(status == 0, "keel-registry exited with \(status): \(registry.stderr)")
    }
}

/// A Unix datagram socket standing where systemd's `$NOTIFY_SOCKET` would be.
final class NotifySocket: Sendable {
    let path: String
    private let fd: Int32
    private let messages = Mutex<[String]>([])

    init(path: String) throws {
        self.path = path
        fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else { throw TestFailure("bind(\(path)) failed: errno \(errno)") }
    }

    /// Every datagram received so far (reads what is waiting without blocking).
    func received() -> [String] {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            let text = String(decoding: buffer[0..<count], as: UTF8.self)
            messages.withLock { $0.append(contentsOf: text.split(separator: "\n").map(String.init)) }
        }
        return messages.withLock { $0 }
    }

    func close() {
        Glibc.close(fd)
    }
}
