import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
package import KeelAPI
import KeelRPC

/// An HTTP check: `GET scheme://host:port/path`, healthy when the status is one of the check's
/// `statuses`, or 200-399 when it lists none. Redirects are not followed.
///
/// Plain `http` is spoken directly over a ``ProbeSocket`` (HTTP/1.1, `Connection: close`, only
/// the status line is read); `https` goes through `URLSession`, which verifies the certificate
/// against the system's trust store.
package struct HTTPProbe: HealthProbe {
    /// Creates the probe.
    package init() {}

    /// Sends the GET and judges its status code.
    package func probe(_ check: Keel_V1_HealthCheck, target: ProbeTarget, timeout: Duration) async -> ProbeResult {
        let http = check.http
        let port = Int(http.port)
        guard check.hasHTTP, port > 0, port <= 65535 else {
            return .unhealthy("the HTTP check has no valid port; set http.port")
        }
        let scheme = http.scheme.isEmpty ? "http" : http.scheme.lowercased()
        var path = http.path.isEmpty ? "/" : http.path
        if !path.hasPrefix("/") { path = "/" + path }
        let url = "\(scheme)://\(target.address(port: port))\(path)"
        let status: Int
        do {
            switch scheme {
            case "http": status = try await plainStatus(host: target.host, port: port, path: path, timeout: timeout)
            case "https": status = try await secureStatus(url: url, timeout: timeout)
            default: return .unhealthy("HTTP check scheme '\(http.scheme)' is not supported; use http or https")
            }
        } catch {
            return .unhealthy("GET \(url) failed: \(error)")
        }
        let accepted = http.statuses.isEmpty ? (200...399).contains(status) : http.statuses.contains(UInt32(clamping: status))
        let message = "GET \(url) returned \(status)"
        return accepted ? .healthy(message) : .unhealthy(message)
    }

    /// The status code of a plain HTTP/1.1 GET.
    private func plainStatus(host: String, port: Int, path: String, timeout: Duration) async throws -> Int {
        let deadline = ContinuousClock.now + timeout
        let socket = try await ProbeSocket.connect(host: host, port: port, deadline: deadline)
        defer { socket.close() }
        let hostHeader = Endpoint(host: host, port: port).description
        let request = "GET \(path) HTTP/1.1\r\nHost: \(hostHeader)\r\nUser-Agent: keel-health\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        try await socket.send(Array(request.utf8), until: deadline)
        var received: [UInt8] = []
        while !received.contains(UInt8(ascii: "\n")) {
            guard received.count < 8192 else { throw ProbeSocketError(description: "the status line is longer than 8 KiB") }
            let chunk = try await socket.receive(limit: 4096, until: deadline)
            guard !chunk.isEmpty else { break }
            received += chunk
        }
        let line = String(decoding: received.prefix { $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        return try Self.parseStatusLine(line)
    }

    /// The status code of `HTTP/1.x NNN Reason`.
    static func parseStatusLine(_ line: String) throws -> Int {
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let code = Int(parts[1]), (100...999).contains(code) else {
            let shown = line.isEmpty ? "nothing" : "'\(line.prefix(80))'"
            throw ProbeSocketError(description: "the server answered \(shown), not an HTTP status line")
        }
        return code
    }

    /// The status code of an HTTPS GET through `URLSession`.
    private func secureStatus(url text: String, timeout: Duration) async throws -> Int {
        guard let url = URL(string: text) else { throw ProbeSocketError(description: "'\(text)' is not a valid URL") }
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: seconds)
        request.setValue("keel-health", forHTTPHeaderField: "User-Agent")
        let (_, response) = try await RedirectBlocker.session.data(for: request)
        guard let response = response as? HTTPURLResponse else {
            throw ProbeSocketError(description: "the response was not HTTP")
        }
        return response.statusCode
    }
}

/// Keeps `URLSession` from following redirects: a 3xx is the check's answer.
private final class RedirectBlocker: NSObject, URLSessionTaskDelegate, Sendable {
    static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.connectionProxyDictionary = [:]
        configuration.urlCache = nil
        return URLSession(configuration: configuration, delegate: RedirectBlocker(), delegateQueue: nil)
    }()

    func urlSession(
        _ session: URLSession,
        task: URLSessionTask,
        willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest,
        completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }
}
