package import GRPCNIOTransportHTTP2Posix

/// A `host:port` network endpoint of a Keel service, as given in flags and `KEEL_*` variables.
///
/// Accepts `host:port`, `[ipv6]:port` and `:port` (all interfaces). Hostnames are resolved by DNS
/// when a client connects; IP literals are used as they are.
package struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    /// The host name or IP literal, without brackets.
    package var host: String
    /// The TCP port; 0 asks the kernel for a free port when listening.
    package var port: Int

    /// Creates an endpoint from its parts.
    package init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`, `[v6]:port` or `:port`.
    ///
    /// - Throws: `EndpointError` naming the text and the expected form.
    package init(parsing text: String) throws(EndpointError) {
        let trimmed = text.hasPrefix("http://") ? String(text.dropFirst("http://".count)) : text
        var host: Substring
        var portText: Substring
        if trimmed.hasPrefix("[") {
            guard let close = trimmed.firstIndex(of: "]") else { throw EndpointError(text: text) }
            host = trimmed[trimmed.index(after: trimmed.startIndex)..<close]
            let rest = trimmed[trimmed.index(after: close)...]
            guard rest.hasPrefix(":") else { throw EndpointError(text: text) }
            portText = rest.dropFirst()
        } else {
            guard let colon = trimmed.lastIndex(of: ":") else { throw EndpointError(text: text) }
            host = trimmed[..<colon]
            portText = trimmed[trimmed.index(after: colon)...]
            if host.contains(":") { throw EndpointError(text: text) }
        }
        if portText.hasSuffix("/") { portText = portText.dropLast() }
        guard let port = Int(portText), (0...65535).contains(port) else { throw EndpointError(text: text) }
        if host.isEmpty { host = "0.0.0.0" }
        self.init(host: String(host), port: port)
    }

    /// `host:port`, with brackets around IPv6 literals.
    package var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The address a server binds to.
    package var bindAddress: GRPCNIOTransportCore.SocketAddress {
        host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port)
    }

    /// The target a client dials; hostnames go through DNS.
    package var target: any ResolvableTarget {
        if host.contains(":") { return .ipv6(address: host, port: port) }
        if host.split(separator: ".").count == 4, host.allSatisfy({ $0.isNumber || $0 == "." }) {
            return .ipv4(address: host, port: port)
        }
        return .dns(host: host, port: port)
    }

    /// The same endpoint with a listening wildcard replaced by loopback, for clients on this node.
    package var dialable: Endpoint {
        switch host {
        case "0.0.0.0": Endpoint(host: "127.0.0.1", port: port)
        case "::": Endpoint(host: "::1", port: port)
        default: self
        }
    }
}

/// A `host:port` text that could not be parsed.
package struct EndpointError: Error, CustomStringConvertible {
    /// The text as given.
    package var text: String

    package var description: String {
        "'\(text)' is not an endpoint: write host:port (e.g. 127.0.0.1:5050), [ipv6]:port, or :port"
    }
}

extension GRPCNIOTransportCore.SocketAddress {
    /// The bound TCP port, or nil for non-IP addresses.
    package var port: Int? {
        if let ipv4 { return ipv4.port }
        if let ipv6 { return ipv6.port }
        return nil
    }
}
