import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
package import KeelAPI
import SwiftProtobuf
import KeelCore
package import KeelRPC
import Logging
import ServiceLifecycle

/// Follows keel-registry: loads its token keys and streams framework records into the broker,
/// reconnecting with backoff when the registry is away.
package struct RegistryFollower: Service {
    private let broker: Broker
    private let registry: Keel_V1_Registry.Client<HTTP2ClientTransport.Posix>

    /// Creates the follower; `client` must be run in the same service group.
    package init(broker: Broker, client: ManagedClient) {
        self.broker = broker
        self.registry = Keel_V1_Registry.Client(wrapping: client.client)
    }

    package func run() async throws {
        var backoff = Duration.milliseconds(200)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                let keys = try await registry.getTokenKeys(Keel_V1_GetTokenKeysRequest())
                try await broker.verifier.install(jwksJSON: keys.jwksJson)
                backoff = .milliseconds(200)
                try await cancelWhenGracefulShutdown {
                    try await registry.watchFrameworks(.with { $0.includeSnapshot = true }) { response in
                        for try await event in response.messages {
                            guard event.type != .snapshotEnd else { continue }
                            let fromSnapshot = event.type == .registered
                            broker.mutate { $0.upsertFramework(event.record, fromSnapshot: fromSnapshot, now: Date()) }
                        }
                    }
                }
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { return }
                broker.logger.warning("lost the registry; retrying", metadata: ["keel.error": "\(error)", "keel.retry_in": "\(backoff)"])
            }
            try? await cancelWhenGracefulShutdown { [backoff] in try await Task.sleep(for: backoff) }
            backoff = min(backoff * 2, .seconds(5))
        }
    }
}

/// How the broker reaches framework records beyond its watch: lookups and teardown.
package protocol FrameworkDirectory: Sendable {
    /// The registry's record of a framework.
    func framework(_ id: String) async throws -> Keel_V1_FrameworkRecord
    /// Completes a framework in the registry: with the framework's `token` when it asked for
    /// its own teardown, otherwise as the broker's principal.
    func teardown(_ id: String, token: String?) async throws
    /// Changes a framework in the registry on its behalf, with its token; returns the stored info.
    func update(_ info: Keel_V1_FrameworkInfo, token: String) async throws -> Keel_V1_FrameworkInfo
}

/// A ``FrameworkDirectory`` backed by a keel-registry client.
package struct RegistryDirectory<Client: Keel_V1_Registry.ClientProtocol>: FrameworkDirectory {
    private let client: Client
    private let credential: Keel_V1_Credential?

    /// Creates the directory over a registry client; `credential` is the broker's own
    /// principal, needed to tear down frameworks when the registry requires credentials.
    package init(client: Client, credential: Keel_V1_Credential? = nil) {
        self.client = client
        self.credential = credential
    }

    package func framework(_ id: String) async throws -> Keel_V1_FrameworkRecord {
        try await client.getFramework(.with { $0.frameworkID.value = id }).record
    }

    package func teardown(_ id: String, token: String?) async throws {
        let request = Keel_V1_TeardownFrameworkRequest.with {
            $0.frameworkID.value = id
            if token == nil, let credential { $0.credential = credential }
        }
        _ = try await client.teardownFramework(request, metadata: token.map { ["authorization": "Bearer \($0)"] } ?? [:])
    }

    package func update(_ info: Keel_V1_FrameworkInfo, token: String) async throws -> Keel_V1_FrameworkInfo {
        try await client.updateFramework(
            .with { $0.frameworkInfo = info }, metadata: ["authorization": "Bearer \(token)"]
        ).frameworkInfo
    }
}

extension Broker {
    /// Makes sure the broker knows `frameworkID`, asking the registry if the watch has not
    /// delivered it yet (a framework may subscribe right after registering).
    func ensureFramework(_ frameworkID: String) async throws {
        let known = read { $0.frameworks[FrameworkID(frameworkID)] != nil }
        guard !known, !frameworkID.isEmpty else { return }
        let record: Keel_V1_FrameworkRecord
        do {
            record = try await directory.framework(frameworkID)
        } catch let error as RPCError where error.code == .notFound {
            throw KeelError.notFound("framework \(frameworkID) is not registered; register it with keel-registry first")
        }
        mutate { $0.upsertFramework(record, now: Date()) }
    }

    /// Tears a framework down in the registry and here.
    func teardownInRegistry(_ frameworkID: FrameworkID, token: String? = nil) async throws {
        try await directory.teardown(frameworkID.value, token: token)
        mutate { $0.completeFramework(frameworkID, now: Date()) }
    }
}
