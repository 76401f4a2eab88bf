@testable import BrokerCore
import Foundation
import KeelAPI
import KeelCore
import KeelRPC
import SwiftProtobuf
import Testing

/// After a broker restart, frameworks registered before it are known from the registry's
/// snapshot: one that never subscribes again is torn down once its failover timeout and the
/// recovery grace have passed; one that subscribes is not.
@Suite("Frameworks after a broker restart")
struct FrameworkRecoveryTests {
    static func record(_ id: String, failover seconds: Int64) -> Keel_V1_FrameworkRecord {
        .with {
            $0.frameworkInfo.id.value = id
            $0.frameworkInfo.name = id
            $0.frameworkInfo.user = "root"
            $0.frameworkInfo.failoverTimeout.seconds = seconds
            $0.state = .active
        }
    }

    @Test("a framework from the snapshot expires after its failover timeout plus the grace; a new registration does not start the clock")
    func snapshotFrameworksExpire() throws {
        var configuration = BrokerConfiguration.defaults(registry: try KeelRPC.Endpoint(parsing: "127.0.0.1:1"))
        configuration.frameworkRecoveryGrace = .seconds(60)
        var state = BrokerState(configuration: configuration)
        let start = Date(timeIntervalSince1970: 1_000_000)
        state.upsertFramework(Self.record("old", failover: 30), fromSnapshot: true, now: start)
        state.upsertFramework(Self.record("new", failover: 0), now: start)

        #expect(state.expiredFrameworks(now: start.addingTimeInterval(89)).isEmpty)
        #expect(state.expiredFrameworks(now: start.addingTimeInterval(90)) == [FrameworkID("old")])

        // Seen again in a later snapshot (the registry stream reconnected): nothing changes.
        state.upsertFramework(Self.record("new", failover: 0), fromSnapshot: true, now: start.addingTimeInterval(50))
        #expect(state.expiredFrameworks(now: start.addingTimeInterval(1000)) == [FrameworkID("old")])

        // Subscribing stops the clock.
        _ = try state.subscribe(FrameworkID("old"), outbound: MessageOutbox<Keel_V1_Event>(), now: start.addingTimeInterval(10))
        #expect(state.expiredFrameworks(now: start.addingTimeInterval(1000)).isEmpty)
    }
}
