import Foundation
import GRPCCore
import KeelAPI
import KeelRPC
import SwiftProtobuf
import Synchronization

/// Keeps a framework's token fresh: holds the current token for the broker calls and, before it
/// expires, asks the registry for a new one with the token itself (or with the credential, once
/// the token could not be renewed in time).
final class TokenRefresher: Sendable {
    private struct Current: Sendable {
        var token: String
        var expiresAt: Date
    }

    private let current: Mutex<Current>
    private let frameworkID: Keel_V1_FrameworkID
    private let registry: KeelRPC.Endpoint
    private let credential: Keel_V1_Credential?

    /// Starts from the token registration returned.
    init(
        token: String, expiresAt: Date, frameworkID: Keel_V1_FrameworkID, registry: KeelRPC.Endpoint,
        credential: Keel_V1_Credential?
    ) {
        self.current = Mutex(Current(token: token, expiresAt: expiresAt))
        self.frameworkID = frameworkID
        self.registry = registry
        self.credential = credential
    }

    /// The token to send now.
    var token: String { current.withLock { $0.token } }

    /// When the current token expires.
    var expiresAt: Date { current.withLock { $0.expiresAt } }

    /// Renews the token whenever three quarters of its lifetime have passed, until cancelled.
    ///
    /// A failed renewal is retried with backoff; once the token has expired the credential (if
    /// any) is used instead. Errors never end the loop: the broker's refusal of an expired token
    /// is what the framework sees.
    func run() async {
        var issuedAt = Date()
        var failures = 0
        while !Task.isCancelled {
            let expiresAt = self.expiresAt
            let lifetime = max(expiresAt.timeIntervalSince(issuedAt), 1)
            let renewAt = failures == 0
                ? issuedAt.addingTimeInterval(lifetime * 0.75)
                : Date().addingTimeInterval(min(Double(1 << min(failures, 5)) * 0.25, max(lifetime / 4, 0.25)))
            let delay = renewAt.timeIntervalSinceNow
            if delay > 0 {
                do { try await Task.sleep(for: .milliseconds(Int64(delay * 1000))) } catch { return }
            }
            do {
                let response = try await refresh(usingCredential: Date() >= expiresAt)
                current.withLock {
                    $0 = Current(token: response.token, expiresAt: response.tokenExpiresAt.date)
                }
                issuedAt = Date()
                failures = 0
            } catch {
                failures += 1
            }
        }
    }

    /// Renews the token now, with the token itself and then with the credential (if any);
    /// keeps the current token when both fail.
    func renewNow() async {
        for usingCredential in [false, true] where !usingCredential || credential != nil {
            if let response = try? await refresh(usingCredential: usingCredential) {
                current.withLock { $0 = Current(token: response.token, expiresAt: response.tokenExpiresAt.date) }
                return
            }
        }
    }

    private func refresh(usingCredential: Bool) async throws -> Keel_V1_RefreshTokenResponse {
        let credential = usingCredential ? self.credential : nil
        let token: String? = credential == nil ? self.token : nil
        let request = Keel_V1_RefreshTokenRequest.with {
            $0.frameworkID = frameworkID
            if let credential { $0.credential = credential }
        }
        return try await withKeelClient(registry, token: { token }) { client in
            try await Keel_V1_Registry.Client(wrapping: client).refreshToken(request)
        }
    }
}
