import Foundation
import KeelAPI
import KeelSDK
import SwiftProtobuf

/// Runs one job, a command as N tasks, to completion on Keel with the SDK.
struct JobRunner {
    /// What to run.
    struct Job: Sendable {
        var command: [String]
        var shell: Bool
        var tasks: Int
        var parallel: Int
        var retries: Int
        var request: ResourceRequest
    }

    /// How one task of the job ended.
    struct Result: Sendable {
        var index: Int
        var state: Keel_V1_TaskState
        var attempts: Int
        var message: String
    }

    let job: Job
    let registry: String
    let broker: String

    /// Registers a framework, runs every task to its final state, tears the framework down.
    func run() async throws -> [Result] {
        let info = Keel_V1_FrameworkInfo.with {
            $0.name = "keel-job-runner"
            $0.user = ProcessInfo.processInfo.environment["USER"] ?? "root"
            $0.failoverTimeout = Google_Protobuf_Duration(seconds: 60)
        }
        let driver = SchedulerDriver(configuration: .init(registry: registry, broker: broker, frameworkInfo: info))
        return try await driver.run { session in
            var progress = Progress(job: job)
            for try await event in session.events {
                switch event {
                case .subscribed(let subscription):
                    note("subscribed as \(subscription.frameworkID.value)\(subscription.isResubscription ? " again" : "")")
                case .disconnected(let disconnection):
                    note("lost the broker (\(disconnection.reason)); reconnecting")
                case .offers(let offers):
                    try await launch(on: offers, progress: &progress, session: session)
                case .update(let status):
                    if let line = progress.record(status) {
                        note(line)
                        // A slot is free: make sure declined offers come back.
                        if progress.hasPending { try await session.revive() }
                    }
                case .rescind, .message, .failure:
                    break
                }
                if progress.isDone { break }
            }
            try? await session.teardown()
            return progress.results
        }
    }

    /// Places waiting tasks on `offers`, up to the parallelism; declines the rest.
    private func launch(on offers: [Keel_V1_Offer], progress: inout Progress, session: SchedulerSession) async throws {
        var unused: [Keel_V1_Offer] = []
        for offer in offers {
            var packer = OfferPacker(offer)
            var tasks: [Keel_V1_TaskInfo] = []
            while progress.canStartMore, packer.fits(job.request), let (index, attempt) = progress.startNext() {
                let placement = try packer.place(job.request)
                tasks.append(taskInfo(index: index, attempt: attempt, agentID: offer.agentID, resources: placement.resources))
            }
            guard !tasks.isEmpty else {
                unused.append(offer)
                continue
            }
            do {
                try await session.launch(tasks, on: [offer], refuseSeconds: 1)
            } catch {
                note("launch on \(offer.hostname) failed (\(error)); trying again")
                for task in tasks { progress.requeue(task.taskID) }
            }
        }
        if !unused.isEmpty {
            // With nothing waiting, stay away longer; an update that frees a slot revives offers.
            try await session.decline(unused, refuseSeconds: progress.hasPending ? 1 : 30)
        }
    }

    private func taskInfo(index: Int, attempt: Int, agentID: Keel_V1_AgentID, resources: [Keel_V1_Resource]) -> Keel_V1_TaskInfo {
        .with {
            $0.name = "job-\(index)"
            $0.taskID.value = Progress.taskID(index: index, attempt: attempt)
            $0.agentID = agentID
            $0.resources = resources
            if job.shell {
                $0.command.shell = job.command.joined(separator: " ")
            } else {
                $0.command.argv.args = job.command
            }
            $0.command.environment.variables = [
                .with { $0.name = "KEEL_JOB_INDEX"; $0.value = "\(index)" },
                .with { $0.name = "KEEL_JOB_ATTEMPT"; $0.value = "\(attempt)" },
            ]
        }
    }

    private func note(_ line: String) {
        FileHandle.standardError.write(Data("keel-job-runner: \(line)\n".utf8))
    }
}

/// The job's bookkeeping: which tasks wait, run, and how each ended.
private struct Progress {
    let job: JobRunner.Job
    private var waiting: [Int]
    private var running: [String: Int] = [:]
    private var attempts: [Int]
    private var final: [Int: (state: Keel_V1_TaskState, message: String)] = [:]

    init(job: JobRunner.Job) {
        self.job = job
        self.waiting = Array(0..<job.tasks)
        self.attempts = Array(repeating: 0, count: job.tasks)
    }

    static func taskID(index: Int, attempt: Int) -> String { "job-\(index)-try-\(attempt)" }

    var isDone: Bool { final.count == job.tasks }
    var hasPending: Bool { !waiting.isEmpty }
    var canStartMore: Bool { !waiting.isEmpty && running.count < job.parallel }

    /// Takes the next waiting task; returns its index and attempt number.
    mutating func startNext() -> (Int, Int)? {
        guard canStartMore else { return nil }
        let index = waiting.removeFirst()
        attempts[index] += 1
        running[Self.taskID(index: index, attempt: attempts[index])] = index
        return (index, attempts[index])
    }

    /// Puts a task whose launch did not go through back in line, without counting the attempt.
    mutating func requeue(_ taskID: Keel_V1_TaskID) {
        guard let index = running.removeValue(forKey: taskID.value) else { return }
        attempts[index] -= 1
        waiting.insert(index, at: 0)
    }

    /// Applies a status update; returns a line worth printing.
    mutating func record(_ status: Keel_V1_TaskStatus) -> String? {
        guard let index = running[status.taskID.value], Self.isTerminal(status.state) else { return nil }
        running[status.taskID.value] = nil
        let attempt = attempts[index]
        if status.state == .taskFinished {
            final[index] = (status.state, "")
            return "task \(index) finished (attempt \(attempt))"
        }
        if attempt <= job.retries {
            waiting.append(index)
            return "task \(index) ended \(status.state) (attempt \(attempt)); retrying"
        }
        final[index] = (status.state, status.message)
        return "task \(index) ended \(status.state) (attempt \(attempt)); giving up"
    }

    var results: [JobRunner.Result] {
        (0..<job.tasks).map { index in
            let outcome = final[index] ?? (.unspecified, "did not end")
            return JobRunner.Result(index: index, state: outcome.state, attempts: attempts[index], message: outcome.message)
        }
    }

    private static func isTerminal(_ state: Keel_V1_TaskState) -> Bool {
        switch state {
        case .taskFinished, .taskFailed, .taskKilled, .taskError, .taskLost, .taskDropped, .taskGone,
            .taskGoneByOperator, .taskUnknown:
            true
        default:
            false
        }
    }
}
