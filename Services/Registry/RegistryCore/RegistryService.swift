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
///
/// With credentials configured, registration needs a principal and its secret; every
/// registration is checked against the `register_frameworks` ACL; a token is refreshed with the
/// framework's current token (`authorization: Bearer`) or its principal's credential.
package struct RegistryService: Keel_V1_Registry.SimpleServiceProtocol {
    private let registry: FrameworkRegistry
    let authority: TokenAuthority
    private let store: any KeyValueStore
    let configuration: RegistryConfiguration
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
            let principal = try await authenticate(request.hasCredential ? request.credential : nil)
            if let principal { info.principal = principal }
            try authorizeRoles(of: info)
            let record = try await registry.register(info)
            let (token, expires) = try await authority.issue(
                frameworkID: record.frameworkInfo.id.value, principal: record.frameworkInfo.principal,
                roles: record.frameworkInfo.roles
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
            let id = request.frameworkID.value
            guard !id.isEmpty else {
                throw KeelError.invalidArgument("framework_id is empty; name the framework to tear down")
            }
            let caller = try await authenticateRefresh(credential: request.hasCredential ? request.credential : nil)
            let current = try await registry.get(id)
            try authorizeTeardown(of: current, by: caller)
            let record = try await registry.teardown(id)
            logger.notice("framework torn down", metadata: ["keel.framework_id": "\(id)", "keel.by": "\(caller)"])
            return .with { $0.record = record }
        }
    }

    package func refreshToken(
        request: Keel_V1_RefreshTokenRequest,
        context: ServerContext
    ) async throws -> Keel_V1_RefreshTokenResponse {
        try await mappingErrors {
            let caller = try await authenticateRefresh(credential: request.hasCredential ? request.credential : nil)
            let record = try await registry.get(request.frameworkID.value)
            try authorizeRefresh(of: record, by: caller)
            guard record.state != .completed else {
                throw KeelError.failedPrecondition("framework \(request.frameworkID.value) was torn down; register a new framework")
            }
            let (token, expires) = try await authority.issue(
                frameworkID: record.frameworkInfo.id.value, principal: record.frameworkInfo.principal,
                roles: record.frameworkInfo.roles
            )
            return .with {
                $0.token = token
                $0.tokenExpiresAt = Google_Protobuf_Timestamp(date: expires)
            }
        }
    }

    package func updateFramework(
        request: Keel_V1_UpdateFrameworkRequest,
        context: ServerContext
    ) async throws -> Keel_V1_UpdateFrameworkResponse {
        try await mappingErrors {
            let id = request.frameworkInfo.id.value
            try requireFramework(id)
            let current = try await registry.get(id)
            var info = request.frameworkInfo
            info.principal = current.frameworkInfo.principal
            try authorizeRoles(of: info)
            let record = try await registry.update(info)
            return .with { $0.frameworkInfo = record.frameworkInfo }
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
}
