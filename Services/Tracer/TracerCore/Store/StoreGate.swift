import KeelCore
import Synchronization

/// Gives writers one at a time (first come, first served) the span store's writer connection, counts
/// readers, and closes the store only once nobody is inside.
///
/// Readers use their own connection (WAL mode lets them read the last commit while a write runs), so
/// they never wait for writers; they are counted only so that ``close(_:)`` can wait for them.
/// Once ``close(_:)`` has started, new readers and writers fail with ``KeelError/Code/unavailable``.
final class StoreGate: Sendable {
    private struct State {
        var writing = false
        var queuedWriters: [CheckedContinuation<Bool, Never>] = []
        var readers = 0
        var readersDone: CheckedContinuation<Void, Never>?
        var closed = false
    }

    private let state = Mutex(State())
    private let path: String

    /// - Parameter path: the store file, named in error messages.
    init(path: String) {
        self.path = path
    }

    /// Whether ``close(_:)`` has started.
    var isClosed: Bool {
        state.withLock { $0.closed }
    }

    private var closedError: KeelError {
        .unavailable("the span store at \(path) is closed (keel-tracer is shutting down); retry against the restarted tracer")
    }

    /// Runs `body` as a reader.
    func read<T>(_ body: () async throws -> T) async throws -> T {
        let admitted = state.withLock { state in
            guard !state.closed else { return false }
            state.readers += 1
            return true
        }
        guard admitted else { throw closedError }
        defer { endRead() }
        return try await body()
    }

    /// Runs `body` with exclusive use of the writer connection.
    func write<T>(_ body: () async throws -> T) async throws -> T {
        guard await acquireWrite() else { throw closedError }
        defer { releaseWrite() }
        return try await body()
    }

    /// Closes the gate, waits for the current writer and all readers, then runs `body` alone.
    /// - Returns: `false` when the gate was already closed (`body` does not run then).
    func close(_ body: () async throws -> Void) async throws -> Bool {
        guard await acquireWrite() else { return false }
        let refused = state.withLock { state in
            state.closed = true
            defer { state.queuedWriters.removeAll() }
            return state.queuedWriters
        }
        for writer in refused { writer.resume(returning: false) }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { state in
                guard state.readers > 0 else { return true }
                state.readersDone = continuation
                return false
            }
            if idle { continuation.resume() }
        }
        try await body()
        return true
    }

    /// Waits for the write slot; `false` means the gate closed instead.
    private func acquireWrite() async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let answer: Bool? = state.withLock { state in
                if state.closed { return false }
                if !state.writing {
                    state.writing = true
                    return true
                }
                state.queuedWriters.append(continuation)
                return nil
            }
            if let answer { continuation.resume(returning: answer) }
        }
    }

    /// Hands the write slot to the next queued writer, or frees it.
    private func releaseWrite() {
        let next: CheckedContinuation<Bool, Never>? = state.withLock { state in
            guard !state.closed, !state.queuedWriters.isEmpty else {
                state.writing = false
                return nil
            }
            return state.queuedWriters.removeFirst()
        }
        next?.resume(returning: true)
    }

    private func endRead() {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
            state.readers -= 1
            guard state.readers == 0 else { return nil }
            defer { state.readersDone = nil }
            return state.readersDone
        }
        waiter?.resume()
    }
}
