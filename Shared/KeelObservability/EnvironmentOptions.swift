package import Logging

/// Resolves a daemon setting from its flag, then its `KEEL_*` variable, then its default.
///
/// `main` builds one from the process environment and passes resolved values inward; nothing
/// deeper reads the environment.
package struct EnvironmentOptions: Sendable {
    private let environment: [String: String]

    /// Creates a resolver over the given environment.
    package init(_ environment: [String: String]) {
        self.environment = environment
    }

    /// The flag's value, else the variable's, else `fallback`.
    package func string(_ flag: String?, _ variable: String, default fallback: String) -> String {
        if let flag { return flag }
        if let value = environment[variable], !value.isEmpty { return value }
        return fallback
    }

    /// Like ``string(_:_:default:)`` but with no default.
    package func optionalString(_ flag: String?, _ variable: String) -> String? {
        if let flag { return flag }
        if let value = environment[variable], !value.isEmpty { return value }
        return nil
    }

    /// A log level by name.
    package func logLevel(_ flag: String?, _ variable: String = "KEEL_LOG_LEVEL") throws -> Logger.Level {
        let text = string(flag, variable, default: "info").lowercased()
        guard let level = Logger.Level(rawValue: text) else {
            throw OptionError("\(variable)/--log-level '\(text)' is not a log level: use trace, debug, info, notice, warning, error or critical")
        }
        return level
    }

    /// A duration written as `500ms`, `5s`, `2m` or plain seconds.
    package func duration(_ flag: String?, _ variable: String, default fallback: Duration) throws -> Duration {
        guard let text = optionalString(flag, variable) else { return fallback }
        guard let value = Self.parseDuration(text) else {
            throw OptionError("\(variable) '\(text)' is not a duration: write e.g. 500ms, 5s, 2m, 1h or 7d")
        }
        return value
    }

    /// Whether a boolean variable is set to 1/true/yes.
    package func flag(_ flag: Bool, _ variable: String) -> Bool {
        if flag { return true }
        return ["1", "true", "yes"].contains(environment[variable]?.lowercased() ?? "")
    }

    /// Parses `500ms`, `5s`, `2m`, `1h`, `7d` or plain seconds.
    package static func parseDuration(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let number = Double(text.dropLast(suffix.count)), number >= 0, number.isFinite else { return nil }
            return .milliseconds(Int64(number * scale * 1000))
        }
        guard let seconds = Double(text), seconds >= 0, seconds.isFinite else { return nil }
        return .milliseconds(Int64(seconds * 1000))
    }
}

/// A configuration value that could not be used; the message says which and how to fix it.
package struct OptionError: Error, CustomStringConvertible {
    /// What was wrong and what to write instead.
    package var description: String

    /// Creates the error.
    package init(_ description: String) {
        self.description = description
    }
}
