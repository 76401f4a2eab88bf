import Synchronization

/// Serializes writers, counts readers, and closes the store only when nobody is inside.
///
/// - Writers get exclusive, FIFO-ordered access (one SQLite write transaction at a time).
/// - Readers never wait for writers (they use their own connection and see the last commit),
///   but they are counted so that ``close(_:)`` can wait until in-flight reads are done.
/// - After ``close(_:)`` starts, new readers and writers fail with ``StoreError/Code/unavailable``.
///
/// The state is a value type behind a `Mutex`; waiting uses checked continuations, resumed outside the lock.
final class AccessGate: Sendable {
    private struct State {
        var writerActive = false
        var writeWaiters: [CheckedContinuation<Bool, Never>] = []
        var activeReads = 0
        var readsDrained: CheckedContinuation<Void, Never>?
        var closed = false
    }

    private let state = Mutex(State())
    private let path: String

    /// - Parameter path: the store file, named in error messages.
    init(path: String) {
        self.path = path
    }

    private var closedError: StoreError {
        .unavailable("the store at \(self.path) is closed; open it again with SQLiteStore.open(path:logger:)")
    }

    /// Whether ``close(_:)`` has started.
    var isClosed: Bool {
        self.state.withLock { $0.closed }
    }

    /// Runs `body` as a reader. Throws ``StoreError/Code/unavailable`` if the store is closed.
    func withRead<T>(_ body: () async throws -> T) async throws -> T {
        let admitted = self.state.withLock { state in
            guard !state.closed else { return false }
            state.activeReads += 1
            return true
        }
        guard admitted else { throw self.closedError }
        defer { self.endRead() }
        return try await body()
    }

    /// Runs `body` with exclusive write access. Throws ``StoreError/Code/unavailable`` if the store is closed.
    func withWrite<T>(_ body: () async throws -> T) async throws -> T {
        guard await self.acquireWrite() else { throw self.closedError }
        defer { self.releaseWrite() }
        return try await body()
    }

    /// Marks the gate closed, waits for the current writer and readers, then runs `body` alone.
    /// - Returns: `false` if the gate was already closed (then `body` does not run).
    func close(_ body: () async throws -> Void) async throws -> Bool {
        guard await self.acquireWrite() else { return false }
        let waiters = self.state.withLock { state in
            state.closed = true
            defer { state.writeWaiters.removeAll() }
            return state.writeWaiters
        }
        // Queued writers learn that the store closed.
        for waiter in waiters {
            waiter.resume(returning: false)
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let drained = self.state.withLock { state in
                if state.activeReads == 0 { return true }
                state.readsDrained = continuation
                return false
            }
            if drained { continuation.resume() }
        }
        try await body()
        return true
    }

    /// Waits for exclusive access; `false` means the gate closed instead.
    private func acquireWrite() async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            enum Decision { case granted, refused, queued }
            let decision: Decision = self.state.withLock { state in
                if state.closed { return .refused }
                if !state.writerActive {
                    state.writerActive = true
                    return .granted
                }
                state.writeWaiters.append(continuation)
                return .queued
            }
            switch decision {
            case .granted: continuation.resume(returning: true)
            case .refused: continuation.resume(returning: false)
            case .queued: break
            }
        }
    }

    /// Hands the write slot to the next waiter (FIFO) or frees it.
    private func releaseWrite() {
        let next: CheckedContinuation<Bool, Never>? = self.state.withLock { state in
            if state.closed || state.writeWaiters.isEmpty {
                state.writerActive = false
                return nil
            }
            return state.writeWaiters.removeFirst()
        }
        next?.resume(returning: true)
    }

    private func endRead() {
        let drained: CheckedContinuation<Void, Never>? = self.state.withLock { state in
            state.activeReads -= 1
            guard state.activeReads == 0, let waiter = state.readsDrained else { return nil }
            state.readsDrained = nil
            return waiter
        }
        drained?.resume()
    }
}
