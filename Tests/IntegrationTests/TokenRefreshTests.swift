import Foundation
import KeelAPI
import KeelSDK
import SwiftProtobuf
import Testing

/// With short-lived tokens, the SDK renews the framework's token before it expires, so a
/// framework keeps working long after its first token is dead.
@Suite("Token refresh")
struct TokenRefreshTests {
    @Test("a framework launches a task after its first token has expired")
    func launchPastFirstExpiry() async throws {
        let cluster = try await LocalClusterFixture(environment: ["KEEL_TOKEN_TTL": "5s"])
        do {
            try await run(cluster)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    private func run(_ cluster: LocalClusterFixture) async throws {
        let configuration = SchedulerConfiguration(
            registry: "127.0.0.1:\(cluster.basePort + 2)",
            broker: "127.0.0.1:\(cluster.basePort)",
            frameworkInfo: .with {
                $0.name = "refresh-test"
                $0.user = "root"
            }
        )
        let started = ContinuousClock.now
        let final = try await SchedulerDriver(configuration: configuration).run { session in
            var launched = false
            for try await event in session.events {
                switch event {
                // Several token lifetimes pass before the framework does anything.
                case .offers(let offers) where !launched && ContinuousClock.now - started > .seconds(12):
                    guard let offer = offers.first else { continue }
                    let task = Keel_V1_TaskInfo.with {
                        $0.name = "late"
                        $0.taskID.value = "late"
                        $0.agentID = offer.agentID
                        $0.resources = [.scalar("cpus", 0.1), .scalar("mem", 32)]
                        $0.command.argv.args = ["true"]
                    }
                    try await session.launch([task], on: [offer])
                    launched = true
                case .offers(let offers):
                    try await session.decline(offers, refuseSeconds: 0.5)
                case .update(let status) where status.state.isTerminalForTest:
                    return status.state
                default:
                    break
                }
            }
            return Keel_V1_TaskState.unspecified
        }
        #expect(final == .taskFinished)
        #expect(ContinuousClock.now - started > .seconds(12))
    }
}

extension Keel_V1_TaskState {
    /// The states a task of these tests ends in.
    var isTerminalForTest: Bool {
        [.taskFinished, .taskFailed, .taskError, .taskLost, .taskKilled].contains(self)
    }
}
