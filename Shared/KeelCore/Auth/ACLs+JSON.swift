package import Foundation

extension ACLs {
    /// Parses an ACL document (JSON); `source` names it in error messages.
    ///
    /// Unknown keys are errors, so a misspelt rule list cannot silently allow everything.
    ///
    /// - Throws: `KeelError` `.invalidArgument` naming the place in the document that is wrong.
    package init(json data: Data, source: String) throws {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw KeelError.invalidArgument("\(source) is not valid JSON: \(error.localizedDescription)", cause: error)
        }
        guard let document = root as? [String: Any] else {
            throw KeelError.invalidArgument("\(source): the ACL document must be a JSON object")
        }
        let known = Set(Action.allCases.map(\.rawValue) + ["permissive"])
        if let unknown = document.keys.sorted().first(where: { !known.contains($0) }) {
            throw KeelError.invalidArgument(
                "\(source): unknown key '\(unknown)'; the keys are permissive, \(Action.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        var permissive = true
        if let value = document["permissive"] {
            guard let flag = value as? Bool else {
                throw KeelError.invalidArgument("\(source): permissive must be true or false")
            }
            permissive = flag
        }
        var rules: [Action: [Rule]] = [:]
        for action in Action.allCases {
            guard let value = document[action.rawValue] else { continue }
            guard let list = value as? [Any] else {
                throw KeelError.invalidArgument("\(source): \(action.rawValue) must be a list of rules")
            }
            rules[action] = try list.enumerated().map { index, item in
                let place = "\(source): \(action.rawValue)[\(index)]"
                guard let rule = item as? [String: Any] else {
                    throw KeelError.invalidArgument("\(place) must be an object with principals and \(action.objectKey)")
                }
                if let unknown = rule.keys.sorted().first(where: { $0 != "principals" && $0 != action.objectKey }) {
                    throw KeelError.invalidArgument("\(place): unknown key '\(unknown)'; a rule has principals and \(action.objectKey)")
                }
                return Rule(
                    principals: try Self.entity(rule["principals"], place: "\(place).principals"),
                    object: try Self.entity(rule[action.objectKey], place: "\(place).\(action.objectKey)")
                )
            }
        }
        self.init(permissive: permissive, rules: rules)
    }

    /// Loads an ACL file.
    ///
    /// - Throws: `KeelError` `.invalidArgument` when it cannot be read or parsed.
    package static func load(path: String) throws -> ACLs {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw KeelError.invalidArgument("cannot read the ACLs file \(path): check KEEL_ACLS_FILE / --acls-file", cause: error)
        }
        return try ACLs(json: data, source: path)
    }

    private static func entity(_ value: Any?, place: String) throws -> Entity {
        let help = "write {\"values\": [\"name\", ...]}, {\"type\": \"ANY\"} or {\"type\": \"NONE\"}"
        guard let value else { throw KeelError.invalidArgument("\(place) is missing; \(help)") }
        guard let object = value as? [String: Any], object.count == 1 else {
            throw KeelError.invalidArgument("\(place) is malformed; \(help)")
        }
        if let type = object["type"] {
            switch type as? String {
            case "ANY": return .any
            case "NONE": return .none
            default: throw KeelError.invalidArgument("\(place).type must be \"ANY\" or \"NONE\"")
            }
        }
        guard let values = object["values"] as? [Any] else {
            throw KeelError.invalidArgument("\(place) is malformed; \(help)")
        }
        let names = values.compactMap { $0 as? String }
        guard names.count == values.count, !names.isEmpty, names.allSatisfy({ !$0.isEmpty }) else {
            throw KeelError.invalidArgument("\(place).values must be a non-empty list of non-empty strings")
        }
        return .values(names)
    }
}
