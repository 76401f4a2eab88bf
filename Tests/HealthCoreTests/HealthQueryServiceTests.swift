import GRPCCore
import HealthCore
import KeelAPI
import SwiftProtobuf
import Testing

@Suite("The HealthChecker query API over gRPC")
struct HealthQueryServiceTests {
    private func table() -> HealthTable {
        let table = HealthTable()
        for (framework, task) in [("fw-1", "web"), ("fw-1", "db"), ("fw-2", "web")] {
            let key = CheckedTaskKey(frameworkID: framework, taskID: task)
            let owner = table.beginTask(key, checkType: .http)
            table.updateTask(key, owner: owner) {
                $0.healthy = task == "web"
                $0.lastMessage = "checked \(framework)/\(task)"
            }
        }
        table.replaceAgents([
            .with {
                $0.agentID.value = "b"
                $0.reachable = false
                $0.missedPings = 5
            },
            .with {
                $0.agentID.value = "a"
                $0.reachable = true
            },
        ])
        return table
    }

    @Test("GetTaskHealth returns every checked task, or those with the given ids")
    func taskHealth() async throws {
        try await withInProcess([HealthQueryService(table: table())]) { client in
            let health = Keel_V1_HealthChecker.Client(wrapping: client)
            let all = try await health.getTaskHealth(Keel_V1_GetTaskHealthRequest())
            let keys = all.tasks.map { "\($0.frameworkID.value)/\($0.taskID.value)" }
            #expect(keys == ["fw-1/db", "fw-1/web", "fw-2/web"])
            #expect(all.tasks.map(\.healthy) == [false, true, true])
            #expect(all.tasks.allSatisfy { $0.checkType == .http })

            let web = try await health.getTaskHealth(.with { $0.taskIds = [.with { $0.value = "web" }] })
            #expect(web.tasks.map(\.frameworkID.value) == ["fw-1", "fw-2"])

            let unknown = try await health.getTaskHealth(.with { $0.taskIds = [.with { $0.value = "nope" }] })
            #expect(unknown.tasks.isEmpty)
        }
    }

    @Test("GetTaskHealth rejects empty and malformed task ids")
    func invalidIDs() async throws {
        try await withInProcess([HealthQueryService(table: table())]) { client in
            let health = Keel_V1_HealthChecker.Client(wrapping: client)
            for bad in ["", "../etc"] {
                let error = await #expect(throws: RPCError.self) {
                    try await health.getTaskHealth(.with { $0.taskIds = [.with { $0.value = bad }] })
                }
                #expect(error?.code == .invalidArgument)
            }
        }
    }

    @Test("GetAgentLiveness returns the latest ping round, by agent id")
    func agentLiveness() async throws {
        try await withInProcess([HealthQueryService(table: table())]) { client in
            let health = Keel_V1_HealthChecker.Client(wrapping: client)
            let agents = try await health.getAgentLiveness(Keel_V1_GetAgentLivenessRequest()).agents
            #expect(agents.map(\.agentID.value) == ["a", "b"])
            #expect(agents.map(\.reachable) == [true, false])
            #expect(agents.last?.missedPings == 5)
        }
    }

    @Test("a replaced check cannot change or remove its successor's entry")
    func ownership() {
        let table = HealthTable()
        let key = CheckedTaskKey(frameworkID: "fw", taskID: "t")
        let old = table.beginTask(key, checkType: .tcp)
        let new = table.beginTask(key, checkType: .http)
        table.updateTask(key, owner: old) { $0.lastMessage = "stale" }
        table.endTask(key, owner: old)
        let entry = table.task(key)
        #expect(entry?.checkType == .http)
        #expect(entry?.lastMessage == "")
        table.endTask(key, owner: new)
        #expect(table.task(key) == nil)
    }
}
