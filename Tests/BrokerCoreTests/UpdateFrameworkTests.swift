import BrokerCore
import Foundation
import GRPCCore
import KeelAPI
import KeelCore
import KeelRPC
import SwiftProtobuf
import Testing

/// UpdateFramework through the broker: the registry stores the change (checking ACLs) and the
/// broker offers for the new roles at once.
@Suite("Updating a framework")
struct UpdateFrameworkTests {
    @Test("a framework moves to a new role and is offered for it; the user, others' tokens and denied roles are refused")
    func moveRole() async throws {
        let acls = ACLs(
            permissive: false,
            rules: [.registerFrameworks: [.init(principals: .values(["analytics"]), object: .values(["analytics", "analytics/etl"]))]]
        )
        try await InProcessCluster.with(registryConfiguration: try AuthFixtures.registry(acls: acls)) { cluster in
            try await cluster.withConnectedPair(
                framework: "mover", hostname: "node-u", roles: ["analytics"], credential: AuthFixtures.analytics
            ) { pair in
                let first = try await pair.frameworkInbox.wait(for: "OFFERS") { $0.type == .offers }
                #expect(first.offers.offers.first?.allocationInfo.role == "analytics")
                let current = try await cluster.registry.getFramework(.with { $0.frameworkID.value = pair.frameworkID }).record.frameworkInfo

                func update(_ change: (inout Keel_V1_FrameworkInfo) -> Void, token: String? = nil) async -> RPCError? {
                    var info = current
                    change(&info)
                    let request = Keel_V1_UpdateFrameworkRequest.with { $0.frameworkInfo = info }
                    return await rpcFailure {
                        _ = try await cluster.scheduler.updateFramework(request, metadata: bearer(token ?? pair.token))
                    }
                }
                #expect(await update { $0.roles = ["prod"] }?.code == .permissionDenied)
                #expect(await update { $0.user = "nobody" }?.code == .invalidArgument)
                #expect(await update { $0.roles = ["analytics/etl", "analytics/etl"] }?.code == .invalidArgument)
                let (_, otherToken) = try await cluster.register("other", roles: ["analytics"], credential: AuthFixtures.analytics)
                #expect(await update({ $0.roles = ["analytics/etl"] }, token: otherToken)?.code == .permissionDenied)
                let unchanged = try await cluster.registry.getFramework(.with { $0.frameworkID.value = pair.frameworkID })
                #expect(unchanged.record.frameworkInfo.roles == ["analytics"])

                let response = try await cluster.scheduler.updateFramework(.with {
                    $0.frameworkInfo = current
                    $0.frameworkInfo.roles = ["analytics/etl"]
                    $0.frameworkInfo.name = "mover v2"
                }, metadata: bearer(pair.token))
                #expect(response.frameworkInfo.roles == ["analytics/etl"])
                #expect(response.frameworkInfo.principal == "analytics")

                // The offer made for the old role is rescinded and the next one is for the new role.
                let rescind = try await pair.frameworkInbox.wait(for: "RESCIND") { $0.type == .rescind }
                #expect(rescind.rescind.offerID == first.offers.offers.first?.id)
                let next = try await pair.frameworkInbox.wait(for: "OFFERS for the new role") { event in
                    event.type == .offers && event.offers.offers.first?.allocationInfo.role == "analytics/etl"
                }
                #expect(next.offers.offers.first?.agentID == pair.agentID)
                let frameworks = try await cluster.operator_.getFrameworks(.init()).frameworks
                #expect(frameworks.first { $0.frameworkInfo.id.value == pair.frameworkID }?.frameworkInfo.name == "mover v2")
            }
        }
    }
}
