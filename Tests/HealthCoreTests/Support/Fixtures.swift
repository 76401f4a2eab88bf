import Foundation
import HealthCore
import KeelAPI
import KeelRPC
import Logging
import SwiftProtobuf

/// Builders for the protos the tests feed in.
enum Fixtures {
    /// A logger that drops everything, unless `KEEL_TEST_LOG` is set (then debug to stderr).
    static let logger: Logger = {
        guard ProcessInfo.processInfo.environment["KEEL_TEST_LOG"] != nil else {
            return Logger(label: "keel.test.health", factory: { _ in SwiftLogNoOpLogHandler() })
        }
        var logger = Logger(label: "keel.test.health", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .trace
        return logger
    }()

    /// A protobuf duration of `milliseconds`.
    static func duration(milliseconds: Int64) -> Google_Protobuf_Duration {
        Google_Protobuf_Duration(rounding: .milliseconds(milliseconds), rule: .toNearestOrAwayFromZero)
    }

    /// An HTTP check on `port` every `interval` ms.
    static func httpCheck(port: Int, path: String = "/health", interval: Int64 = 30, failures: UInt32 = 2) -> Keel_V1_HealthCheck {
        .with {
            $0.type = .http
            $0.http.port = UInt32(port)
            $0.http.path = path
            $0.interval = duration(milliseconds: interval)
            $0.timeout = duration(milliseconds: 2000)
            $0.consecutiveFailures = failures
        }
    }

    /// A task event for `taskID` in `state` on an agent whose launcher is at 127.0.0.1:`launcherPort`.
    static func taskEvent(
        _ taskID: String,
        framework: String = "fw-1",
        state: Keel_V1_TaskState = .taskRunning,
        check: Keel_V1_HealthCheck?,
        launcherPort: Int = 5051,
        runningSince: Date? = nil
    ) -> Keel_V1_TaskEvent {
        .with {
            $0.task.taskID.value = taskID
            $0.task.frameworkID.value = framework
            $0.task.agentID.value = "agent-1"
            $0.task.state = state
            if let check { $0.task.healthCheck = check }
            if let runningSince {
                $0.task.statuses = [.with {
                    $0.state = .taskRunning
                    $0.timestamp = Google_Protobuf_Timestamp(date: runningSince)
                }]
            }
            $0.launcherAddress.ip = "127.0.0.1"
            $0.launcherAddress.hostname = "localhost"
            $0.launcherAddress.port = UInt32(launcherPort)
            $0.hostname = "node-1"
        }
    }

    /// An agent as the broker lists it.
    static func agent(_ id: String, state: Keel_V1_Agent.State = .active, launcherPort: Int = 5051) -> Keel_V1_Agent {
        .with {
            $0.agentInfo.id.value = id
            $0.agentInfo.hostname = "node-\(id)"
            $0.agentInfo.launcherAddress.ip = "127.0.0.1"
            $0.agentInfo.launcherAddress.port = UInt32(launcherPort)
            $0.state = state
        }
    }

    /// A configuration with short timings for tests.
    static func configuration(pingInterval: Duration = .milliseconds(20), pingBudget: Int = 3) -> HealthConfiguration {
        var configuration = HealthConfiguration.defaults
        configuration.pingInterval = pingInterval
        configuration.pingTimeout = .seconds(2)
        configuration.pingBudget = pingBudget
        configuration.reconnectBackoff = .milliseconds(20)
        configuration.reconnectBackoffMax = .milliseconds(100)
        return configuration
    }
}
