import KeelStore
import Synchronization
import Testing

/// A thread-safe boolean that tests can set from a child task.
private final class Flag: Sendable {
    private let value = Atomic(false)
    var isSet: Bool { self.value.load(ordering: .acquiring) }
    func set() { self.value.store(true, ordering: .releasing) }
}

@Suite("Leader election")
struct ElectionTests {
    @Test("the second candidate becomes leader after the first one's lease is revoked")
    func failover() async throws {
        try await withStore { store in
            #expect(try await store.leader(election: "keel/broker") == nil)

            let leaseA = try await store.grantLease(ttl: .seconds(60))
            let leaseB = try await store.grantLease(ttl: .seconds(60))
            let leaderA = try await withDeadline("candidate A to win an empty election") {
                try await store.campaign(election: "keel/broker", candidate: "broker-a", lease: leaseA)
            }
            #expect(leaderA.candidate == "broker-a")
            #expect(leaderA.key == "keel/broker/\(leaseA)")
            #expect(try await store.leader(election: "keel/broker") == "broker-a")

            let members = try await store.watch(prefix: "keel/broker/")
            let bReturned = Flag()
            try await withThrowingTaskGroup(of: LeaderKey?.self) { group in
                group.addTask {
                    let key = try await store.campaign(election: "keel/broker", candidate: "broker-b", lease: leaseB)
                    bReturned.set()
                    return key
                }
                // Wait until B's candidacy is registered, then check that A still leads.
                let registered = try await collect(members, count: 1)
                #expect(registered.first?.key == "keel/broker/\(leaseB)")
                #expect(try await store.leader(election: "keel/broker") == "broker-a")
                #expect(!bReturned.isSet)

                try await store.revokeLease(leaseA)
                group.addTask {
                    try await Task.sleep(for: .seconds(30))
                    return nil  // Deadline: B never took over.
                }
                let leaderB = try #require(try await group.next() ?? nil, "candidate B did not take over in time")
                group.cancelAll()
                #expect(leaderB.candidate == "broker-b")
                #expect(leaderB.lease == leaseB)
            }
            #expect(try await store.leader(election: "keel/broker") == "broker-b")
        }
    }

    @Test("resigning hands leadership to the next candidate; a cancelled campaign withdraws")
    func resignAndCancel() async throws {
        try await withStore { store in
            let leaseA = try await store.grantLease(ttl: .seconds(60))
            let leaseB = try await store.grantLease(ttl: .seconds(60))
            let leaderA = try await store.campaign(election: "sched", candidate: "a", lease: leaseA)

            // B waits, then gives up: its candidacy key is removed.
            let members = try await store.watch(prefix: "sched/")
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    _ = try await store.campaign(election: "sched", candidate: "b", lease: leaseB)
                }
                let registered = try await collect(members, count: 1)
                #expect(registered.first?.key == "sched/\(leaseB)")
                group.cancelAll()
                await #expect(throws: CancellationError.self) { try await group.waitForAll() }
            }
            #expect(try await store.range(prefix: "sched/").map(\.key) == [leaderA.key])

            try await store.resign(leaderA)
            #expect(try await store.leader(election: "sched") == nil)
            let leaderB = try await store.campaign(election: "sched", candidate: "b", lease: leaseB)
            #expect(try await store.leader(election: "sched") == leaderB.candidate)
        }
    }
}
