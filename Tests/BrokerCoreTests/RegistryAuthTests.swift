import BrokerCore
import Foundation
import GRPCCore
import JWTKit
import KeelAPI
import KeelCore
import KeelRPC
import RegistryCore
import SwiftProtobuf
import Testing

/// keel-registry with credentials and ACLs, over gRPC (in process): who may register, as whom,
/// with which roles, and who may renew a framework's token.
@Suite("Registry authentication and authorization")
struct RegistryAuthTests {
    @Test("a wrong, unknown or missing credential is refused with UNAUTHENTICATED and nothing is stored")
    func wrongCredential() async throws {
        try await InProcessCluster.with(registryConfiguration: try AuthFixtures.registry()) { cluster in
            let wrong = await rpcFailure {
                _ = try await cluster.register("f", credential: (AuthFixtures.analytics.principal, "not-the-secret"))
            }
            #expect(wrong?.code == .unauthenticated)
            #expect(wrong?.message.contains("wrong principal or secret for 'analytics'") == true)

            let unknown = await rpcFailure { _ = try await cluster.register("f", credential: ("mallory", "analytics-secret")) }
            #expect(unknown?.code == .unauthenticated)

            let missing = await rpcFailure { _ = try await cluster.register("f") }
            #expect(missing?.code == .unauthenticated)
            #expect(missing?.message.contains("requires a credential") == true)

            let list = try await cluster.registry.listFrameworks(.with { $0.includeCompleted = true })
            #expect(list.records.isEmpty)
        }
    }

    @Test("the authenticated principal is recorded and carried in the token, whatever the framework claims")
    func principalInToken() async throws {
        try await InProcessCluster.with(registryConfiguration: try AuthFixtures.registry()) { cluster in
            let request = Keel_V1_RegisterFrameworkRequest.with {
                $0.frameworkInfo.name = "claims-to-be-ops"
                $0.frameworkInfo.user = "root"
                $0.frameworkInfo.principal = AuthFixtures.ops.principal
                $0.credential.principal = AuthFixtures.analytics.principal
                $0.credential.secret = AuthFixtures.analytics.secret
            }
            let response = try await cluster.registry.registerFramework(request)
            #expect(response.record.frameworkInfo.principal == "analytics")
            let claims = try await cluster.broker.verifier.verify(response.token)
            #expect(claims.principal == "analytics")
            #expect(claims.sub.value == response.frameworkID.value)

            // Another principal cannot take the framework over by re-registering its id.
            var takeover = request
            takeover.frameworkInfo.id = response.frameworkID
            takeover.credential.principal = AuthFixtures.ops.principal
            takeover.credential.secret = AuthFixtures.ops.secret
            let denied = await rpcFailure { _ = try await cluster.registry.registerFramework(takeover) }
            #expect(denied?.code == .permissionDenied)
            let record = try await cluster.registry.getFramework(.with { $0.frameworkID = response.frameworkID })
            #expect(record.record.frameworkInfo.principal == "analytics")
        }
    }

    @Test("a token is renewed with the framework's own token or its principal's credential, by no one else")
    func refresh() async throws {
        try await InProcessCluster.with(registryConfiguration: try AuthFixtures.registry()) { cluster in
            let (id, token) = try await cluster.register("refresh", credential: AuthFixtures.analytics)
            let request = Keel_V1_RefreshTokenRequest.with { $0.frameworkID.value = id }

            let byToken = try await cluster.registry.refreshToken(request, metadata: bearer(token))
            let renewed = try await cluster.broker.verifier.verify(byToken.token)
            #expect(renewed.sub.value == id)
            #expect(renewed.principal == "analytics")

            var withCredential = request
            withCredential.credential = .with {
                $0.principal = AuthFixtures.analytics.principal
                $0.secret = AuthFixtures.analytics.secret
            }
            let byCredential = try await cluster.registry.refreshToken(withCredential)
            #expect(!byCredential.token.isEmpty)

            var otherPrincipal = request
            otherPrincipal.credential = .with {
                $0.principal = AuthFixtures.ops.principal
                $0.secret = AuthFixtures.ops.secret
            }
            let denied = await rpcFailure { _ = try await cluster.registry.refreshToken(otherPrincipal) }
            #expect(denied?.code == .permissionDenied)

            let (otherID, otherToken) = try await cluster.register("other", credential: AuthFixtures.ops)
            let foreignToken = await rpcFailure { _ = try await cluster.registry.refreshToken(request, metadata: bearer(otherToken)) }
            #expect(foreignToken?.code == .permissionDenied)
            #expect(foreignToken?.message.contains(otherID) == true)

            let anonymous = await rpcFailure { _ = try await cluster.registry.refreshToken(request) }
            #expect(anonymous?.code == .unauthenticated)
            // Without authentication nothing tells whether a framework exists.
            let probe = await rpcFailure { _ = try await cluster.registry.refreshToken(.with { $0.frameworkID.value = "no-such" }) }
            #expect(probe?.code == .unauthenticated)

            let expired = try await cluster.authority.issue(
                frameworkID: id, principal: "analytics", roles: ["*"], now: Date().addingTimeInterval(-7200)
            ).0
            let expiredRefresh = await rpcFailure { _ = try await cluster.registry.refreshToken(request, metadata: bearer(expired)) }
            #expect(expiredRefresh?.code == .unauthenticated)
        }
    }

    @Test("register_frameworks: a role the principal may not use is refused with PERMISSION_DENIED and nothing is stored")
    func registerRoleDenied() async throws {
        let acls = ACLs(
            permissive: false,
            rules: [.registerFrameworks: [.init(principals: .values(["analytics"]), object: .values(["analytics"]))]]
        )
        try await InProcessCluster.with(registryConfiguration: try AuthFixtures.registry(acls: acls)) { cluster in
            let denied = await rpcFailure {
                _ = try await cluster.register("prod-job", roles: ["analytics", "prod"], credential: AuthFixtures.analytics)
            }
            #expect(denied?.code == .permissionDenied)
            let message = denied?.message ?? ""
            #expect(message.contains("principal 'analytics' may not register a framework with role 'prod'"), "\(message)")
            #expect(message.contains("register_frameworks"))

            // No role given means '*', which is not allowed either.
            let star = await rpcFailure { _ = try await cluster.register("default-role", credential: AuthFixtures.analytics) }
            #expect(star?.code == .permissionDenied)
            #expect(star?.message.contains("role '*'") == true)

            let opsDenied = await rpcFailure { _ = try await cluster.register("ops-job", roles: ["analytics"], credential: AuthFixtures.ops) }
            #expect(opsDenied?.code == .permissionDenied)

            let none = try await cluster.registry.listFrameworks(.with { $0.includeCompleted = true })
            #expect(none.records.isEmpty)

            let (id, _) = try await cluster.register("analytics-job", roles: ["analytics"], credential: AuthFixtures.analytics)
            let list = try await cluster.registry.listFrameworks(Keel_V1_ListFrameworksRequest())
            #expect(list.records.map(\.frameworkInfo.id.value) == [id])
        }
    }

    @Test("an open registry (no credentials) registers without a credential")
    func openRegistry() async throws {
        try await InProcessCluster.with { cluster in
            let (id, token) = try await cluster.register("open")
            let claims = try await cluster.broker.verifier.verify(token)
            #expect(claims.sub.value == id)
            #expect(claims.principal.isEmpty)
        }
    }
}
