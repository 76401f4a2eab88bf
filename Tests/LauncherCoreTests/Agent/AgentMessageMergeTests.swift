import KeelAPI
import LauncherCore
import SwiftProtobuf
import Testing

@Suite("Agent stream merging")
struct AgentMessageMergeTests {
    @Test("runs of status updates are merged in order around other messages, only for a broker that takes batches")
    func statusUpdates() {
        func update(_ id: String) -> Keel_V1_AgentMessage { .with { $0.statusUpdate.status.taskID.value = id } }
        let heartbeat = Keel_V1_AgentMessage.with { $0.heartbeat = .init() }
        let messages = [update("a"), update("b"), heartbeat, update("c"), update("d"), update("e"), heartbeat, update("f")]

        let merged = AgentConnection.merged(messages, batches: true)
        let shape = merged.map { message -> String in
            switch message.message {
            case .statusUpdates(let batch): "updates \(batch.updates.map(\.status.taskID.value).joined())"
            case .statusUpdate(let update): "update \(update.status.taskID.value)"
            case .heartbeat: "heartbeat"
            default: "other"
            }
        }
        #expect(shape == ["updates ab", "heartbeat", "updates cde", "heartbeat", "update f"])
        #expect(AgentConnection.merged(messages, batches: false) == messages)

        let many = (0..<(AgentConnection.updatesPerMessage + 1)).map { update("t\($0)") }
        let split = AgentConnection.merged(many, batches: true)
        #expect(split.count == 2)
        #expect(split.first?.statusUpdates.updates.count == AgentConnection.updatesPerMessage)
        #expect(split.last?.statusUpdate.status.taskID.value == "t\(AgentConnection.updatesPerMessage)")
    }
}
