import Foundation
import GRPCCore
import KeelAPI
import KeelRPC
import KeelSDK
import SwiftProtobuf
import Synchronization
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
        let ended = EndFlag()
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
                        logs.addTask { try await followOutput(agentID: agentID, ended: ended) }
                    }
                    if status.state.isTerminal {
                        ended.set()
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
    ///
    /// If the stream breaks before the end (the launcher restarts; its tasks keep running), the
    /// rest is read from where it broke, with `ReadFile`, until the task has ended and every
    /// byte is printed.
    private func followOutput(agentID: String, ended: EndFlag) async throws {
        var offset: UInt64 = 0
        do {
            if try await streamOutput(agentID: agentID, follow: true, printed: &offset) { return }
        } catch {
            Output.note("keel: the task's log stream broke (\(error)); reading its output again once the launcher is back")
        }
        var quietSince: ContinuousClock.Instant?
        while !Task.isCancelled {
            let chunk = try? await readOutput(agentID: agentID, offset: offset)
            if let chunk, !chunk.data.isEmpty {
                FileHandle.standardOutput.write(chunk.data)
                offset = chunk.offset + UInt64(chunk.data.count)
                continue
            }
            if ended.isSet {
                // Done once the end is read; give an unreachable launcher a few seconds.
                if chunk != nil { return }
                let since = quietSince ?? .now
                quietSince = since
                if ContinuousClock.now - since > .seconds(10) { return }
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// Streams the task's stdout to ours; `printed` counts the bytes written. Returns whether the
    /// launcher said the log ended.
    @discardableResult
    private func streamOutput(agentID: String, follow: Bool, printed: inout UInt64) async throws -> Bool {
        let launcher = try await launcherEndpoint(agentID: agentID)
        let request = Keel_V1_TailLogRequest.with {
            $0.taskID.value = self.request.taskID
            $0.stream = .stdout
            $0.follow = follow
        }
        let (count, endOfLog) = try await withKeelClient(launcher) { client in
            try await Keel_V1_Launcher.Client(wrapping: client).tailLog(request) { response in
                var count: UInt64 = 0
                var endOfLog = false
                for try await chunk in response.messages {
                    if !chunk.data.isEmpty {
                        FileHandle.standardOutput.write(chunk.data)
                        count = chunk.offset + UInt64(chunk.data.count)
                    }
                    endOfLog = endOfLog || chunk.endOfLog
                }
                return (count, endOfLog)
            }
        }
        printed = count
        return endOfLog
    }

    private func streamOutput(agentID: String, follow: Bool) async throws {
        var printed: UInt64 = 0
        try await streamOutput(agentID: agentID, follow: follow, printed: &printed)
    }

    /// Reads the task's stdout from `offset`.
    private func readOutput(agentID: String, offset: UInt64) async throws -> Keel_V1_ReadFileResponse {
        let launcher = try await launcherEndpoint(agentID: agentID)
        let request = Keel_V1_ReadFileRequest.with {
            $0.taskID.value = self.request.taskID
            $0.path = "stdout"
            $0.offset = offset
        }
        return try await withKeelClient(launcher) { client in
            try await Keel_V1_Launcher.Client(wrapping: client).readFile(request)
        }
    }

    private func launcherEndpoint(agentID: String) async throws -> KeelRPC.Endpoint {
        let agents = try await withKeelClient(broker) { client in
            try await Keel_V1_Operator.Client(wrapping: client).getAgents(Keel_V1_GetAgentsRequest())
        }
        return try LauncherLocator.launcher(forAgent: agentID, agents: agents.agents)
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

/// Set once the task has reached a terminal state.
private final class EndFlag: Sendable {
    private let value = Mutex(false)

    func set() { value.withLock { $0 = true } }

    var isSet: Bool { value.withLock { $0 } }
}
