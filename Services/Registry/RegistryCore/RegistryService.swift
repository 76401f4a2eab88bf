import Foundation
package import GRPCCore
package import KeelAPI
import KeelCore
import KeelRPC
package import KeelStore
package import Logging
import ServiceLifecycle
import SwiftProtobuf

/// The `keel.v1.Registry` gRPC service: framework registration, tokens and the watch stream.
package struct RegistryService: Keel_V1_Registry.SimpleServiceProtocol {
    private let registry: FrameworkRegistry
    private let authority: TokenAuthority
    private let store: any KeyValueStore
    private let configuration: RegistryConfiguration
    private let logger: Logger

    /// Creates the service over an opened store and loaded signing key.
    package init(store: any KeyValueStore, authority: TokenAuthority, configuration: RegistryConfiguration, logger: Logger) {
        self.registry = FrameworkRegistry(store: store, logger: logger)
        self.authority = authority
        self.store = store
        self.configuration = configuration
        self.logger = logger
    }

    package func registerFramework(
        request: Keel_V1_RegisterFrameworkRequest,
        context: ServerContext
    ) async throws -> Keel_V1_RegisterFrameworkResponse {
        try await mappingErrors {
            var info = request.frameworkInfo
            let principal = try authenticate(request.hasCredential ? request.credential : nil)
            if !principal.isEmpty { info.principal = principal }
            let record = try await registry.register(info)
            let (token, expires) = try await authority.issue(
                frameworkID: record.frameworkInfo.id.value, principal: principal, roles: record.frameworkInfo.roles
            )
            return .with {
                $0.frameworkID = record.frameworkInfo.id
                $0.token = token
                $0.tokenExpiresAt = Google_Protobuf_Timestamp(date: expires)
                $0.record = record
            }
        }
    }

    package func getFramework(
        request: Keel_V1_GetFrameworkRequest,
        context: ServerContext
    ) async throws -> Keel_V1_GetFrameworkResponse {
        try await mappingErrors {
            let record = try await registry.get(request.frameworkID.value)
            return .with { $0.record = record }
        }
    }

    package func listFrameworks(
        request: Keel_V1_ListFrameworksRequest,
        context: ServerContext
    ) async throws -> Keel_V1_ListFrameworksResponse {
        try await mappingErrors {
            let records = try await registry.list(includeCompleted: request.includeCompleted)
            return .with { $0.records = records }
        }
    }

    package func teardownFramework(
        request: Keel_V1_TeardownFrameworkRequest,
        context: ServerContext
    ) async throws -> Keel_V1_TeardownFrameworkResponse {
        try await mappingErrors {
            let record = try await registry.teardown(request.frameworkID.value)
            return .with { $0.record = record }
        }
    }

    package func refreshToken(
        request: Keel_V1_RefreshTokenRequest,
        context: ServerContext
    ) async throws -> Keel_V1_RefreshTokenResponse {
        try await mappingErrors {
            let principal = try authenticate(request.hasCredential ? request.credential : nil)
            let record = try await registry.get(request.frameworkID.value)
            guard record.state != .completed else {
                throw KeelError.failedPrecondition("framework \(request.frameworkID.value) was torn down; register a new framework")
            }
            let (token, expires) = try await authority.issue(
                frameworkID: record.frameworkInfo.id.value, principal: principal, roles: record.frameworkInfo.roles
            )
            return .with {
                $0.token = token
                $0.tokenExpiresAt = Google_Protobuf_Timestamp(date: expires)
            }
        }
    }

    package func getTokenKeys(
        request: Keel_V1_GetTokenKeysRequest,
        context: ServerContext
    ) async throws -> Keel_V1_GetTokenKeysResponse {
        let json = authority.jwksJSON
        return .with { $0.jwksJson = json }
    }

    package func watchFrameworks(
        request: Keel_V1_WatchFrameworksRequest,
        response: RPCWriter<Keel_V1_FrameworkEvent>,
        context: ServerContext
    ) async throws {
        try await mappingErrors {
            let snapshot = try await store.snapshot(prefix: FrameworkRegistry.prefix)
            if request.includeSnapshot {
                for entry in snapshot.keyValues {
                    let record = try Keel_V1_FrameworkRecord(serializedBytes: entry.value)
                    try await response.write(.with {
                        $0.type = record.state == .completed ? .completed : .registered
                        $0.record = record
                    })
                }
                try await response.write(.with { $0.type = .snapshotEnd })
            }
            let events = try await store.watch(prefix: FrameworkRegistry.prefix, fromRevision: snapshot.revision)
            try await cancelWhenGracefulShutdown {
                for try await event in events {
                    guard event.kind == .put else { continue }
                    let record = try Keel_V1_FrameworkRecord(serializedBytes: event.value)
                    try await response.write(.with {
                        $0.type = record.state == .completed ? .completed : .updated
                        $0.record = record
                    })
                }
            }
        }
    }

    /// Checks a credential against the configured ones; returns the principal ("" when open).
    private func authenticate(_ credential: Keel_V1_Credential?) throws -> String {
        guard !configuration.credentials.isEmpty else { return credential?.principal ?? "" }
        guard let credential, !credential.principal.isEmpty else {
            throw KeelError(code: .unauthenticated, message: "this registry requires a credential: send principal and secret")
        }
        guard let secret = configuration.credentials[credential.principal], constantTimeEquals(secret, credential.secret) else {
            throw KeelError(code: .unauthenticated, message: "wrong principal or secret for '\(credential.principal)'")
        }
        return credential.principal
    }
}

/// Compares two secrets without leaking where they differ through timing.
private func constantTimeEquals(_ lhs: String, _ rhs: String) -> Bool {
    let a = Array(lhs.utf8)
    let b = Array(rhs.utf8)
    var difference = UInt8(a.count == b.count ? 0 : 1)
    for index in 0..<max(a.count, b.count) {
        difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
    }
    return difference == 0
}
