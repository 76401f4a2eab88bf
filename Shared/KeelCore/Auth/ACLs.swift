/// Who may do what: the access-control lists the registry and the broker check on every call.
///
/// Modelled on Mesos ACLs. Each list holds rules with a subject (the principals) and an object
/// (roles, users or framework principals). The rules of a list are tried in order; the first
/// whose subject and object both match the request decides it: allowed unless the subject or
/// the object of that rule is `NONE`. When no rule matches, ``permissive`` decides.
///
/// ```json
/// {
///   "permissive": false,
///   "register_frameworks": [{"principals": {"values": ["analytics"]}, "roles": {"values": ["analytics"]}}],
///   "run_tasks": [{"principals": {"type": "ANY"}, "users": {"values": ["nobody"]}}],
///   "teardown_frameworks": [{"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}}]
/// }
/// ```
package struct ACLs: Sendable, Equatable {
    /// One side of a rule: a list of names, anyone, or no one.
    package enum Entity: Sendable, Equatable {
        /// Matches every request; allows.
        case any
        /// Matches every request; denies.
        case none
        /// Matches the listed names only; allows.
        case values([String])

        /// Whether a request naming `name` (nil: no name, e.g. an unauthenticated caller) is
        /// covered by this entity. A list never covers a request without a name.
        func matches(_ name: String?) -> Bool {
            switch self {
            case .any, .none: true
            case .values(let values): name.map(values.contains) ?? false
            }
        }
    }

    /// A rule: `subject` may (or, with `NONE`, may not) act on `object`.
    package struct Rule: Sendable, Equatable {
        /// The principals the rule is about.
        package var principals: Entity
        /// The roles, users or framework principals the rule is about.
        package var object: Entity

        /// Creates a rule.
        package init(principals: Entity, object: Entity) {
            self.principals = principals
            self.object = object
        }
    }

    /// The kinds of action a rule list governs.
    package enum Action: String, Sendable, CaseIterable {
        /// Registering a framework with a role; the object is the role.
        case registerFrameworks = "register_frameworks"
        /// Launching tasks that run as a Unix user; the object is the user.
        case runTasks = "run_tasks"
        /// Tearing down a framework; the object is the principal the framework registered as.
        case teardownFrameworks = "teardown_frameworks"

        /// The JSON key of the rule's object for this action.
        package var objectKey: String {
            switch self {
            case .registerFrameworks: "roles"
            case .runTasks: "users"
            case .teardownFrameworks: "framework_principals"
            }
        }

        /// What the action is, in words, for messages.
        var verb: String {
            switch self {
            case .registerFrameworks: "register a framework with role"
            case .runTasks: "run tasks as user"
            case .teardownFrameworks: "tear down a framework of principal"
            }
        }
    }

    /// The verdict on one request, with the rule that decided it.
    package struct Decision: Sendable, Equatable {
        /// Whether the request may go ahead.
        package var allowed: Bool
        /// The index of the deciding rule in its list; nil when ``ACLs/permissive`` decided.
        package var ruleIndex: Int?
    }

    /// What is decided when no rule matches.
    package var permissive: Bool
    /// The rules of each action, in order.
    package var rules: [Action: [Rule]]

    /// No rules, everything allowed: what a cluster without an ACL file runs with.
    package static let allowAll = ACLs(permissive: true, rules: [:])

    /// Creates ACLs.
    package init(permissive: Bool, rules: [Action: [Rule]]) {
        self.permissive = permissive
        self.rules = rules
    }

    /// Decides whether `principal` (nil when the caller has none) may perform `action` on
    /// `object`.
    package func decide(_ action: Action, principal: String?, object: String) -> Decision {
        for (index, rule) in (rules[action] ?? []).enumerated()
        where rule.principals.matches(principal) && rule.object.matches(object) {
            return Decision(allowed: rule.principals != .none && rule.object != .none, ruleIndex: index)
        }
        return Decision(allowed: permissive, ruleIndex: nil)
    }

    /// Checks that `principal` may perform `action` on `object`.
    ///
    /// - Throws: `KeelError` `.permissionDenied` naming the principal, the action, the object,
    ///   what decided it and what to do.
    package func authorize(_ action: Action, principal: String?, object: String) throws {
        let decision = decide(action, principal: principal, object: object)
        guard !decision.allowed else { return }
        let who = principal.map { "principal '\($0)'" } ?? "a caller without a principal"
        let why = decision.ruleIndex.map { "rule \($0) of \(action.rawValue) denies it" }
            ?? "no \(action.rawValue) rule allows it and the ACLs are not permissive"
        throw KeelError.permissionDenied(
            "\(who) may not \(action.verb) '\(object)': \(why); ask an operator to add a \(action.rawValue) rule for this principal to the ACLs file (KEEL_ACLS_FILE)"
        )
    }
}
