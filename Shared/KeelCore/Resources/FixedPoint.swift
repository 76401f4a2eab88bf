/// Fixed-point helpers for scalar resource quantities.
///
/// Like Mesos, Keel does scalar arithmetic on integers counting thousandths ("millis") so that
/// `0.1 + 0.2 == 0.3` exactly and repeated add/subtract cycles never drift. Values are rounded
/// half away from zero to three decimal places.
enum FixedPoint {
    /// Scalars per unit of millis.
    static let scale: Double = 1000

    /// `value` in thousandths, rounded; non-finite or out-of-range values saturate
    /// (NaN becomes 0). Validation rejects such values before they reach arithmetic.
    static func millis(_ value: Double) -> Int64 {
        guard !value.isNaN else { return 0 }
        let scaled = (value * scale).rounded(.toNearestOrAwayFromZero)
        if scaled >= 9.2e18 { return Int64.max }
        if scaled <= -9.2e18 { return Int64.min }
        return Int64(scaled)
    }

    /// The `Double` closest to `millis / 1000`; exact for every value Keel accepts.
    static func value(_ millis: Int64) -> Double {
        Double(millis) / scale
    }

    /// `value` rounded to three decimal places.
    static func rounded(_ value: Double) -> Double {
        guard value.isFinite else { return value }
        return Self.value(millis(value))
    }

    /// `lhs + rhs`, saturating instead of overflowing.
    static func add(_ lhs: Int64, _ rhs: Int64) -> Int64 {
        let (sum, overflow) = lhs.addingReportingOverflow(rhs)
        guard overflow else { return sum }
        return rhs > 0 ? Int64.max : Int64.min
    }

    /// `lhs - rhs`, saturating instead of overflowing.
    static func subtract(_ lhs: Int64, _ rhs: Int64) -> Int64 {
        let (difference, overflow) = lhs.subtractingReportingOverflow(rhs)
        guard overflow else { return difference }
        return rhs > 0 ? Int64.min : Int64.max
    }

    /// The Mesos text form of a scalar: at most three decimals, no trailing zeros
    /// (`2`, `0.5`, `1024`, `0.125`).
    static func format(_ value: Double) -> String {
        guard value.isFinite else { return "\(value)" }
        let millis = millis(value)
        let negative = millis < 0
        let magnitude = millis.magnitude
        let whole = magnitude / 1000
        var fraction = magnitude % 1000
        var text = negative ? "-\(whole)" : "\(whole)"
        guard fraction != 0 else { return text }
        var digits = 3
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        let fractionText = String(fraction)
        text += "." + String(repeating: "0", count: digits - fractionText.count) + fractionText
        return text
    }
}
