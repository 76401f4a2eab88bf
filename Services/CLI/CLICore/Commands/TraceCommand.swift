import ArgumentParser
import Foundation
import GRPCCore
import KeelAPI
import KeelRPC
import SwiftProtobuf

/// `keel trace TASK`: the hops of a task's life and the time between them.
struct TraceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Show a task's timeline: offer, launch, start, each status, with the time between hops."
    )

    @OptionGroup var cluster: ClusterOptions

    @Argument(help: "The task id.")
    var task: String

    func run() async throws {
        let response = try await withKeelClient(try cluster.tracerEndpoint()) { client in
            try await Keel_V1_Tracer.Client(wrapping: client).taskTimeline(.with { $0.taskID.value = task })
        }
        if cluster.json { return try Output.json(response) }
        guard let first = response.hops.first else {
            print("no hops recorded for task \(task)")
            return
        }
        let origin = first.start.date
        Output.table(
            ["AT", "HOP", "SERVICE", "DURATION", "DETAIL"],
            response.hops.map { hop in
                let at = hop.start.date.timeIntervalSince(origin) * 1000
                let duration = hop.end.date.timeIntervalSince(hop.start.date) * 1000
                let detail = hop.attributes
                    .filter { !["keel.task_id", "keel.framework_id", "keel.agent_id"].contains($0.key) }
                    .sorted { $0.key < $1.key }
                    .map { "\($0.key.replacingOccurrences(of: "keel.", with: ""))=\($0.value)" }
                    .joined(separator: " ")
                return [
                    String(format: "+%.1fms", at), hop.name, hop.service, String(format: "%.1fms", duration),
                    hop.error.isEmpty ? detail : "error: \(hop.error) \(detail)",
                ]
            }
        )
        print(String(format: "total %.1fms", Double(response.total.seconds) * 1000 + Double(response.total.nanos) / 1e6))
    }
}
