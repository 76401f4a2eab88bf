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

/// keel-broker's side of authentication and authorization, over gRPC (in process): tokens that
/// must be refused, and the run_tasks and teardown_frameworks ACLs, which change nothing when
/// they deny.
@Suite("Broker authentication and authorization")
struct BrokerAuthTests {
    @Test("run_tasks: launching as a user the principal may not use is PERMISSION_DENIED and the offer stays usable")
    func runAsUserDenied() async throws {
        let acls = ACLs(
            permissive: false,
            rules: [.runTasks: [.init(principals: .values(["analytics"]), object: .values(["nobody"]))]]
        )
        try await InProcessCluster.with(registryConfiguration: try AuthFixtures.registry(), acls: acls) { cluster in
            try await cluster.withConnectedPair(
                framework: "analytics-job", hostname: "node-1", user: "root", credential: AuthFixtures.analytics
            ) { pair in
                let offers = try await pair.frameworkInbox.wait(for: "OFFERS") { $0.type == .offers }
                let offer = try #require(offers.offers.offers.first)

                // The task names no user, so it would run as the framework's user, root.
                var task = SchedulerFlowTests.task("as-root", agentID: pair.agentID)
                let asRoot = Keel_V1_AcceptRequest.with {
                    $0.frameworkID.value = pair.frameworkID
                    $0.offerIds = [offer.id]
                    $0.operations = [.with {
                        $0.type = .launch
                        $0.launch.taskInfos = [task]
                    }]
                }
                let denied = await rpcFailure { _ = try await cluster.scheduler.accept(asRoot, metadata: bearer(pair.token)) }
                #expect(denied?.code == .permissionDenied)
                let message = denied?.message ?? ""
                #expect(message.contains("principal 'analytics' may not run tasks as user 'root'"), "\(message)")
                #expect(message.contains("run_tasks"))

                var asOps = asRoot
                task.command.user = "ops"
                asOps.operations[0].launch.taskInfos = [task]
                let deniedOps = await rpcFailure { _ = try await cluster.scheduler.accept(asOps, metadata: bearer(pair.token)) }
                #expect(deniedOps?.code == .permissionDenied)

                let tasks = try await cluster.operator_.getTasks(Keel_V1_GetTasksRequest())
                #expect(tasks.tasks.isEmpty)
                let launches = pair.agentInbox.all.filter { !$0.launch.task.taskID.value.isEmpty }
                #expect(launches.isEmpty)

                // The same offer is still there: a launch as an allowed user takes it.
                task.taskID.value = "as-nobody"
                task.command.user = "nobody"
                var allowed = asRoot
                allowed.operations[0].launch.taskInfos = [task]
                let accepted = try await cluster.scheduler.accept(allowed, metadata: bearer(pair.token))
                #expect(accepted.launched.map(\.value) == ["as-nobody"])
                let launch = try await pair.agentInbox.wait(for: "launch") { $0.launch.task.taskID.value == "as-nobody" }
                #expect(launch.launch.task.command.user == "nobody")
            }
        }
    }

    @Test("teardown_frameworks: a principal that may not tear down its framework gets PERMISSION_DENIED and the framework lives on")
    func teardownDenied() async throws {
        let acls = ACLs(
            permissive: false,
            rules: [
                .teardownFrameworks: [.init(principals: .values(["ops"]), object: .any)],
                .runTasks: [.init(principals: .any, object: .any)],
            ]
        )
        try await InProcessCluster.with(registryConfiguration: try AuthFixtures.registry(), acls: acls) { cluster in
            try await cluster.withConnectedPair(framework: "sticky", hostname: "node-1", credential: AuthFixtures.analytics) { pair in
                let request = Keel_V1_TeardownRequest.with { $0.frameworkID.value = pair.frameworkID }
                let denied = await rpcFailure { _ = try await cluster.scheduler.teardown(request, metadata: bearer(pair.token)) }
                #expect(denied?.code == .permissionDenied)
                #expect(denied?.message.contains("principal 'analytics' may not tear down a framework of principal 'analytics'") == true)

                let record = try await cluster.registry.getFramework(.with { $0.frameworkID.value = pair.frameworkID })
                #expect(record.record.state == .active)
                // The broker still serves the framework.
                _ = try await cluster.scheduler.reconcile(.with { $0.frameworkID.value = pair.frameworkID }, metadata: bearer(pair.token))
            }
        }
    }

    @Test("teardown_frameworks: an allowed principal tears its framework down")
    func teardownAllowed() async throws {
        let acls = ACLs(permissive: false, rules: [.teardownFrameworks: [.init(principals: .values(["ops"]), object: .any)]])
        try await InProcessCluster.with(registryConfiguration: try AuthFixtures.registry(), acls: acls) { cluster in
            try await cluster.withConnectedPair(framework: "ops-job", hostname: "node-1", credential: AuthFixtures.ops) { pair in
                _ = try await cluster.scheduler.teardown(.with { $0.frameworkID.value = pair.frameworkID }, metadata: bearer(pair.token))
                let record = try await cluster.registry.getFramework(.with { $0.frameworkID.value = pair.frameworkID })
                #expect(record.record.state == .completed)
            }
        }
    }

    @Test("a token that verified before is refused once the keys change, and passes again with them back")
    func rememberedTokens() async throws {
        try await InProcessCluster.with { cluster in
            let ttl = Double(RegistryConfiguration.defaults.tokenTTL.components.seconds)
            let (token, _) = try await cluster.authority.issue(
                frameworkID: "short-lived", principal: "", roles: ["*"], now: Date().addingTimeInterval(60 - ttl)
            )
            let verifier = TokenVerifier()
            try await verifier.install(jwksJSON: cluster.authority.jwksJSON)
            let claims = try await verifier.verify(token)
            #expect(claims.sub.value == "short-lived")
            let remembered = try await verifier.verify(token)
            #expect(remembered == claims)

            // Another registry's keys: the token does not verify with them.
            let keysBefore = await cluster.authority.jwksJSON
            try await InProcessCluster.with { other in try await verifier.install(jwksJSON: other.authority.jwksJSON) }
            let refused = await #expect(throws: KeelError.self) { try await verifier.verify(token) }
            #expect(refused?.code == .unauthenticated)
            #expect(refused?.message.contains("register again") == true)

            // Back to the registry's keys (expiry: verifiedTokensStillExpire).
            try await verifier.install(jwksJSON: keysBefore)
            let again = try await verifier.verify(token)
            #expect(again == claims)
        }
    }

    @Test("expired, tampered and alg-none tokens are UNAUTHENTICATED with a message that says what to do")
    func refusedTokens() async throws {
        try await InProcessCluster.with(registryConfiguration: try AuthFixtures.registry()) { cluster in
            let (id, token) = try await cluster.register("tokens", credential: AuthFixtures.analytics)
            let reconcile = Keel_V1_ReconcileRequest.with { $0.frameworkID.value = id }
            // The genuine token passes authentication; the broker then finds the framework has
            // not subscribed yet.
            let genuine = await rpcFailure { _ = try await cluster.scheduler.reconcile(reconcile, metadata: bearer(token)) }
            #expect(genuine?.code == .notFound)

            let expired = try await cluster.authority.issue(
                frameworkID: id, principal: "analytics", roles: ["*"], now: Date().addingTimeInterval(-3600)
            ).0
            let expiredError = await rpcFailure { _ = try await cluster.scheduler.reconcile(reconcile, metadata: bearer(expired)) }
            #expect(expiredError?.code == .unauthenticated)
            #expect(expiredError?.message.contains("expired") == true)
            #expect(expiredError?.message.contains("RefreshToken") == true)

            let parts = token.split(separator: ".").map(String.init)
            try #require(parts.count == 3)
            let payload = try #require(decodeBase64URL(parts[1]))
            var claims = try #require(try JSONSerialization.jsonObject(with: payload) as? [String: Any])
            claims["principal"] = "ops"
            let forged = base64URL(try JSONSerialization.data(withJSONObject: claims))
            let tampered = [parts[0], forged, parts[2]].joined(separator: ".")
            let tamperedError = await rpcFailure { _ = try await cluster.scheduler.reconcile(reconcile, metadata: bearer(tampered)) }
            #expect(tamperedError?.code == .unauthenticated)
            #expect(tamperedError?.message.contains("register again") == true)

            let header = try #require(decodeBase64URL(parts[0]))
            var headerFields = try #require(try JSONSerialization.jsonObject(with: header) as? [String: Any])
            headerFields["alg"] = "none"
            let unsigned = base64URL(try JSONSerialization.data(withJSONObject: headerFields)) + "." + parts[1] + "."
            let noneError = await rpcFailure { _ = try await cluster.scheduler.reconcile(reconcile, metadata: bearer(unsigned)) }
            #expect(noneError?.code == .unauthenticated)
            #expect(noneError?.message.contains("register again") == true)

            let missing = await rpcFailure { _ = try await cluster.scheduler.reconcile(reconcile) }
            #expect(missing?.code == .unauthenticated)
            #expect(missing?.message.contains("authorization: Bearer") == true)
        }
    }

    @Test("a token that verified once is refused once it expires, and a changed copy of it is verified in full")
    func verifiedTokensStillExpire() async throws {
        try await InProcessCluster.with { cluster in
            let verifier = try await cluster.authority.makeVerifier()
            // Issued so that it expires two seconds from now (tokens live 15 minutes).
            let (token, expires) = try await cluster.authority.issue(
                frameworkID: "fw-expiring", principal: "", roles: ["*"], now: Date().addingTimeInterval(-(15 * 60 - 2)))
            let claims = try await verifier.verify(token)
            #expect(claims.sub.value == "fw-expiring")
            let again = try await verifier.verify(token)
            #expect(again == claims, "a second call is answered from what was verified")

            var tampered = Array(token.utf8)
            tampered[tampered.count - 2] = tampered[tampered.count - 2] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            let tamperedError = await keelFailure { _ = try await verifier.verify(String(decoding: tampered, as: UTF8.self)) }
            #expect(tamperedError?.code == .unauthenticated)

            while Date() <= expires.addingTimeInterval(1) {
                try await Task.sleep(for: .milliseconds(100))
            }
            let expiredError = await keelFailure { _ = try await verifier.verify(token) }
            #expect(expiredError?.code == .unauthenticated)
            #expect(expiredError?.message.contains("expired") == true, "\(String(describing: expiredError))")
        }
    }

    private func keelFailure(_ body: () async throws -> Void) async -> KeelError? {
        do {
            try await body()
            return nil
        } catch {
            return error as? KeelError
        }
    }
}
