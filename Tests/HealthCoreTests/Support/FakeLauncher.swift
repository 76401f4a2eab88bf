import GRPCCore
import GRPCInProcessTransport
import HealthCore
import KeelAPI
import KeelRPC
import SwiftProtobuf
import Synchronization

/// A stand-in for a launcher's API: answers pings (or not) and command checks with a set exit code.
final class FakeLauncher: Keel_V1_Launcher.SimpleServiceProtocol {
    private struct State {
        var answering = true
        var agentID = ""
        var exitCode: Int32 = 0
        var pings = 0
        var checks: [Keel_V1_RunCommandCheckRequest] = []
    }

    private let state = Mutex(State())

    init(agentID: String = "") {
        state.withLock { $0.agentID = agentID }
    }

    func setAnswering(_ answering: Bool) { state.withLock { $0.answering = answering } }
    func setExitCode(_ code: Int32) { state.withLock { $0.exitCode = code } }
    var pings: Int { state.withLock { $0.pings } }
    var checks: [Keel_V1_RunCommandCheckRequest] { state.withLock { $0.checks } }

    func ping(request: Keel_V1_PingRequest, context: ServerContext) async throws -> Keel_V1_PingResponse {
        let (answering, agentID) = state.withLock { state in
            state.pings += 1
            return (state.answering, state.agentID)
        }
        guard answering else { throw RPCError(code: .unavailable, message: "the fake launcher is down") }
        return .with { $0.agentID.value = agentID }
    }

    func runCommandCheck(
        request: Keel_V1_RunCommandCheckRequest,
        context: ServerContext
    ) async throws -> Keel_V1_RunCommandCheckResponse {
        let code = state.withLock { state in
            state.checks.append(request)
            return state.exitCode
        }
        return .with {
            $0.exitCode = code
            $0.output = "exit \(code)\n"
        }
    }

    func listFiles(request: Keel_V1_ListFilesRequest, context: ServerContext) async throws -> Keel_V1_ListFilesResponse {
        throw RPCError(code: .unimplemented, message: "not in the fake")
    }

    func readFile(request: Keel_V1_ReadFileRequest, context: ServerContext) async throws -> Keel_V1_ReadFileResponse {
        throw RPCError(code: .unimplemented, message: "not in the fake")
    }

    func tailLog(request: Keel_V1_TailLogRequest, response: RPCWriter<Keel_V1_LogChunk>, context: ServerContext) async throws {
        throw RPCError(code: .unimplemented, message: "not in the fake")
    }

    func listContainers(
        request: Keel_V1_ListContainersRequest,
        context: ServerContext
    ) async throws -> Keel_V1_ListContainersResponse {
        throw RPCError(code: .unimplemented, message: "not in the fake")
    }

    func exec(
        request: RPCAsyncSequence<Keel_V1_ExecInput, any Error>,
        response: RPCWriter<Keel_V1_ExecOutput>,
        context: ServerContext
    ) async throws {
        throw RPCError(code: .unimplemented, message: "not in the fake")
    }
}

/// A connector that sends every launcher call to one in-process client, noting the endpoints asked for.
final class InProcessLaunchers: LauncherConnector {
    private let client: GRPCClient<InProcessTransport.Client>
    private let asked = Mutex<[Endpoint]>([])

    init(client: GRPCClient<InProcessTransport.Client>) {
        self.client = client
    }

    var endpoints: [Endpoint] { asked.withLock { $0 } }

    func launcher(at endpoint: Endpoint) throws -> any Keel_V1_Launcher.ClientProtocol {
        asked.withLock { $0.append(endpoint) }
        return Keel_V1_Launcher.Client(wrapping: client)
    }
}

/// Serves `services` over an in-process transport and runs `body` with a client of them.
func withInProcess<Result: Sendable>(
    _ services: [any RegistrableRPCService],
    _ body: (GRPCClient<InProcessTransport.Client>) async throws -> Result
) async throws -> Result {
    let transport = InProcessTransport()
    return try await withGRPCServer(transport: transport.server, services: services) { _ in
        try await withGRPCClient(transport: transport.client) { client in
            try await body(client)
        }
    }
}
