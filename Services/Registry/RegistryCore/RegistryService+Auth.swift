import KeelAPI
import KeelCore
import KeelRPC

extension RegistryService {
    /// Checks a credential against the configured ones.
    ///
    /// Returns the authenticated principal; in an open cluster, the principal the caller names
    /// (unverified), or nil when it names none.
    ///
    /// - Throws: `KeelError` `.unauthenticated` for a missing or wrong credential.
    func authenticate(_ credential: Keel_V1_Credential?) async throws -> String? {
        let credentials = configuration.credentials
        guard !credentials.isEmpty else {
            guard let principal = credential?.principal, !principal.isEmpty else { return nil }
            return principal
        }
        guard let credential, !credential.principal.isEmpty else {
            throw KeelError.unauthenticated(
                "this registry requires a credential: send the principal and secret an operator gave you (SchedulerConfiguration.credential)"
            )
        }
        guard await credentials.verifyAside(principal: credential.principal, secret: credential.secret) else {
            throw KeelError.unauthenticated(
                "wrong principal or secret for '\(credential.principal)'; check the credential, or ask an operator to add the principal with `keel-registry hash-secret`"
            )
        }
        return credential.principal
    }

    /// Checks the `register_frameworks` ACL for every role the framework asks for (`*` when it
    /// names none), before anything is stored.
    func authorizeRoles(of info: Keel_V1_FrameworkInfo) throws {
        let principal = info.principal.isEmpty ? nil : info.principal
        for role in info.roles.isEmpty ? ["*"] : info.roles {
            try configuration.acls.authorize(.registerFrameworks, principal: principal, object: role)
        }
    }

    /// Who asks for a new token or a teardown: the framework named by the call's token (verified
    /// by the interceptor), or the principal of the credential. Checked before the framework is
    /// looked up, so an unauthenticated caller learns nothing about which frameworks exist.
    func authenticateRefresh(credential: Keel_V1_Credential?) async throws -> RefreshCaller {
        if RequestAuth.claims != nil { return .framework }
        guard credential != nil || configuration.credentials.isEmpty else {
            throw KeelError.unauthenticated(
                "refreshing a token needs the framework's current token (authorization: Bearer) or its principal's credential"
            )
        }
        return .principal(try await authenticate(credential) ?? "")
    }

    /// Checks that `caller` may have a new token for `record`: the token is that framework's, or
    /// the principal is the one the framework registered as.
    func authorizeRefresh(of record: Keel_V1_FrameworkRecord, by caller: RefreshCaller) throws {
        let frameworkID = record.frameworkInfo.id.value
        switch caller {
        case .framework:
            try requireFramework(frameworkID)
        case .principal(let principal):
            let owner = record.frameworkInfo.principal
            guard owner == principal else {
                throw KeelError.permissionDenied(
                    "framework \(frameworkID) belongs to principal '\(owner)', not '\(principal)'; refresh with that principal's credential or the framework's token"
                )
            }
        }
    }
}

extension RegistryService {
    /// Checks that `caller` may tear `record`'s framework down: the framework itself always may;
    /// any other framework or principal must be allowed by the `teardown_frameworks` ACL for the
    /// framework's principal. In an open registry (no credentials) everyone may.
    func authorizeTeardown(of record: Keel_V1_FrameworkRecord, by caller: RefreshCaller) throws {
        guard !configuration.credentials.isEmpty else { return }
        let principal: String?
        switch caller {
        case .framework:
            if (try? requireFramework(record.frameworkInfo.id.value)) != nil { return }
            principal = RequestAuth.claims?.principal
        case .principal(let name):
            principal = name
        }
        try configuration.acls.authorize(
            .teardownFrameworks, principal: principal.flatMap { $0.isEmpty ? nil : $0 },
            object: record.frameworkInfo.principal)
    }
}

/// Who asked for a token refresh or a teardown.
enum RefreshCaller: CustomStringConvertible {
    /// A framework, by its current token (``RequestAuth/claims``).
    case framework
    /// A principal, by its credential ("" in an open cluster without one).
    case principal(String)

    var description: String {
        switch self {
        case .framework: "framework token"
        case .principal(let name): name.isEmpty ? "anonymous" : "principal \(name)"
        }
    }
}
