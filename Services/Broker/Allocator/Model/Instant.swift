/// A point in time for the allocator, in nanoseconds since an arbitrary epoch chosen by the
/// caller (the broker passes its clock reading in; the allocator never reads a clock).
///
/// Using a plain value keeps every allocator operation deterministic for its inputs, so tests
/// and benchmarks can replay a scenario exactly.
package struct Instant: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// Nanoseconds since the caller's epoch.
    package var nanoseconds: Int64

    /// The instant `nanoseconds` after the epoch.
    package init(nanoseconds: Int64) {
        self.nanoseconds = nanoseconds
    }

    /// The epoch itself.
    package static let zero = Instant(nanoseconds: 0)

    /// An instant later than any the allocator will be given; a filter until `.distantFuture`
    /// never expires.
    package static let distantFuture = Instant(nanoseconds: .max)

    /// The instant `seconds` after the epoch.
    package static func seconds(_ seconds: Double) -> Instant {
        Instant(nanoseconds: Self.nanos(seconds))
    }

    /// This instant moved by `seconds` (negative moves back), saturating at the representable range.
    package func advanced(bySeconds seconds: Double) -> Instant {
        let (sum, overflow) = nanoseconds.addingReportingOverflow(Self.nanos(seconds))
        if overflow { return seconds > 0 ? .distantFuture : Instant(nanoseconds: .min) }
        return Instant(nanoseconds: sum)
    }

    /// Orders instants by time.
    package static func < (lhs: Instant, rhs: Instant) -> Bool {
        lhs.nanoseconds < rhs.nanoseconds
    }

    /// Seconds since the epoch, e.g. `12.5s`, or `never` for ``distantFuture``.
    package var description: String {
        self == .distantFuture ? "never" : "\(Double(nanoseconds) / 1e9)s"
    }

    private static func nanos(_ seconds: Double) -> Int64 {
        let scaled = seconds * 1e9
        if !(scaled < 9.2e18) { return .max }
        if !(scaled > -9.2e18) { return .min }
        return Int64(scaled.rounded())
    }
}
