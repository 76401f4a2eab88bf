import GRPCCore
package import KeelAPI
import SwiftProtobuf

/// A COMMAND check: asks the launcher of the task's agent to run the command in the task's
/// sandbox (`Launcher.RunCommandCheck`); healthy when it exits 0 within the timeout.
package struct CommandProbe: HealthProbe {
    /// How much longer than the check's timeout the call to the launcher may take (spawn, kill, reply).
    package static let callSlack = Duration.seconds(5)

    private let launchers: any LauncherConnector

    /// Creates the probe; calls go through `launchers`.
    package init(launchers: any LauncherConnector) {
        self.launchers = launchers
    }

    /// Has the launcher run the command and judges its exit.
    package func probe(_ check: Keel_V1_HealthCheck, target: ProbeTarget, timeout: Duration) async -> ProbeResult {
        guard check.hasCommand, check.command.hasCommand, check.command.command.command != nil else {
            return .unhealthy("the COMMAND check has no command; set command.command.argv or command.command.shell")
        }
        let request = Keel_V1_RunCommandCheckRequest.with {
            $0.taskID.value = target.key.taskID
            $0.command = check.command.command
            $0.timeout = Google_Protobuf_Duration(rounding: timeout, rule: .up)
        }
        var options = CallOptions.defaults
        options.timeout = timeout + Self.callSlack
        do {
            let launcher = try launchers.launcher(at: target.launcher)
            let response = try await launcher.runCommandCheck(request, options: options)
            let output = response.output.trimmingWhitespace.prefix(200)
            let detail = output.isEmpty ? "" : ": \(output)"
            if response.timedOut {
                return .unhealthy("the command did not finish within \(timeout.compactDescription)\(detail)")
            }
            let message = "the command exited with \(response.exitCode)\(detail)"
            return response.exitCode == 0 ? .healthy(message) : .unhealthy(message)
        } catch let error as RPCError {
            return .unhealthy("the launcher at \(target.launcher) could not run the command: \(error.code): \(error.message)")
        } catch {
            return .unhealthy("the launcher at \(target.launcher) could not run the command: \(error)")
        }
    }
}

extension String {
    /// The string without leading and trailing spaces and newlines.
    var trimmingWhitespace: Substring {
        let isSpace: (Character) -> Bool = { $0.isWhitespace }
        guard let start = firstIndex(where: { !isSpace($0) }), let end = lastIndex(where: { !isSpace($0) }) else { return "" }
        return self[start...end]
    }
}
