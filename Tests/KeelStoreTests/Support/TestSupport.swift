import Foundation
import KeelStore
import Logging

/// Thrown when something a test waits for does not happen within its (generous) deadline.
struct TestTimeout: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(self.what)" }
}

/// A fresh directory under the system temp directory, removed by ``remove()``.
struct TemporaryDirectory {
    let url: URL

    init() throws {
        self.url = FileManager.default.temporaryDirectory
            .appendingPathComponent("keelstore-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: self.url, withIntermediateDirectories: true)
    }

    /// The path of the store file inside the directory.
    var storePath: String { self.url.appendingPathComponent("store.sqlite").path }

    func remove() {
        try? FileManager.default.removeItem(at: self.url)
    }
}

/// A logger that discards everything, so test output stays readable.
let quietLogger = Logger(label: "keel.store.tests") { _ in SwiftLogNoOpLogHandler() }

/// Opens a store on a new temp file, runs `body`, and always closes the store and removes the file.
func withStore<T>(
    configuration: SQLiteStore.Configuration = SQLiteStore.Configuration(),
    _ body: (SQLiteStore) async throws -> T
) async throws -> T {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let store = try await SQLiteStore.open(
        path: directory.storePath,
        logger: quietLogger,
        configuration: configuration
    )
    do {
        let result = try await body(store)
        try await store.close()
        return result
    } catch {
        try? await store.close()
        throw error
    }
}

/// Reads `count` events from `stream`, failing after `timeout` (a safety net, not a pacing sleep).
/// Returns fewer events only if the stream ends early.
func collect(
    _ stream: WatchStream,
    count: Int,
    timeout: Duration = .seconds(30)
) async throws -> [WatchEvent] {
    try await withThrowingTaskGroup(of: [WatchEvent]?.self) { group in
        group.addTask {
            var events: [WatchEvent] = []
            for try await event in stream {
                events.append(event)
                if events.count == count { break }
            }
            return events
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let events = first else {
            throw TestTimeout(what: "\(count) watch events")
        }
        return events
    }
}

/// Consumes `stream` until it throws, returning the error (or `nil` if it ended without one).
func streamError(_ stream: WatchStream, timeout: Duration = .seconds(30)) async throws -> (any Error)? {
    try await withThrowingTaskGroup(of: Result<Void, any Error>?.self) { group in
        group.addTask {
            do {
                for try await _ in stream {}
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let result = first else {
            throw TestTimeout(what: "the watch stream to end")
        }
        if case .failure(let error) = result {
            return error
        }
        return nil
    }
}

/// Runs `operation`, failing with ``TestTimeout`` if it takes longer than `timeout`.
func withDeadline<T: Sendable>(
    _ what: String,
    timeout: Duration = .seconds(30),
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else {
            throw TestTimeout(what: what)
        }
        return value
    }
}

extension String {
    /// The string's UTF-8 bytes, for concise test values.
    var bytes: [UInt8] { Array(self.utf8) }
}
