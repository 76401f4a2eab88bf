extension Resources: CustomStringConvertible {
    /// The Mesos `--resources` text form, e.g. `cpus:2;mem:1024;ports:[31000-32000]`.
    ///
    /// Entries are `;`-separated, in the normalized order (so the text of equal bags is equal),
    /// reserved entries are written `name(role):value`, and ``init(parsing:)`` reads it back to
    /// an equal value. The empty bag prints as the empty string.
    package var description: String {
        map(\.description).joined(separator: ";")
    }

    /// Parses the Mesos `--resources` text form, as printed by ``description``.
    ///
    /// Grammar: entries separated by `;`, each `name[(role)]:value`, where value is a scalar
    /// (`2`, `0.5`), ranges in brackets (`[31000-32000,33000-33010]`; a lone `80` means `80-80`)
    /// or a set in braces (`{gpu0,gpu1}`). A role of `*` means unreserved. Whitespace around
    /// tokens and empty entries are ignored; repeated entries are summed.
    ///
    /// Throws ``KeelError/Code/invalidArgument`` naming the offending entry and the rule it
    /// broke, for both syntax errors and ``Resource/validate()`` failures.
    package init(parsing text: String) throws {
        self.init()
        for rawEntry in text.split(separator: ";") {
            let entry = Self.trimmed(rawEntry)
            guard !entry.isEmpty else { continue }
            insert(try Self.parseEntry(entry), trusted: true)
        }
    }

    private static let syntaxHint =
        "write entries as name:value or name(role):value separated by ';', e.g. 'cpus:2;mem(analytics):1024;ports:[31000-32000]'"

    private static func parseEntry(_ entry: Substring) throws -> Resource {
        guard let colon = entry.firstIndex(of: ":") else {
            throw KeelError.invalidArgument("resources entry '\(entry)' has no ':'; \(syntaxHint)")
        }
        let head = trimmed(entry[..<colon])
        let body = trimmed(entry[entry.index(after: colon)...])
        var name = head
        var role: String?
        if let open = head.firstIndex(of: "(") {
            guard head.last == ")" else {
                throw KeelError.invalidArgument(
                    "resources entry '\(entry)' has an unterminated role; write the role as name(role), e.g. cpus(analytics):2"
                )
            }
            name = trimmed(head[..<open])
            role = String(trimmed(head[head.index(after: open)..<head.index(before: head.endIndex)]))
        }
        let resourceName = String(name)
        let value = try parseValue(body, entry: entry, name: resourceName)
        do {
            return try Resource(validatingName: resourceName, value: value, role: role)
        } catch let error as KeelError {
            throw KeelError.invalidArgument(
                "invalid resources entry '\(entry)': \(error.message)", cause: error)
        }
    }

    private static func parseValue(_ body: Substring, entry: Substring, name: String) throws -> Resource.Value {
        if body.first == "[" {
            guard body.last == "]", body.count >= 2 else {
                throw KeelError.invalidArgument(
                    "resources entry '\(entry)' has ranges without a closing ']'; write ranges like [31000-32000,33000-33010]"
                )
            }
            let inner = body.dropFirst().dropLast()
            var bounds: [(begin: UInt64, end: UInt64)] = []
            for item in inner.split(separator: ",", omittingEmptySubsequences: false).map(trimmed) {
                if item.isEmpty && inner.allSatisfy(\.isWhitespace) { continue }
                bounds.append(try parseBound(item, entry: entry))
            }
            do {
                return .ranges(try ValueRanges(validating: bounds, for: name))
            } catch let error as KeelError {
                throw KeelError.invalidArgument(
                    "invalid resources entry '\(entry)': \(error.message)", cause: error)
            }
        }
        if body.first == "{" {
            guard body.last == "}", body.count >= 2 else {
                throw KeelError.invalidArgument(
                    "resources entry '\(entry)' has a set without a closing '}'; write sets like {gpu0,gpu1}")
            }
            let inner = body.dropFirst().dropLast()
            if inner.allSatisfy(\.isWhitespace) { return .set([]) }
            let items = inner.split(separator: ",", omittingEmptySubsequences: false).map { String(trimmed($0)) }
            return .set(Set(items))
        }
        let isNumeric = !body.isEmpty && body.allSatisfy { $0.isASCII && ($0.isNumber || "+-.eE".contains($0)) }
        guard isNumeric, let amount = Double(String(body)) else {
            throw KeelError.invalidArgument(
                "resources entry '\(entry)' has the value '\(body)', which is not a number, [ranges] or {set}; \(syntaxHint)"
            )
        }
        return .scalar(amount)
    }

    private static func parseBound(_ item: Substring, entry: Substring) throws -> (begin: UInt64, end: UInt64) {
        let parts = item.split(separator: "-", omittingEmptySubsequences: false).map(trimmed)
        let numbers = parts.map { UInt64(String($0)) }
        guard (1...2).contains(parts.count), let begin = numbers[0], let end = numbers[numbers.count - 1] else {
            throw KeelError.invalidArgument(
                "resources entry '\(entry)' has the range '\(item)'; write each range as begin-end with non-negative integers, e.g. 31000-32000"
            )
        }
        return (begin, end)
    }

    private static func trimmed(_ text: Substring) -> Substring {
        let start = text.firstIndex { !$0.isWhitespace } ?? text.endIndex
        let end = text[start...].lastIndex { !$0.isWhitespace }.map { text.index(after: $0) } ?? start
        return text[start..<end]
    }
}
