package import Foundation
package import KeelAPI

/// One artifact a task asked for (a `CommandURI`), validated: where it comes from, the file name
/// it gets in the sandbox, and what to do with it there.
package struct FetchItem: Sendable, Hashable {
    /// Where the bytes come from.
    package enum Source: Sendable, Hashable {
        /// A file on this node, by absolute path.
        case file(String)
        /// An `http` or `https` URL.
        case http(URL)
    }

    /// The URI as the task gave it.
    package var uri: String
    package var source: Source
    /// The file's name in the sandbox (one path component).
    package var outputName: String
    /// Make the fetched file executable.
    package var executable: Bool
    /// Extract the archive (.tar, .tar.gz, .tgz, .zip) into the sandbox.
    package var extract: Bool
    /// Keep a copy in the node's fetcher cache and reuse it.
    package var cache: Bool
    /// The expected SHA-256 (lowercase hex), if the task gave one.
    package var sha256: String?

    /// Validates a task's `CommandURI`.
    ///
    /// Throws ``LauncherError/Code/invalidArgument`` for an empty or unsupported URI, a checksum
    /// that is not 64 hex digits, an output name that is not a single path component, or a URI
    /// whose file name cannot be told (set `output_file` then).
    package init(_ proto: Keel_V1_CommandURI) throws(LauncherError) {
        let value = proto.value.trimmingCharacters(in: .whitespaces)
        guard !value.isEmpty, !value.utf8.contains(0) else {
            throw LauncherError(code: .invalidArgument, message: "a URI to fetch is empty; give file://, http:// or https:// URIs")
        }
        uri = value
        if value.hasPrefix("/") {
            source = .file(value)
        } else if let url = URL(string: value), let scheme = url.scheme?.lowercased() {
            switch scheme {
            case "file":
                guard url.path.hasPrefix("/") else {
                    throw LauncherError(code: .invalidArgument, message: "URI '\(value)' has no absolute path; write file:///path/to/file")
                }
                source = .file(url.path)
            case "http", "https":
                guard let host = url.host, !host.isEmpty else {
                    throw LauncherError(code: .invalidArgument, message: "URI '\(value)' has no host")
                }
                source = .http(url)
            default:
                throw LauncherError(
                    code: .invalidArgument,
                    message: "URI '\(value)' has the scheme '\(scheme)'; the fetcher supports file://, http:// and https://")
            }
        } else {
            throw LauncherError(
                code: .invalidArgument, message: "'\(value)' is not a URI; give file://, http:// or https:// URIs or an absolute path")
        }
        let digest = proto.sha256.lowercased()
        if !digest.isEmpty {
            guard digest.count == 64, digest.allSatisfy(\.isHexDigit) else {
                throw LauncherError(
                    code: .invalidArgument, message: "sha256 of '\(value)' is not 64 hexadecimal digits: '\(proto.sha256)'")
            }
            sha256 = digest
        }
        let name: String
        if !proto.outputFile.isEmpty {
            name = proto.outputFile
        } else {
            switch source {
            case .file(let path): name = URL(fileURLWithPath: path).lastPathComponent
            case .http(let url): name = url.lastPathComponent
            }
        }
        guard !name.isEmpty, name != ".", name != "..", name != "/", !name.contains("/") else {
            throw LauncherError(
                code: .invalidArgument,
                message: "cannot name the fetched file of '\(value)' ('\(name)'); set output_file to a plain file name")
        }
        outputName = name
        executable = proto.executable
        extract = proto.extract
        cache = proto.cache
    }

    /// The archive format the output name says, if extraction was asked for.
    var archive: ArchiveFormat? {
        guard extract else { return nil }
        let lower = outputName.lowercased()
        if lower.hasSuffix(".tar.gz") || lower.hasSuffix(".tgz") { return .tarGzip }
        if lower.hasSuffix(".tar") { return .tar }
        if lower.hasSuffix(".zip") { return .zip }
        return nil
    }

    /// The cache key: the URI and the expected digest, so a changed digest is a new entry.
    var cacheKey: String {
        FileDigest.sha256(of: Data("\(uri)\n\(sha256 ?? "")".utf8))
    }
}

/// Archive formats the fetcher extracts.
enum ArchiveFormat: Sendable {
    case tar, tarGzip, zip
}
