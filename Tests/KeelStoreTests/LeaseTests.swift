import KeelStore
import ServiceLifecycle
import Testing

@Suite("Leases")
struct LeaseTests {
    /// A store on a manual clock, so TTLs elapse only when the test says so.
    private func manualConfiguration(_ clock: ManualClock) -> SQLiteStore.Configuration {
        var configuration = SQLiteStore.Configuration()
        configuration.clock = StoreClock(clock)
        configuration.leaseCheckInterval = .seconds(1)
        return configuration
    }

    @Test("run() expires a lease after its TTL, deleting its keys and emitting delete events")
    func expiryDeletesKeys() async throws {
        let clock = ManualClock()
        try await withStore(configuration: self.manualConfiguration(clock)) { store in
            let lease = try await store.grantLease(ttl: .seconds(10))
            let stream = try await store.watch(prefix: "agents/")
            _ = try await store.put("agents/a1", value: "alive".bytes, lease: lease)
            _ = try await store.put("agents/a2", value: "alive".bytes, lease: lease)
            _ = try await store.put("agents/static", value: "stays".bytes)

            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await store.run() }

                // Keep-alive at t=9 pushes the deadline to t=19.
                clock.advance(by: .seconds(9))
                try await store.keepAlive(lease)
                clock.advance(by: .seconds(9))  // t=18: still alive.
                #expect(try await store.get("agents/a1") != nil)

                clock.advance(by: .seconds(2))  // t=20: expired.
                let events = try await collect(stream, count: 5)
                #expect(events.map(\.kind) == [.put, .put, .put, .delete, .delete])
                #expect(events.suffix(2).map(\.key) == ["agents/a1", "agents/a2"])
                #expect(events[3].modRevision == events[4].modRevision)

                group.cancelAll()
            }
            #expect(try await store.range(prefix: "agents/").map(\.key) == ["agents/static"])
            let error = await #expect(throws: StoreError.self) { try await store.keepAlive(lease) }
            #expect(error?.code == .notFound)
        }
    }

    @Test("expireLeases() can be driven directly with a manual clock")
    func directExpiry() async throws {
        let clock = ManualClock()
        try await withStore(configuration: self.manualConfiguration(clock)) { store in
            let short = try await store.grantLease(ttl: .seconds(5))
            let long = try await store.grantLease(ttl: .seconds(60))
            _ = try await store.put("s", value: [], lease: short)
            _ = try await store.put("l", value: [], lease: long)

            #expect(try await store.expireLeases().isEmpty)
            clock.advance(by: .seconds(5))
            // Past its deadline but not reaped yet: the lease can neither be renewed nor used.
            let late = await #expect(throws: StoreError.self) { try await store.keepAlive(short) }
            #expect(late?.code == .notFound)
            let lateUse = await #expect(throws: StoreError.self) { try await store.put("s2", value: [], lease: short) }
            #expect(lateUse?.code == .notFound)
            #expect(try await store.expireLeases() == [short])
            #expect(try await store.get("s") == nil)
            #expect(try await store.get("l") != nil)
        }
    }

    @Test("revoking a lease deletes its keys; using a revoked lease fails with notFound")
    func revoke() async throws {
        try await withStore { store in
            let lease = try await store.grantLease(ttl: .seconds(60))
            _ = try await store.put("locks/a", value: "me".bytes, lease: lease)
            let attached = try #require(try await store.get("locks/a"))
            #expect(attached.lease == lease)

            let stream = try await store.watch(prefix: "locks/")
            try await store.revokeLease(lease)
            let events = try await collect(stream, count: 1)
            #expect(events.first?.kind == .delete)
            #expect(events.first?.key == "locks/a")
            #expect(try await store.get("locks/a") == nil)

            let revokeAgain = await #expect(throws: StoreError.self) { try await store.revokeLease(lease) }
            #expect(revokeAgain?.code == .notFound)
            let putWithDead = await #expect(throws: StoreError.self) {
                try await store.put("locks/b", value: [], lease: lease)
            }
            #expect(putWithDead?.code == .notFound)

            // A plain put detaches a key from its lease.
            let other = try await store.grantLease(ttl: .seconds(60))
            _ = try await store.put("locks/c", value: [], lease: other)
            _ = try await store.put("locks/c", value: [1])
            try await store.revokeLease(other)
            #expect(try await store.get("locks/c")?.value == [1])
        }
    }

    @Test("the store runs in a ServiceGroup and stops on graceful shutdown")
    func serviceGroupShutdown() async throws {
        let clock = ManualClock()
        try await withStore(configuration: self.manualConfiguration(clock)) { store in
            let lease = try await store.grantLease(ttl: .seconds(5))
            _ = try await store.put("ephemeral", value: [], lease: lease)
            let stream = try await store.watch(prefix: "ephemeral")
            let group = ServiceGroup(services: [store], logger: quietLogger)
            try await withDeadline("the service group to expire the lease and shut down") {
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    tasks.addTask { try await group.run() }
                    clock.advance(by: .seconds(6))
                    let events = try await collect(stream, count: 1)
                    #expect(events.first?.kind == .delete)
                    await group.triggerGracefulShutdown()
                    try await tasks.waitForAll()
                }
            }
            // The store stays usable after run() returned; close() is separate.
            #expect(try await store.get("ephemeral") == nil)
        }
    }
}
