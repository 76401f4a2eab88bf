package import Foundation
package import Logging

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// What the fetcher did for one artifact.
package struct FetchOutcome: Sendable, Hashable {
    /// The file's name in the sandbox.
    package var name: String
    /// Whether the bytes came from the node's cache rather than from the source.
    package var fromCache: Bool
    /// The file's size.
    package var bytes: UInt64
}

/// Fetches a task's artifacts into its sandbox before the task starts (the Mesos fetcher):
/// `file://`, `http://` and `https://` sources, an optional SHA-256 check, archive extraction
/// (.tar, .tar.gz, .tgz with `tar`, .zip with `unzip`) and the executable bit.
///
/// Artifacts marked `cache` are kept in a cache shared by every task on the node, keyed by URI
/// and expected digest, with a size limit enforced by evicting the least recently used entries.
/// Two tasks asking for the same cached URI at the same time cause one download. Entries are
/// plain files named by key; the cache is rebuilt from the directory at start (so it survives
/// a launcher restart) and half-written downloads are removed.
package actor Fetcher {
    private struct Entry {
        var bytes: UInt64
        var lastUsed: Date
    }

    private let cacheDirectory: URL
    private let cacheLimit: UInt64
    private let session: URLSession
    private let logger: Logger
    private var entries: [String: Entry] = [:]
    private var inFlight: [String: Task<Void, any Error>] = [:]

    /// Downloads from the sources so far (cache hits excluded), for metrics and tests.
    package private(set) var downloads = 0

    /// Opens (creating) the cache in `cacheDirectory`, holding at most `cacheLimit` bytes.
    package init(cacheDirectory: URL, cacheLimit: UInt64, timeout: Duration = .seconds(300), logger: Logger) throws {
        self.cacheDirectory = cacheDirectory
        self.cacheLimit = cacheLimit
        self.logger = logger
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForResource = Double(timeout.components.seconds)
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        session = URLSession(configuration: configuration)
        let files = FileManager.default
        try files.createDirectory(at: cacheDirectory, withIntermediateDirectories: true)
        var found: [String: Entry] = [:]
        for name in try files.contentsOfDirectory(atPath: cacheDirectory.path) {
            let url = cacheDirectory.appendingPathComponent(name)
            guard name.count == 64, name.allSatisfy(\.isHexDigit) else {
                try? files.removeItem(at: url)  // a download cut short by a crash
                continue
            }
            let attributes = try files.attributesOfItem(atPath: url.path)
            found[name] = Entry(
                bytes: (attributes[.size] as? NSNumber)?.uint64Value ?? 0,
                lastUsed: attributes[.modificationDate] as? Date ?? .distantPast
            )
        }
        entries = found
    }

    /// The bytes the cache holds now.
    package var cachedBytes: UInt64 { entries.values.reduce(0) { $0 + $1.bytes } }

    /// Fetches `items` into `sandbox` in order.
    ///
    /// Throws a ``LauncherError`` naming the artifact and the cause (unreachable source, HTTP
    /// status other than 200, missing file, checksum mismatch, failed extraction); files fetched
    /// before the failure stay in the sandbox.
    ///
    /// With `owner`, everything in the sandbox is then given to that user and group, so a task
    /// running as that user can use (and remove) what was fetched and extracted.
    package func fetch(_ items: [FetchItem], into sandbox: URL, owner: (uid: UInt32, gid: UInt32)? = nil) async throws -> [FetchOutcome] {
        var outcomes: [FetchOutcome] = []
        for item in items {
            outcomes.append(try await fetch(item, into: sandbox))
        }
        if let owner, !items.isEmpty {
            try Self.chown(sandbox, to: owner)
        }
        return outcomes
    }

    /// Gives `directory` and everything under it (without following links) to `owner`.
    private static func chown(_ directory: URL, to owner: (uid: UInt32, gid: UInt32)) throws {
        var paths = [directory.path]
        if let walker = FileManager.default.enumerator(atPath: directory.path) {
            for case let relative as String in walker { paths.append(directory.appendingPathComponent(relative).path) }
        }
        for path in paths where lchown(path, owner.uid, owner.gid) != 0 {
            throw LauncherError.system("lchown", errno: errno, message: "could not give '\(path)' to uid \(owner.uid)")
        }
    }

    private func fetch(_ item: FetchItem, into sandbox: URL) async throws -> FetchOutcome {
        let destination = sandbox.appendingPathComponent(item.outputName)
        let files = FileManager.default
        try? files.removeItem(at: destination)
        var fromCache = false
        if item.cache {
            let key = item.cacheKey
            fromCache = entries[key] != nil
            if !fromCache {
                try await fillCache(key: key, item: item)
            }
            let cached = cacheDirectory.appendingPathComponent(key)
            do {
                try files.copyItem(at: cached, to: destination)
            } catch {
                throw LauncherError(
                    code: .fetchFailed, message: "could not copy '\(item.uri)' from the fetcher cache into the sandbox", cause: error)
            }
            entries[key]?.lastUsed = Date()
            try? files.setAttributes([.modificationDate: Date()], ofItemAtPath: cached.path)
        } else {
            let temporary = try await download(item)
            do {
                try files.moveItem(at: temporary, to: destination)
            } catch {
                try? files.removeItem(at: temporary)
                throw LauncherError(code: .fetchFailed, message: "could not move '\(item.uri)' into the sandbox", cause: error)
            }
        }
        try await finish(item, at: destination, sandbox: sandbox)
        let bytes = (try? files.attributesOfItem(atPath: destination.path)[.size] as? NSNumber)?.uint64Value ?? 0
        logger.debug("fetched", metadata: [
            "keel.uri": "\(item.uri)", "keel.from_cache": "\(fromCache)", "keel.bytes": "\(bytes)",
        ])
        return FetchOutcome(name: item.outputName, fromCache: fromCache, bytes: bytes)
    }

    /// Downloads `item` into the cache under `key`, once even when asked concurrently.
    private func fillCache(key: String, item: FetchItem) async throws {
        if let running = inFlight[key] {
            try await running.value
            return
        }
        let task = Task {
            let temporary = try await self.download(item)
            try self.insert(temporary, key: key, uri: item.uri)
        }
        inFlight[key] = task
        defer { inFlight[key] = nil }
        try await task.value
    }

    /// Moves a downloaded file into the cache, evicting the least recently used entries to stay
    /// under the limit. A file larger than the whole cache is refused with a clear error.
    private func insert(_ file: URL, key: String, uri: String) throws {
        let files = FileManager.default
        let size = (try? files.attributesOfItem(atPath: file.path)[.size] as? NSNumber)?.uint64Value ?? 0
        guard size <= cacheLimit else {
            try? files.removeItem(at: file)
            throw LauncherError(
                code: .fetchFailed,
                message: "'\(uri)' is \(size) bytes, more than the whole fetcher cache (\(cacheLimit) bytes); fetch it without cache or raise the cache size")
        }
        var total = cachedBytes
        for (victim, entry) in entries.sorted(by: { $0.value.lastUsed < $1.value.lastUsed }) where total + size > cacheLimit {
            try? files.removeItem(at: cacheDirectory.appendingPathComponent(victim))
            entries[victim] = nil
            total -= entry.bytes
            logger.info("evicted from the fetcher cache", metadata: ["keel.cache_key": "\(victim)", "keel.bytes": "\(entry.bytes)"])
        }
        let target = cacheDirectory.appendingPathComponent(key)
        try? files.removeItem(at: target)
        do {
            try files.moveItem(at: file, to: target)
        } catch {
            try? files.removeItem(at: file)
            throw LauncherError(code: .fetchFailed, message: "could not store '\(uri)' in the fetcher cache", cause: error)
        }
        entries[key] = Entry(bytes: size, lastUsed: Date())
    }

    /// Brings `item` from its source to a temporary file in the cache directory (same file
    /// system as the cache, so it can be renamed in) and checks its digest.
    private func download(_ item: FetchItem) async throws -> URL {
        let files = FileManager.default
        let temporary = cacheDirectory.appendingPathComponent("partial-\(UUID().uuidString)")
        switch item.source {
        case .file(let path):
            var isDirectory: ObjCBool = false
            guard files.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
                throw LauncherError(code: .fetchFailed, message: "'\(item.uri)': no such file on this node")
            }
            do {
                try files.copyItem(atPath: path, toPath: temporary.path)
            } catch {
                throw LauncherError(code: .fetchFailed, message: "could not read '\(item.uri)'", cause: error)
            }
        case .http(let url):
            let (downloaded, response): (URL, URLResponse)
            do {
                (downloaded, response) = try await session.download(from: url)
            } catch {
                throw LauncherError(code: .fetchFailed, message: "could not download '\(item.uri)': \(error.localizedDescription)", cause: error)
            }
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            guard status == 200 else {
                try? files.removeItem(at: downloaded)
                throw LauncherError(code: .fetchFailed, message: "GET '\(item.uri)' answered HTTP \(status), not 200")
            }
            do {
                try files.moveItem(at: downloaded, to: temporary)
            } catch {
                try? files.removeItem(at: downloaded)
                throw LauncherError(code: .fetchFailed, message: "could not keep the download of '\(item.uri)'", cause: error)
            }
        }
        downloads += 1
        if let expected = item.sha256 {
            let actual: String
            do {
                actual = try FileDigest.sha256(ofFile: temporary)
            } catch {
                try? files.removeItem(at: temporary)
                throw LauncherError(code: .fetchFailed, message: "could not read the download of '\(item.uri)'", cause: error)
            }
            guard actual == expected else {
                try? files.removeItem(at: temporary)
                throw LauncherError(
                    code: .fetchFailed, message: "'\(item.uri)' has SHA-256 \(actual), but \(expected) was expected")
            }
        }
        return temporary
    }

    /// Sets the executable bit and extracts archives.
    private nonisolated func finish(_ item: FetchItem, at file: URL, sandbox: URL) async throws {
        if item.executable {
            do {
                try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: file.path)
            } catch {
                throw LauncherError(code: .fetchFailed, message: "could not make '\(item.outputName)' executable", cause: error)
            }
        }
        guard let format = item.archive else { return }
        let (tool, arguments): (String, [String]) =
            switch format {
            case .tar: ("tar", ["-xf", file.path, "-C", sandbox.path, "--no-same-owner"])
            case .tarGzip: ("tar", ["-xzf", file.path, "-C", sandbox.path, "--no-same-owner"])
            case .zip: ("unzip", ["-q", "-o", file.path, "-d", sandbox.path])
            }
        try await Self.run(tool, arguments, what: "extract '\(item.outputName)'")
    }

    /// Runs an extraction tool (found in PATH) without blocking a thread, and turns a failure
    /// into a fetch error with what the tool printed.
    private static func run(_ tool: String, _ arguments: [String], what: String) async throws {
        let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("keel-fetch-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errorFile) }
        let errors = try FileHandle(forWritingTo: errorFile)
        defer { try? errors.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(
                    throwing: LauncherError(code: .fetchFailed, message: "could not \(what): \(tool) did not start", cause: error))
            }
        }
        guard status == 0 else {
            let text = ((try? String(contentsOf: errorFile, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            throw LauncherError(
                code: .fetchFailed,
                message: "could not \(what): \(tool) exited with \(status)\(text.isEmpty ? "" : ": \(String(text.prefix(500)))")")
        }
    }
}
