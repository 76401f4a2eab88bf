package import GRPCCore
import KeelAPI
import KeelRPC

extension RegistryService {
    /// The interceptors the registry's server applies: `RefreshToken` accepts the framework's
    /// current token as `authorization: Bearer` (or, without one, a credential in the request),
    /// and so does `TeardownFramework`; `UpdateFramework` requires it.
    package static func interceptors(authority: TokenAuthority) async throws -> [ConditionalInterceptor<any ServerInterceptor>] {
        let verifier = try await authority.makeVerifier()
        return [
            .apply(
                FrameworkAuthInterceptor(verifier: verifier, requiresToken: false),
                to: .methods([
                    Keel_V1_Registry.Method.RefreshToken.descriptor, Keel_V1_Registry.Method.TeardownFramework.descriptor,
                ])
            ),
            .apply(
                FrameworkAuthInterceptor(verifier: verifier),
                to: .methods([Keel_V1_Registry.Method.UpdateFramework.descriptor])
            ),
        ]
    }
}
