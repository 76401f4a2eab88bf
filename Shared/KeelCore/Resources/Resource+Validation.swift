extension Resource {
    /// The largest scalar accepted (10^12, e.g. an exbibyte of memory in MiB), chosen so that
    /// every accepted value is exact in fixed-point thousandths and in a `Double`.
    package static let maximumScalar: Double = 1e12

    /// The longest resource name or set item accepted, in characters.
    package static let maximumNameLength = 255

    /// Checks the resource against the rules Keel and Mesos enforce, throwing
    /// ``KeelError/Code/invalidArgument`` with a message naming the resource and the rule.
    ///
    /// - the name is non-empty, at most 255 characters of `A-Z a-z 0-9 . _ - /`;
    /// - well-known names have their kind: `cpus`, `mem`, `disk`, `gpus` are scalars, `ports` ranges;
    /// - scalars are finite, not negative and at most ``maximumScalar``;
    /// - set items are non-empty and use the same alphabet as names;
    /// - the role, if any, satisfies ``ResourceRole/validate(_:)``.
    ///
    /// Ranges are always well-formed once they are a ``ValueRanges``; validate raw wire pairs
    /// with ``ValueRanges/init(validating:for:)``.
    package func validate() throws {
        try Self.validate(name: name)
        if let required = Name.requiredKinds[name], required != kind {
            throw KeelError.invalidArgument(
                "resource '\(name)' must be a \(required) value (e.g. \(Self.example(for: name))), but a \(kind) value was given"
            )
        }
        switch value {
        case .scalar(let amount):
            try validate(scalar: amount)
        case .ranges:
            break
        case .set(let items):
            for item in items.sorted() {
                try validate(setItem: item)
            }
        }
        if let role {
            do {
                try ResourceRole.validate(role)
            } catch let error as KeelError {
                throw KeelError.invalidArgument("resource '\(name)' has an invalid role: \(error.message)", cause: error)
            }
        }
    }

    /// Throws ``KeelError/Code/invalidArgument`` unless `name` is a valid resource name.
    package static func validate(name: String) throws {
        if name.isEmpty {
            throw KeelError.invalidArgument(
                "resource name must not be empty; use a name such as 'cpus', 'mem', 'disk', 'gpus', 'ports' or a custom name"
            )
        }
        if name.utf8.count > maximumNameLength {
            throw KeelError.invalidArgument(
                "resource name '\(name.prefix(32))...' is \(name.utf8.count) characters long, but at most \(maximumNameLength) are allowed"
            )
        }
        if let bad = name.first(where: { !isNameCharacter($0) }) {
            throw KeelError.invalidArgument(
                "resource name '\(name)' contains the character '\(bad)', which is not allowed; use only letters, digits, '.', '_', '-' and '/'"
            )
        }
    }

    static func isNameCharacter(_ character: Character) -> Bool {
        guard let ascii = character.asciiValue else { return false }
        return IdentifierRules.isAllowed(ascii) || character == "/"
    }

    private func validate(scalar amount: Double) throws {
        if !amount.isFinite {
            throw KeelError.invalidArgument(
                "resource '\(name)' has the non-finite value \(amount); scalar quantities must be finite numbers")
        }
        if amount < 0 {
            throw KeelError.invalidArgument(
                "resource '\(name)' has the negative value \(FixedPoint.format(amount)); scalar quantities must be zero or positive"
            )
        }
        if amount > Self.maximumScalar {
            throw KeelError.invalidArgument(
                "resource '\(name)' has the value \(amount), which exceeds the maximum of 1000000000000; use a smaller quantity"
            )
        }
    }

    private func validate(setItem item: String) throws {
        if item.isEmpty {
            throw KeelError.invalidArgument(
                "resource '\(name)' has an empty set item; remove it or give it a name")
        }
        if item.utf8.count > Self.maximumNameLength {
            throw KeelError.invalidArgument(
                "resource '\(name)' has a set item of \(item.utf8.count) characters, but at most \(Self.maximumNameLength) are allowed"
            )
        }
        if let bad = item.first(where: { !Self.isNameCharacter($0) }) {
            throw KeelError.invalidArgument(
                "resource '\(name)' has the set item '\(item)' containing '\(bad)', which is not allowed; use only letters, digits, '.', '_', '-' and '/'"
            )
        }
    }

    private static func example(for name: String) -> String {
        name == Name.ports ? "ports:[31000-32000]" : "\(name):2"
    }
}
