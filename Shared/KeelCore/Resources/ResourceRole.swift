/// Rules for reservation roles, such as `analytics` or the hierarchical `eng/frontend`.
///
/// A role is one or more `/`-separated components. Each component is 1 or more of `A-Z`, `a-z`,
/// `0-9`, `.`, `_`, `-`, must not be `.` or `..`, and must not start with `-` (Mesos' rules,
/// restricted to a portable alphabet). The whole role is at most 255 characters. Keel models
/// "unreserved" as a `nil` role; the Mesos spelling `*` is accepted only where text is parsed.
package enum ResourceRole {
    /// The Mesos name for "unreserved"; ``Resource`` turns it into a `nil` role.
    package static let unreserved = "*"

    /// The longest role accepted, in characters.
    package static let maximumLength = 255

    /// Throws ``KeelError/Code/invalidArgument`` if `role` breaks the rules above; the message
    /// names the rule.
    package static func validate(_ role: String) throws {
        if role == unreserved {
            throw KeelError.invalidArgument(
                "role '*' means unreserved and cannot be used as a reservation; use no role (nil) instead")
        }
        if role.isEmpty {
            throw KeelError.invalidArgument(
                "role must not be empty; use no role (nil) for unreserved resources, or a name like 'analytics'")
        }
        if role.utf8.count > maximumLength {
            throw KeelError.invalidArgument(
                "role '\(role.prefix(32))...' is \(role.utf8.count) characters long, but at most \(maximumLength) are allowed"
            )
        }
        for component in role.split(separator: "/", omittingEmptySubsequences: false) {
            try validate(component: component, of: role)
        }
    }

    /// `role` and every role it is nested in, outermost first: `a/b/c` gives `a`, `a/b`, `a/b/c`.
    ///
    /// Resources reserved for an ancestor may be used by its descendants, as in Mesos.
    package static func lineage(of role: String) -> [String] {
        var result: [String] = []
        var prefix = ""
        for component in role.split(separator: "/", omittingEmptySubsequences: false) {
            prefix = prefix.isEmpty ? String(component) : prefix + "/" + component
            result.append(prefix)
        }
        return result
    }

    private static func validate(component: Substring, of role: String) throws {
        if component.isEmpty {
            throw KeelError.invalidArgument(
                "role '\(role)' has an empty component; separate nested roles with single '/' and no leading or trailing '/'"
            )
        }
        if component == "." || component == ".." {
            throw KeelError.invalidArgument(
                "role '\(role)' has the component '\(component)', which is not allowed; choose another name")
        }
        if component.hasPrefix("-") {
            throw KeelError.invalidArgument(
                "role '\(role)' has a component starting with '-', which is not allowed; start it with a letter or digit"
            )
        }
        if let bad = component.first(where: { !$0.isASCII || !IdentifierRules.isAllowed($0.asciiValue ?? 0) }) {
            throw KeelError.invalidArgument(
                "role '\(role)' contains the character '\(bad)', which is not allowed; use only letters, digits, '.', '_', '-' and '/' between nested roles"
            )
        }
    }
}
