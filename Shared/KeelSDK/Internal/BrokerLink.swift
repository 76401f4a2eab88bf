import GRPCCore
import GRPCNIOTransportHTTP2Posix
import KeelAPI
import Synchronization

/// The broker client the session's calls go to: the one the subscription currently uses, which
/// changes when the driver follows a leader redirect.
final class BrokerLink: Sendable {
    typealias Scheduler = Keel_V1_Scheduler.Client<HTTP2ClientTransport.Posix>

    private struct Current: Sendable {
        var scheduler: Scheduler?
        var generation = 0
        var streamID: String?
    }

    private let current = Mutex(Current())
    /// Renews the framework's token (the driver's ``TokenRefresher``).
    private let renewToken: @Sendable () async -> Void

    init(renewToken: @escaping @Sendable () async -> Void = {}) {
        self.renewToken = renewToken
    }

    /// The stream id of the current subscription (from SUBSCRIBED), sent with every call so the
    /// broker can refuse calls of a process that a failover superseded.
    var streamID: String? {
        get { current.withLock { $0.streamID } }
        set { current.withLock { $0.streamID = newValue } }
    }

    /// Makes `scheduler` the client for calls; returns a generation for ``clear(_:)``.
    func use(_ scheduler: Scheduler) -> Int {
        current.withLock {
            $0.scheduler = scheduler
            $0.generation += 1
            return $0.generation
        }
    }

    /// Forgets the client of `generation` (its connections are closing), unless a newer one replaced it.
    func clear(_ generation: Int) {
        current.withLock { if $0.generation == generation { $0.scheduler = nil } }
    }

    /// The client for a call.
    ///
    /// - Throws: `RPCError` `UNAVAILABLE` while the driver is between brokers.
    /// Makes a call with the current client; a call the broker refuses as unauthenticated (the
    /// token expired before it was renewed, e.g. while the process was starved of CPU) is made
    /// once more with a renewed token. The broker acts on no refused call, so the retry is safe.
    func call<Result: Sendable>(_ body: (Scheduler) async throws -> Result) async throws -> Result {
        do {
            return try await body(try scheduler())
        } catch let error as RPCError where error.code == .unauthenticated {
            await renewToken()
            return try await body(try scheduler())
        }
    }

    func scheduler() throws -> Scheduler {
        guard let scheduler = current.withLock({ $0.scheduler }) else {
            throw RPCError(code: .unavailable, message: "not connected to a broker; the driver is reconnecting, try again")
        }
        return scheduler
    }
}

/// The uuids of the status updates the driver acknowledged itself, so that an explicit
/// acknowledgement of the same update is skipped. Keeps the most recent ones only.
final class AcknowledgedUpdates: Sendable {
    private struct State: Sendable {
        var set: Set<[UInt8]> = []
        var order: [[UInt8]] = []
    }

    private let state = Mutex(State())
    private let capacity: Int

    init(capacity: Int = 4096) {
        self.capacity = capacity
    }

    func insert(_ uuid: [UInt8]) {
        state.withLock { state in
            guard state.set.insert(uuid).inserted else { return }
            state.order.append(uuid)
            if state.order.count > capacity {
                let excess = state.order.count - capacity / 2
                for old in state.order.prefix(excess) { state.set.remove(old) }
                state.order.removeFirst(excess)
            }
        }
    }

    func contains(_ uuid: [UInt8]) -> Bool {
        state.withLock { $0.set.contains(uuid) }
    }
}
