import BrokerCore
import Foundation
import GRPCCore
import KeelAPI
import KeelCore
import KeelRPC
import SwiftProtobuf
import Testing

/// Who may tear a framework down at keel-registry when it requires credentials: the framework
/// itself, or a principal the teardown_frameworks ACL allows (an operator, or keel-broker when a
/// failover timeout expires).
@Suite("Tearing down frameworks at the registry")
struct RegistryTeardownTests {
    static let acls = ACLs(
        permissive: false,
        rules: [
            .registerFrameworks: [.init(principals: .any, object: .any)],
            .teardownFrameworks: [.init(principals: .values(["ops"]), object: .any)],
        ]
    )

    @Test("no authentication, or a principal the ACL does not allow, is refused; the framework's token and an allowed principal succeed")
    func whoMayTearDown() async throws {
        try await InProcessCluster.with(registryConfiguration: try AuthFixtures.registry(acls: Self.acls)) { cluster in
            let (first, firstToken) = try await cluster.register("first", credential: AuthFixtures.analytics)
            let (second, _) = try await cluster.register("second", credential: AuthFixtures.analytics)
            func teardown(_ id: String, credential: (principal: String, secret: String)? = nil, token: String? = nil) async -> RPCError? {
                await rpcFailure {
                    _ = try await cluster.registry.teardownFramework(.with {
                        $0.frameworkID.value = id
                        if let credential {
                            $0.credential.principal = credential.principal
                            $0.credential.secret = credential.secret
                        }
                    }, metadata: token.map(bearer) ?? [:])
                }
            }
            #expect(await teardown(first)?.code == .unauthenticated)
            #expect(await teardown(first, credential: (principal: "ops", secret: "wrong"))?.code == .unauthenticated)
            let denied = await teardown(first, credential: AuthFixtures.analytics)
            #expect(denied?.code == .permissionDenied)
            #expect(denied?.message.contains("teardown_frameworks") == true)
            let stillActive = try await cluster.registry.getFramework(.with { $0.frameworkID.value = first }).record.state
            #expect(stillActive == .active)

            #expect(await teardown(first, token: firstToken) == nil)
            #expect(await teardown(second, credential: AuthFixtures.ops) == nil)
            let states = try await cluster.registry.listFrameworks(.with { $0.includeCompleted = true }).records.map(\.state)
            #expect(states == [.completed, .completed])
        }
    }
}
