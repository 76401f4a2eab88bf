/// The behaviour shared by Keel's string identifiers (``FrameworkID``, ``AgentID``, ``TaskID``,
/// ``OfferID``).
///
/// An identifier is an opaque string compared byte-for-byte. Identifiers that come from users or
/// the network must be built with ``init(validating:)``; ``init(_:)`` skips validation and is
/// only for values Keel itself produced or already validated (e.g. read back from its own store).
package protocol KeelIdentifier: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// How the identifier is named in error messages, e.g. `"task ID"`.
    static var kindName: String { get }

    /// The raw identifier text.
    var value: String { get }

    /// Wraps `value` without validating it; use ``init(validating:)`` for untrusted input.
    init(_ value: String)
}

extension KeelIdentifier {
    /// The longest identifier accepted by ``init(validating:)``, in characters.
    package static var maximumLength: Int { 255 }

    /// Creates an identifier from untrusted text.
    ///
    /// Throws ``KeelError`` with code ``KeelError/Code/invalidArgument`` when `value` is empty,
    /// is longer than ``maximumLength`` characters, is `.` or `..` (identifiers become path
    /// components of sandboxes), or contains a character other than `A-Z`, `a-z`, `0-9`, `.`,
    /// `_` and `-`. The message names the rule that failed.
    package init(validating value: String) throws {
        try IdentifierRules.validate(value, kindName: Self.kindName)
        self.init(value)
    }

    /// A new, practically unique identifier: a random (version 4) UUID in lowercase,
    /// e.g. `3f2b8c1e-9d4a-4e6b-8f00-1c2d3e4f5a6b`.
    package static func random() -> Self {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    /// Like ``random()`` but drawing bits from `generator`, so tests can get reproducible IDs.
    package static func random(using generator: inout some RandomNumberGenerator) -> Self {
        Self(IdentifierRules.uuidString(using: &generator))
    }

    /// Orders identifiers by their raw text (Unicode scalar order for the ASCII alphabet).
    package static func < (lhs: Self, rhs: Self) -> Bool {
        lhs.value < rhs.value
    }

    /// The raw identifier text.
    package var description: String { value }
}

/// The validation and generation rules shared by all identifiers.
enum IdentifierRules {
    static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    static func validate(_ value: String, kindName: String) throws {
        let allowedText = "letters A-Z and a-z, digits 0-9, '.', '_' and '-'"
        if value.isEmpty {
            throw KeelError.invalidArgument(
                "\(kindName) must not be empty; supply 1 to 255 characters made of \(allowedText)")
        }
        if let bad = value.first(where: { !$0.isASCII || !isAllowed($0.asciiValue ?? 0) }) {
            throw KeelError.invalidArgument(
                "\(kindName) '\(value)' contains the character \(quoted(bad)), which is not allowed; use only \(allowedText)"
            )
        }
        // Only ASCII remains, so the UTF-8 count equals the character count.
        if value.utf8.count > 255 {
            throw KeelError.invalidArgument(
                "\(kindName) is \(value.utf8.count) characters long, but at most 255 are allowed; use a shorter ID")
        }
        if value == "." || value == ".." {
            throw KeelError.invalidArgument(
                "\(kindName) must not be '\(value)' because IDs are used as directory names; choose another ID")
        }
    }

    private static func quoted(_ character: Character) -> String {
        let scalars = character.unicodeScalars.map { scalar -> String in
            scalar.isASCII && scalar.value >= 0x20 && scalar.value < 0x7F
                ? String(scalar) : "U+\(String(scalar.value, radix: 16, uppercase: true))"
        }
        return "'\(scalars.joined())'"
    }

    static func uuidString(using generator: inout some RandomNumberGenerator) -> String {
        var bytes = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        bytes[6] = (bytes[6] & 0x0F) | 0x40  // version 4
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
        let digits = Array("0123456789abcdef")
        var text = ""
        text.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 {
                text.append("-")
            }
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return text
    }
}
