import KeelAPI
import KeelCore
import KeelRPC

/// What operators decided, kept by the broker and persisted in its store so that it survives a
/// restart: DRF weights, quota, the dynamic reservations made on agents, and which agents are
/// drained for maintenance.
///
/// Role names here are the API's (`*` is the default role); ``AllocatorRoles`` maps them to the
/// allocator's.
struct ClusterPolicy: Sendable {
    /// Weights other than the default 1, by role.
    var weights: [String: Double] = [:]
    /// Quota by role, as configured.
    var quotas: [String: Keel_V1_QuotaConfig] = [:]
    /// Dynamic reservations by agent (every entry has a role). An agent's total as offered is
    /// its launcher's report with these applied (see ``applying(_:to:)``).
    var reservations: [AgentID: Resources] = [:]
    /// Agents an operator drained: they get no offers until reactivated.
    var draining: Set<AgentID> = []

    static let weightPrefix = "/keel/broker/weights/"
    static let quotaPrefix = "/keel/broker/quota/"
    static let reservationPrefix = "/keel/broker/reservations/"
    static let drainingPrefix = "/keel/broker/draining/"

    /// `reported` (an agent's resources as its launcher reports them) with the dynamic
    /// `reservations` applied: each reserved entry takes the same amount from the unreserved
    /// pool. Entries that no longer fit (the agent shrank) are returned in `unapplied`.
    static func applying(_ reservations: Resources, to reported: Resources) -> (total: Resources, unapplied: Resources) {
        var total = reported
        var unapplied = Resources()
        for reservation in reservations {
            let source = Resources([reservation]).flattened()
            if total.unreserved.contains(source) {
                total = total - source + reservation
            } else {
                unapplied += reservation
            }
        }
        return (total, unapplied)
    }
}

extension Resources {
    /// Wire form in which the entries also found in `dynamic` are marked as DYNAMIC
    /// reservations (the rest of the reserved entries are STATIC, from the launcher's
    /// configuration).
    func proto(markingDynamic dynamic: Resources?) -> [Keel_V1_Resource] {
        guard let dynamic, !dynamic.isEmpty else { return proto }
        let dynamicPart = self - (self - dynamic)
        let staticPart = self - dynamicPart
        let marked = dynamicPart.proto.map { resource in
            var resource = resource
            for index in resource.reservations.indices { resource.reservations[index].type = .dynamic }
            return resource
        }
        return staticPart.proto + marked
    }
}
