import KeelAPI
import KeelCore
import KeelRPC

extension Broker {
    /// The principal of the call being handled, from its verified token; nil when it has none
    /// (an open cluster).
    private var callerPrincipal: String? {
        guard let principal = RequestAuth.claims?.principal, !principal.isEmpty else { return nil }
        return principal
    }

    /// Checks the `run_tasks` ACL for every task an Accept would launch: each runs as its
    /// command's user, or the framework's user when the command names none.
    ///
    /// Runs before the Accept changes anything, so a denial leaves offers and tasks as they were.
    ///
    /// - Throws: `KeelError` `.permissionDenied` for the first task whose user is not allowed.
    func authorizeLaunches(_ request: Keel_V1_AcceptRequest) throws {
        let acls = configuration.acls
        guard acls != .allowAll else { return }
        let frameworkUser = try read { try $0.activeFramework(request.frameworkID.value).info.user }
        let principal = callerPrincipal
        for operation in request.operations {
            let tasks: [Keel_V1_TaskInfo] = switch operation.type {
            case .launch: operation.launch.taskInfos
            case .launchGroup: operation.launchGroup.taskGroup.tasks
            default: []
            }
            for task in tasks {
                let user = task.command.user.isEmpty ? frameworkUser : task.command.user
                try acls.authorize(.runTasks, principal: principal, object: user)
            }
        }
    }

    /// Checks the `teardown_frameworks` ACL before a framework is torn down by a caller.
    ///
    /// - Throws: `KeelError` `.permissionDenied` when the caller's principal may not tear down
    ///   frameworks of the framework's principal.
    func authorizeTeardown(of frameworkID: String) throws {
        let acls = configuration.acls
        guard acls != .allowAll else { return }
        let frameworkPrincipal = try read { try $0.activeFramework(frameworkID).info.principal }
        try acls.authorize(.teardownFrameworks, principal: callerPrincipal, object: frameworkPrincipal)
    }
}
