import Foundation
import KeelAPI
import LauncherCore
import SwiftProtobuf
import Synchronization
import Testing

@Suite("Status update manager")
struct StatusUpdateManagerTests {
    static func update(_ taskID: String, _ state: Keel_V1_TaskState) -> Keel_V1_TaskStatus {
        .with {
            $0.taskID.value = taskID
            $0.state = state
            $0.uuid = withUnsafeBytes(of: UUID().uuid) { Data($0) }
        }
    }

    @Test("across many tasks: only each task's head is sent, the next one after its acknowledgement, resends repeat the heads")
    func perTaskOrderAcrossTasks() throws {
        let manager = StatusUpdateManager(initialBackoff: .seconds(3600), maxBackoff: .seconds(7200))
        let sent = Mutex<[Keel_V1_TaskStatus]>([])
        manager.connect { message in
            sent.withLock { $0.append(message.statusUpdate.status) }
            return true
        }
        let states: [Keel_V1_TaskState] = [.taskStarting, .taskRunning, .taskFinished]
        let tasks = (0..<200).map { "task-\($0)" }
        var updates: [String: [Keel_V1_TaskStatus]] = [:]
        for state in states {
            for task in tasks {
                let update = Self.update(task, state)
                updates[task, default: []].append(update)
                manager.enqueue(frameworkID: "fw", status: update)
            }
        }
        #expect(manager.pendingCount == tasks.count * states.count)
        #expect(Set(sent.withLock { $0 }.map(\.uuid)) == Set(tasks.map { updates[$0]![0].uuid }), "only the heads went out")

        // Acknowledge in a shuffled order, round by round; each acknowledgement sends that task's next update.
        for round in 0..<states.count {
            sent.withLock { $0.removeAll() }
            for task in tasks.shuffled() {
                #expect(manager.acknowledge(frameworkID: "fw", taskID: task, uuid: updates[task]![round].uuid))
                #expect(!manager.acknowledge(frameworkID: "fw", taskID: task, uuid: updates[task]![round].uuid), "a duplicate is refused")
            }
            let next = round + 1 < states.count ? Set(tasks.map { updates[$0]![round + 1].uuid }) : []
            #expect(Set(sent.withLock { $0 }.map(\.uuid)) == next)
            if round + 1 < states.count {
                sent.withLock { $0.removeAll() }
                manager.resendDue(now: .now + .seconds(3601))
                #expect(Set(sent.withLock { $0 }.map(\.uuid)) == next, "a resend repeats exactly the heads")
            }
        }
        #expect(manager.pendingCount == 0)
    }
}
