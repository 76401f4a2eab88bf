import GRPCCore
import HealthCore
import KeelAPI
import KeelRPC
import SwiftProtobuf
import Synchronization
import Testing

@Suite("Probes against real loopback servers")
struct ProbeTests {
    private func target(launcherPort: Int = 1) -> ProbeTarget {
        ProbeTarget(key: CheckedTaskKey(frameworkID: "fw-1", taskID: "t1"), host: "127.0.0.1", launcher: Endpoint(host: "127.0.0.1", port: launcherPort))
    }

    private func tcpCheck(_ port: Int) -> Keel_V1_HealthCheck {
        .with {
            $0.type = .tcp
            $0.tcp.port = UInt32(port)
        }
    }

    @Test("TCP: a listening port is healthy")
    func tcpOpen() async throws {
        let server = try LoopbackServer(http: false)
        defer { server.stop() }
        let result = await TCPProbe().probe(tcpCheck(server.port), target: target(), timeout: .seconds(30))
        #expect(result.healthy, "\(result.message)")
        #expect(result.message == "TCP connect to 127.0.0.1:\(server.port) succeeded")
    }

    @Test("TCP: a closed port is unhealthy and says why")
    func tcpClosed() async throws {
        let (refusing, port) = try LoopbackServer.refusingPort()
        defer { LoopbackServer.closeDescriptor(refusing) }
        let result = await TCPProbe().probe(tcpCheck(port), target: target(), timeout: .seconds(5))
        #expect(!result.healthy)
        #expect(result.message.contains("refused"), "\(result.message)")
    }

    @Test("HTTP: 200 is healthy and the check's path is requested")
    func httpOK() async throws {
        let server = try LoopbackServer(status: 200)
        defer { server.stop() }
        let result = await HTTPProbe().probe(Fixtures.httpCheck(port: server.port, path: "/ready"), target: target(), timeout: .seconds(30))
        #expect(result.healthy, "\(result.message)")
        #expect(result.message == "GET http://127.0.0.1:\(server.port)/ready returned 200")
        #expect(server.requests == ["GET /ready HTTP/1.1"])
    }

    @Test("HTTP: 503 is unhealthy, 302 is healthy by default")
    func httpStatuses() async throws {
        let server = try LoopbackServer(status: 503)
        defer { server.stop() }
        let check = Fixtures.httpCheck(port: server.port)
        let failed = await HTTPProbe().probe(check, target: target(), timeout: .seconds(30))
        #expect(!failed.healthy)
        #expect(failed.message.hasSuffix("returned 503"))
        server.setStatus(302)
        let redirected = await HTTPProbe().probe(check, target: target(), timeout: .seconds(30))
        #expect(redirected.healthy, "\(redirected.message)")
    }

    @Test("HTTP: an explicit status list replaces 200-399")
    func httpStatusList() async throws {
        let server = try LoopbackServer(status: 503)
        defer { server.stop() }
        var check = Fixtures.httpCheck(port: server.port)
        check.http.statuses = [503]
        let accepted = await HTTPProbe().probe(check, target: target(), timeout: .seconds(30))
        #expect(accepted.healthy)
        server.setStatus(200)
        let rejected = await HTTPProbe().probe(check, target: target(), timeout: .seconds(30))
        #expect(!rejected.healthy)
    }

    @Test("HTTP: a server that never answers fails at the timeout")
    func httpTimeout() async throws {
        let (descriptor, port) = try LoopbackServer.listen()
        defer { LoopbackServer.closeDescriptor(descriptor) }
        let started = ContinuousClock.now
        let result = await HTTPProbe().probe(Fixtures.httpCheck(port: port), target: target(), timeout: .milliseconds(300))
        #expect(!result.healthy)
        #expect(result.message.contains("timed out"), "\(result.message)")
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test("HTTP: a closed port is unhealthy")
    func httpClosed() async throws {
        let (refusing, port) = try LoopbackServer.refusingPort()
        defer { LoopbackServer.closeDescriptor(refusing) }
        let result = await HTTPProbe().probe(Fixtures.httpCheck(port: port), target: target(), timeout: .seconds(5))
        #expect(!result.healthy)
        #expect(result.message.contains("refused"), "\(result.message)")
    }

    @Test("gRPC: a Keel server's grpc.health.v1 service answers SERVING")
    func grpcServing() async throws {
        let bound = Mutex<Int?>(nil)
        let server = RPCServer(
            serviceName: "test", endpoint: Endpoint(host: "127.0.0.1", port: 0), services: [], logger: Fixtures.logger,
            onListening: { endpoint in bound.withLock { $0 = endpoint.port } }
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let listening = await eventually { bound.withLock { $0 } != nil }
            try #require(listening)
            let port = try #require(bound.withLock { $0 })
            let check = Keel_V1_HealthCheck.with {
                $0.type = .grpc
                $0.grpc.port = UInt32(port)
            }
            let serving = await GRPCHealthProbe().probe(check, target: target(), timeout: .seconds(30))
            #expect(serving.healthy, "\(serving.message)")
            server.health.setStatus(.notServing)
            let notServing = await GRPCHealthProbe().probe(check, target: target(), timeout: .seconds(30))
            #expect(!notServing.healthy)
            #expect(notServing.message.contains("notServing"), "\(notServing.message)")
            group.cancelAll()
        }
    }

    @Test("COMMAND: an unreachable launcher makes the check fail with the reason")
    func commandWithoutLauncher() async {
        let check = Keel_V1_HealthCheck.with {
            $0.type = .command
            $0.command.command.shell = "true"
        }
        let result = await CommandProbe(launchers: NoLaunchers()).probe(check, target: target(launcherPort: 5051), timeout: .seconds(1))
        #expect(!result.healthy)
        #expect(result.message.contains("could not run the command"), "\(result.message)")
    }

    @Test("COMMAND: the launcher runs the check; exit 0 is healthy, anything else is not")
    func command() async throws {
        let launcher = FakeLauncher()
        try await withInProcess([launcher]) { client in
            let probe = CommandProbe(launchers: InProcessLaunchers(client: client))
            let check = Keel_V1_HealthCheck.with {
                $0.type = .command
                $0.command.command.shell = "test -f ready"
            }
            let passed = await probe.probe(check, target: target(launcherPort: 5051), timeout: .seconds(30))
            #expect(passed.healthy, "\(passed.message)")
            launcher.setExitCode(2)
            let failed = await probe.probe(check, target: target(launcherPort: 5051), timeout: .seconds(30))
            #expect(!failed.healthy)
            #expect(failed.message == "the command exited with 2: exit 2")
            let request = try #require(launcher.checks.first)
            #expect(request.taskID.value == "t1")
            #expect(request.command.shell == "test -f ready")
            #expect(request.timeout.seconds == 30)
        }
    }

    @Test("a check without a type is unhealthy with a clear message")
    func unspecified() async throws {
        let result = await StandardProbe(launchers: NoLaunchers()).probe(Keel_V1_HealthCheck(), target: target(), timeout: .seconds(1))
        #expect(!result.healthy)
        #expect(result.message.contains("not supported"))
    }
}

/// A connector with no launchers at all.
private struct NoLaunchers: LauncherConnector {
    func launcher(at endpoint: Endpoint) throws -> any Keel_V1_Launcher.ClientProtocol {
        throw RPCError(code: .unavailable, message: "no launcher at \(endpoint)")
    }
}
