import Foundation
import KeelAPI
import LauncherCore
import SwiftProtobuf
import Testing

@Suite("A task record's JSON")
struct TaskCheckpointJSONTests {
    static func record(framework: String, task: String, filled: Bool, payloadSizes: [Int]) -> TaskCheckpoint {
        var record = TaskCheckpoint(frameworkID: framework, task: .with {
            $0.taskID.value = task
            $0.name = "name \(task)"
            $0.command.shell = "echo \"quoted\" \\ and\ttab\n"
        })
        if filled {
            record.runID = "run-\(task)"
            record.sandbox = "/var/lib/keel/sandboxes/\(framework)/\(task)"
            record.supervisorPID = Int32.max
            record.supervisorStartTime = UInt64.max
            record.exitStatusFile = "/var/lib/keel/checkpoint/\(task)/exit-status"
            record.cgroup = "keel/\(task)"
            record.killRequested = true
            record.taskState = .taskFailed
        }
        // Every length modulo 3, so every kind of base64 padding shows up.
        record.pendingUpdates = payloadSizes.map { size in Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ size) }) }
        return record
    }

    @Test("reads back with JSONDecoder as the same record: optionals present or not, escapes, unicode, every base64 padding",
          arguments: [
            ("fw-1", "t-1", false, [Int]()),
            ("fw-1", "t-2", true, [0, 1, 2, 3, 4, 5, 100]),
            ("frame\"work\\", "täsk ✓ 🚀", true, [7]),
            ("control\u{1}\u{1f}", "line\nbreak\r\t", false, [2, 1]),
            ("slash/es", "", true, [300]),
          ])
    func roundTrip(example: (framework: String, task: String, filled: Bool, sizes: [Int])) throws {
        let record = Self.record(framework: example.framework, task: example.task, filled: example.filled, payloadSizes: example.sizes)
        let bytes = record.jsonBytes()
        let decoded = try JSONDecoder().decode(TaskCheckpoint.self, from: Data(bytes))
        #expect(decoded == record, "\(String(decoding: bytes, as: UTF8.self))")
    }

    @Test("says the same as JSONEncoder: both decode to equal values, and base64 matches Foundation's")
    func matchesJSONEncoder() throws {
        let record = Self.record(framework: "fw", task: "t", filled: true, payloadSizes: [0, 1, 2, 3, 64])
        let ours = try JSONSerialization.jsonObject(with: Data(record.jsonBytes())) as? NSDictionary
        let foundation = try JSONSerialization.jsonObject(with: JSONEncoder().encode(record)) as? NSDictionary
        #expect(ours != nil && ours == foundation)
        let pending = try #require(ours?["pendingUpdates"] as? [String])
        #expect(pending == record.pendingUpdates.map { $0.base64EncodedString() })
    }
}
