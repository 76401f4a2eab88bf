import Foundation
import ArgumentParser
import GRPCCore
import KeelAPI
import KeelCore
import KeelRPC
import SwiftProtobuf

/// `keel roles`: every role with its weight, quota, reservations and allocation.
struct RolesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "roles", abstract: "List roles with their weight, quota, reservations and allocation.")

    @OptionGroup var cluster: ClusterOptions

    func run() async throws {
        let response = try await withKeelClient(try cluster.brokerEndpoint()) { client in
            try await Keel_V1_Operator.Client(wrapping: client).getRoles(Keel_V1_GetRolesRequest())
        }
        if cluster.json { return try Output.json(response) }
        Output.table(
            ["ROLE", "WEIGHT", "GUARANTEE", "LIMIT", "ALLOCATED", "RESERVED", "FRAMEWORKS"],
            response.roles.map { role in
                [
                    role.name, Output.number(role.weight),
                    Output.amounts(role.quota.guarantees), Output.amounts(role.quota.limits),
                    Output.amounts(role.allocated), Output.resources(role.reserved),
                    "\(role.frameworks.count)",
                ]
            }
        )
    }
}

/// `keel quota get|set|remove`: guarantees and limits per role.
struct QuotaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quota",
        abstract: "Show or change role quota (guarantees and limits of cpus, mem, disk, gpus).",
        subcommands: [Get.self, Assign.self, Remove.self]
    )

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the quota of roles (all roles with quota by default).")

        @OptionGroup var cluster: ClusterOptions

        @Argument(help: "Roles to show.")
        var roles: [String] = []

        func run() async throws {
            let response = try await withKeelClient(try cluster.brokerEndpoint()) { client in
                try await Keel_V1_Operator.Client(wrapping: client).getQuota(.with { $0.roles = roles })
            }
            if cluster.json { return try Output.json(response) }
            Output.table(
                ["ROLE", "GUARANTEE", "LIMIT"],
                response.configs.map { [$0.role, Output.amounts($0.guarantees), Output.amounts($0.limits)] }
            )
        }
    }

    struct Assign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Set a role's quota; it replaces the role's previous quota.",
            discussion: "Example: keel quota set eng --guarantee 'cpus:4;mem:8192' --limit 'cpus:16'"
        )

        @OptionGroup var cluster: ClusterOptions

        @Argument(help: "The role, e.g. eng or eng/backend.")
        var role: String

        @Option(help: "Guaranteed amounts, e.g. 'cpus:4;mem:8192' (mem and disk in MiB).")
        var guarantee: String?

        @Option(help: "Maximum amounts, e.g. 'cpus:16;gpus:2'.")
        var limit: String?

        func validate() throws {
            guard guarantee != nil || limit != nil else {
                throw ValidationError("give --guarantee, --limit or both; to remove a quota use 'keel quota remove \(role)'")
            }
        }

        func run() async throws {
            let guarantees = try QuotaAmounts.parse(guarantee ?? "", option: "--guarantee")
            let limits = try QuotaAmounts.parse(limit ?? "", option: "--limit")
            guard !guarantees.isEmpty || !limits.isEmpty else {
                throw ValidationError("the quota names no amounts; give e.g. --guarantee 'cpus:4'")
            }
            try await withKeelClient(try cluster.brokerEndpoint()) { client in
                _ = try await Keel_V1_Operator.Client(wrapping: client).updateQuota(.with {
                    $0.configs = [.with {
                        $0.role = role
                        $0.guarantees = guarantees
                        $0.limits = limits
                    }]
                })
            }
            Output.note("quota of role '\(role)' set")
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a role's quota.")

        @OptionGroup var cluster: ClusterOptions

        @Argument(help: "The role.")
        var role: String

        func run() async throws {
            try await withKeelClient(try cluster.brokerEndpoint()) { client in
                _ = try await Keel_V1_Operator.Client(wrapping: client).updateQuota(.with {
                    $0.configs = [.with { $0.role = role }]
                })
            }
            Output.note("quota of role '\(role)' removed")
        }
    }
}

/// `keel weights set ROLE=WEIGHT...`: DRF weights per role.
struct WeightsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weights",
        abstract: "Change role weights (weighted DRF: a role of weight 2 gets about twice a role of weight 1).",
        subcommands: [Assign.self]
    )

    struct Assign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set", abstract: "Set role weights, all or nothing.", discussion: "Example: keel weights set eng=2 batch=0.5")

        @OptionGroup var cluster: ClusterOptions

        @Argument(help: "ROLE=WEIGHT pairs; weight 1 is the default.")
        var weights: [String]

        func run() async throws {
            let parsed = try weights.map { pair -> Keel_V1_WeightInfo in
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[0].isEmpty, let weight = Double(parts[1]) else {
                    throw ValidationError("'\(pair)' is not ROLE=WEIGHT; write e.g. eng=2")
                }
                return .with {
                    $0.role = parts[0]
                    $0.weight = weight
                }
            }
            guard !parsed.isEmpty else { throw ValidationError("give at least one ROLE=WEIGHT, e.g. eng=2") }
            try await withKeelClient(try cluster.brokerEndpoint()) { client in
                _ = try await Keel_V1_Operator.Client(wrapping: client).updateWeights(.with { $0.weights = parsed })
            }
            Output.note("weights set: \(weights.joined(separator: " "))")
        }
    }
}

/// The resources argument of `keel reserve` and `keel unreserve`.
struct ReservationOptions: ParsableArguments {
    @Argument(help: "The agent's id (see keel agents).")
    var agent: String

    @Argument(help: "Resources, e.g. 'cpus:2;mem:1024' with --role, or 'cpus(eng):2;mem(eng):1024'.")
    var resources: String

    @Option(help: "The role for entries that name none.")
    var role: String?

    /// The resources with `--role` applied to entries that have no role.
    func parsed() throws -> [Keel_V1_Resource] {
        let parsed: Resources
        do {
            parsed = try Resources(parsing: resources)
        } catch let error as KeelError {
            throw ValidationError(error.message)
        }
        guard !parsed.isEmpty else { throw ValidationError("no resources given; write e.g. 'cpus:2;mem:1024' --role eng") }
        var result = Resources()
        for resource in parsed {
            if resource.role == nil {
                guard let role else {
                    throw ValidationError("'\(resource)' names no role; add --role ROLE or write it as \(resource.name)(ROLE):...")
                }
                result += Resource(name: resource.name, value: resource.value, role: role)
            } else {
                result += resource
            }
        }
        return result.proto
    }
}

/// `keel reserve AGENT RESOURCES --role ROLE`: a dynamic reservation.
struct ReserveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reserve",
        abstract: "Reserve free resources of an agent for a role (persisted; undo with keel unreserve).",
        discussion: "Example: keel reserve AGENT_ID 'cpus:2;mem:1024' --role eng"
    )

    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var reservation: ReservationOptions

    func run() async throws {
        let resources = try reservation.parsed()
        let response = try await withKeelClient(try cluster.brokerEndpoint()) { client in
            try await Keel_V1_Operator.Client(wrapping: client).reserveResources(.with {
                $0.agentID = .with { $0.value = reservation.agent }
                $0.resources = resources
            })
        }
        if cluster.json { return try Output.json(response) }
        print("agent \(reservation.agent) now has \(Output.resources(response.totalResources))")
    }
}

/// `keel unreserve AGENT RESOURCES --role ROLE`: undoes a dynamic reservation.
struct UnreserveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unreserve",
        abstract: "Return dynamically reserved resources of an agent to the unreserved pool.",
        discussion: "Example: keel unreserve AGENT_ID 'cpus:2;mem:1024' --role eng"
    )

    @OptionGroup var cluster: ClusterOptions
    @OptionGroup var reservation: ReservationOptions

    func run() async throws {
        let resources = try reservation.parsed()
        let response = try await withKeelClient(try cluster.brokerEndpoint()) { client in
            try await Keel_V1_Operator.Client(wrapping: client).unreserveResources(.with {
                $0.agentID = .with { $0.value = reservation.agent }
                $0.resources = resources
            })
        }
        if cluster.json { return try Output.json(response) }
        print("agent \(reservation.agent) now has \(Output.resources(response.totalResources))")
    }
}

/// `keel explain`: why a framework is (not) offered each agent's resources.
struct ExplainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Explain why a framework (or each framework of a role) is or is not offered each agent's resources."
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "The framework's id.")
    var framework: String?

    @Option(help: "Every framework of this role.")
    var role: String?

    @Option(help: "Only this agent.")
    var agent: String?

    func validate() throws {
        guard (framework == nil) != (role == nil) else {
            throw ValidationError("give exactly one of --framework ID or --role ROLE")
        }
    }

    func run() async throws {
        let response = try await withKeelClient(try cluster.brokerEndpoint()) { client in
            try await Keel_V1_Operator.Client(wrapping: client).explainOffers(.with {
                if let framework { $0.frameworkID = .with { $0.value = framework } }
                if let role { $0.role = role }
                if let agent { $0.agentID = .with { $0.value = agent } }
            })
        }
        if cluster.json { return try Output.json(response) }
        Output.table(
            ["FRAMEWORK", "AGENT", "HOSTNAME", "OFFERABLE", "FREE", "WHY NOT"],
            response.explanations.map { explanation in
                [
                    explanation.frameworkID.value, explanation.agentID.value, explanation.hostname,
                    explanation.offerable ? "yes" : "no", Output.resources(explanation.freeResources),
                    explanation.reasons.joined(separator: "; "),
                ]
            }
        )
    }
}

/// Quota amounts as `name:value;...`, read without ``Resources`` so that a negative or
/// non-finite amount reaches the broker's validation instead of being dropped.
enum QuotaAmounts {
    static func parse(_ text: String, option: String) throws -> [String: Double] {
        var amounts: [String: Double] = [:]
        for entry in text.split(separator: ";") {
            let trimmed = entry.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { continue }
            let parts = trimmed.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, let amount = Double(parts[1]) else {
                throw ValidationError("\(option): '\(trimmed)' is not name:amount; write e.g. 'cpus:4;mem:8192'")
            }
            guard amounts[parts[0]] == nil else {
                throw ValidationError("\(option) names '\(parts[0])' twice")
            }
            amounts[parts[0]] = amount
        }
        return amounts
    }
}
