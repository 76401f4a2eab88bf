import Foundation
import HealthCore
import KeelAPI
import KeelRPC
import SwiftProtobuf
import Testing

@Suite("CheckPolicy and CheckedTask: what a task event means")
struct CheckPolicyTests {
    @Test("unset fields take the defaults: no delay, 10s interval, 20s timeout, no grace, 3 failures")
    func defaults() {
        let policy = CheckPolicy(Keel_V1_HealthCheck.with { $0.type = .tcp }, configuration: .defaults)
        #expect(policy == CheckPolicy(delay: .zero, interval: .seconds(10), timeout: .seconds(20), gracePeriod: .zero, consecutiveFailures: 3))
    }

    @Test("set fields are used as they are")
    func overrides() {
        let check = Keel_V1_HealthCheck.with {
            $0.delay = Fixtures.duration(milliseconds: 1500)
            $0.interval = Fixtures.duration(milliseconds: 2000)
            $0.timeout = Fixtures.duration(milliseconds: 500)
            $0.gracePeriod = Fixtures.duration(milliseconds: 60_000)
            $0.consecutiveFailures = 7
        }
        let policy = CheckPolicy(check, configuration: .defaults)
        #expect(policy == CheckPolicy(
            delay: .milliseconds(1500), interval: .seconds(2), timeout: .milliseconds(500), gracePeriod: .seconds(60), consecutiveFailures: 7
        ))
    }

    @Test("a RUNNING task with a check is checked on its agent's IP")
    func checked() throws {
        let event = Fixtures.taskEvent("t1", check: Fixtures.httpCheck(port: 8080), launcherPort: 5051)
        guard case .checked(let task) = CheckedTask.classify(event) else {
            Issue.record("expected a checked task")
            return
        }
        #expect(task.key == CheckedTaskKey(frameworkID: "fw-1", taskID: "t1"))
        #expect(task.target.host == "127.0.0.1")
        #expect(task.target.launcher == Endpoint(host: "127.0.0.1", port: 5051))
        #expect(task.runningFor == .zero)
    }

    @Test("the time since RUNNING comes from the broker's status timestamp")
    func runningFor() {
        let now = Date()
        let event = Fixtures.taskEvent("t1", check: Fixtures.httpCheck(port: 8080), runningSince: now.addingTimeInterval(-30))
        guard case .checked(let task) = CheckedTask.classify(event, now: now) else {
            Issue.record("expected a checked task")
            return
        }
        #expect(task.runningFor >= .seconds(29) && task.runningFor <= .seconds(31))
    }

    @Test("tasks that are not RUNNING or have no check are not checked")
    func notChecked() {
        let finished = CheckedTask.classify(Fixtures.taskEvent("t1", state: .taskFinished, check: Fixtures.httpCheck(port: 80)))
        let unchecked = CheckedTask.classify(Fixtures.taskEvent("t2", check: nil))
        let key1 = CheckedTaskKey(frameworkID: "fw-1", taskID: "t1")
        let key2 = CheckedTaskKey(frameworkID: "fw-1", taskID: "t2")
        #expect(finished == .notChecked(key1, reason: "the task is TASK_FINISHED"))
        #expect(unchecked == .notChecked(key2, reason: "the task has no health check"))
    }

    @Test("a task whose agent has no launcher address cannot be checked yet")
    func unaddressable() {
        var event = Fixtures.taskEvent("t1", check: Fixtures.httpCheck(port: 80))
        event.clearLauncherAddress()
        #expect(CheckedTask.classify(event) == .unaddressable(CheckedTaskKey(frameworkID: "fw-1", taskID: "t1")))
    }

    @Test("wildcard launcher addresses fall back to the hostname, then to loopback")
    func wildcard() {
        let named = Keel_V1_Address.with {
            $0.ip = "0.0.0.0"
            $0.hostname = "0.0.0.0"
            $0.port = 5051
        }
        #expect(named.dialableEndpoint(fallbackHostname: "node-7") == Endpoint(host: "node-7", port: 5051))
        #expect(named.dialableEndpoint(fallbackHostname: "") == Endpoint(host: "127.0.0.1", port: 5051))
        let noPort = Keel_V1_Address.with { $0.ip = "10.0.0.1" }
        #expect(noPort.dialableEndpoint(fallbackHostname: "x") == nil)
    }
}
