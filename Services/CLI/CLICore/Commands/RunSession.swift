import Foundation
import GRPCCore
import KeelAPI
import KeelRPC
import KeelSDK
import SwiftProtobuf
import UnixSignals

/// The life of one `keel run`: wait for a fitting offer, launch, report states, stream stdout,
/// and return the exit code once the task has ended and its output has been printed.
struct RunSession: Sendable {
    let session: SchedulerSession
    let request: TaskRequest
    let broker: KeelRPC.Endpoint
    /// Report each status as a JSON line on stderr instead of a sentence.
    var json = false

    /// Runs to the task's end; Ctrl-C (SIGINT) or SIGTERM kill the task first.
    func run() async throws -> Int32 {
        try await withThrowingTaskGroup(of: Int32?.self) { group in
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sigint, .sigterm) {
                    Output.note("keel: stopping task \(request.taskID)")
                    try? await session.kill(.with { $0.value = request.taskID })
                }
                return nil
            }
            group.addTask {
                try await events()
            }
            while let result = try await group.next() {
                if let code = result {
                    group.cancelAll()
                    try? await session.teardown()
                    return code
                }
            }
            return 1
        }
    }

    private func events() async throws -> Int32 {
        var launched = false
        var waitingNoted = false
        var printedLog = false
        var exitCode: Int32?
        try await withThrowingTaskGroup(of: Void.self) { logs in
            for try await event in session.events {
                switch event {
                case .subscribed(let subscription):
                    if subscription.isResubscription {
                        Output.note("keel: framework \(subscription.frameworkID.value) subscribed again at \(subscription.broker)")
                    } else {
                        Output.note("keel: framework \(subscription.frameworkID.value) subscribed")
                    }
                case .offers(let offers):
                    var decline: [Keel_V1_Offer] = []
                    for offer in offers {
                        if !launched, request.fits(offer) {
                            try await session.launch([request.taskInfo(on: offer)], on: [offer], refuseSeconds: 3600)
                            launched = true
                            Output.note("keel: launching task \(request.taskID) on \(offer.hostname)")
                        } else {
                            decline.append(offer)
                        }
                    }
                    if !decline.isEmpty {
                        try await session.decline(decline, refuseSeconds: launched ? 3600 : 1)
                    }
                    if !launched, !waitingNoted {
                        waitingNoted = true
                        Output.note("keel: waiting for an offer with cpus:\(request.cpus) mem:\(request.mem)")
                    }
                case .update(let status):
                    guard status.taskID.value == request.taskID else { continue }
                    var line = "keel: task \(request.taskID) is \(status.state.name)"
                    if status.hasHealthy { line += status.healthy ? " (healthy)" : " (unhealthy)" }
                    if !status.message.isEmpty { line += ": \(status.message)" }
                    if json {
                        Output.note((try? status.jsonString()) ?? line)
                    } else {
                        Output.note(line)
                    }
                    if status.state == .taskRunning, !printedLog {
                        printedLog = true
                        let agentID = status.agentID.value
                        logs.addTask { try await streamOutput(agentID: agentID, follow: true) }
                    }
                    if status.state.isTerminal {
                        if !printedLog {
                            printedLog = true
                            try? await streamOutput(agentID: status.agentID.value, follow: false)
                        }
                        exitCode = Self.exitCode(status)
                    }
                case .disconnected(let disconnection):
                    Output.note("keel: lost the broker at \(disconnection.broker) (\(disconnection.reason)); reconnecting")
                case .rescind, .message, .failure:
                    break
                }
                if exitCode != nil { break }
            }
            try await logs.waitForAll()
        }
        return exitCode ?? 1
    }

    /// Copies the task's stdout to ours, following it until the task ends.
    private func streamOutput(agentID: String, follow: Bool) async throws {
        let agents = try await withKeelClient(broker) { client in
            try await Keel_V1_Operator.Client(wrapping: client).getAgents(Keel_V1_GetAgentsRequest())
        }
        let launcher = try LauncherLocator.launcher(forAgent: agentID, agents: agents.agents)
        let request = Keel_V1_TailLogRequest.with {
            $0.taskID.value = self.request.taskID
            $0.stream = .stdout
            $0.follow = follow
        }
        try await withKeelClient(launcher) { client in
            try await Keel_V1_Launcher.Client(wrapping: client).tailLog(request) { response in
                for try await chunk in response.messages where !chunk.data.isEmpty {
                    FileHandle.standardOutput.write(chunk.data)
                }
            }
        }
    }

    /// The process exit code `keel run` reports for a terminal status.
    static func exitCode(_ status: Keel_V1_TaskStatus) -> Int32 {
        if status.hasExitCode { return status.exitCode }
        if status.hasSignal { return 128 + status.signal }
        switch status.state {
        case .taskFinished: return 0
        case .taskKilled: return 137
        default: return 1
        }
    }
}
