/// A set of `UInt64` values stored as closed ranges, such as the ports `[31000-32000,33000-33010]`.
///
/// Always normalized: ``ranges`` is sorted, and overlapping or adjacent ranges are merged
/// (`[1-5,6-10]` becomes `[1-10]`), so two values are equal exactly when they contain the same
/// numbers. Build from untrusted `(begin, end)` pairs with ``init(validating:for:)``, which
/// rejects what Mesos rejects instead of silently fixing it.
package struct ValueRanges: Hashable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
    /// The sorted, disjoint, non-adjacent ranges.
    package private(set) var ranges: [ClosedRange<UInt64>]

    /// The empty set of values.
    package init() {
        ranges = []
    }

    /// Creates the union of `ranges`; overlapping and adjacent ranges are merged.
    package init(_ ranges: some Sequence<ClosedRange<UInt64>>) {
        self.ranges = Self.coalesce(Array(ranges))
    }

    /// Creates the union of the listed ranges, e.g. `[31000...32000, 33000...33010]`.
    package init(arrayLiteral elements: ClosedRange<UInt64>...) {
        self.init(elements)
    }

    /// Creates ranges from untrusted `(begin, end)` pairs, such as those read off the wire.
    ///
    /// Throws ``KeelError/Code/invalidArgument`` if any pair has `begin > end` or if two pairs
    /// overlap (Mesos rejects both). Adjacent pairs such as `1-2,3-4` are accepted and merged.
    /// `resourceName`, when given, is named in the error message.
    package init(validating bounds: [(begin: UInt64, end: UInt64)], for resourceName: String? = nil) throws {
        let subject = resourceName.map { "resource '\($0)' has " } ?? ""
        var checked: [ClosedRange<UInt64>] = []
        checked.reserveCapacity(bounds.count)
        for bound in bounds {
            guard bound.begin <= bound.end else {
                throw KeelError.invalidArgument(
                    "\(subject)range \(bound.begin)-\(bound.end) whose begin is greater than its end; write ranges as begin-end with begin <= end"
                )
            }
            checked.append(bound.begin...bound.end)
        }
        let sorted = checked.sorted { $0.lowerBound < $1.lowerBound }
        for (first, second) in zip(sorted, sorted.dropFirst()) where first.overlaps(second) {
            throw KeelError.invalidArgument(
                "\(subject)overlapping ranges \(Self.format(first)) and \(Self.format(second)); list each value only once"
            )
        }
        self.ranges = Self.coalesce(sorted)
    }

    /// Whether the set holds no values.
    package var isEmpty: Bool { ranges.isEmpty }

    /// How many values the set holds (e.g. the number of ports), saturating at `UInt64.max`.
    package var valueCount: UInt64 {
        var total: UInt64 = 0
        for range in ranges {
            let (width, overflow1) = (range.upperBound - range.lowerBound).addingReportingOverflow(1)
            let (sum, overflow2) = total.addingReportingOverflow(width)
            if overflow1 || overflow2 { return .max }
            total = sum
        }
        return total
    }

    /// Whether `value` is in the set.
    package func contains(_ value: UInt64) -> Bool {
        // Binary search for the last range starting at or before `value`.
        var low = 0
        var high = ranges.count
        while low < high {
            let middle = (low + high) / 2
            if ranges[middle].lowerBound <= value { low = middle + 1 } else { high = middle }
        }
        return low > 0 && ranges[low - 1].contains(value)
    }

    /// Whether every value in `other` is also in `self`.
    package func contains(_ other: ValueRanges) -> Bool {
        var index = 0
        for range in other.ranges {
            while index < ranges.count && ranges[index].upperBound < range.lowerBound {
                index += 1
            }
            // `self` is coalesced, so `range` must fit inside a single range of `self`.
            guard index < ranges.count,
                ranges[index].lowerBound <= range.lowerBound,
                range.upperBound <= ranges[index].upperBound
            else { return false }
        }
        return true
    }

    /// The values in `self`, `other`, or both.
    package func union(_ other: ValueRanges) -> ValueRanges {
        var result = ValueRanges()
        result.ranges = Self.coalesce(ranges + other.ranges)
        return result
    }

    /// The values in `self` that are not in `other`; splits ranges where needed
    /// (`[1-10]` minus `[3-5]` is `[1-2,6-10]`).
    package func subtracting(_ other: ValueRanges) -> ValueRanges {
        var result: [ClosedRange<UInt64>] = []
        var index = 0
        for range in ranges {
            var lower = range.lowerBound
            var exhausted = false
            while index < other.ranges.count && other.ranges[index].upperBound < lower {
                index += 1
            }
            var probe = index
            while probe < other.ranges.count && other.ranges[probe].lowerBound <= range.upperBound {
                let hole = other.ranges[probe]
                if hole.lowerBound > lower {
                    result.append(lower...(hole.lowerBound - 1))
                }
                if hole.upperBound >= range.upperBound {
                    exhausted = true
                    break
                }
                lower = hole.upperBound + 1
                probe += 1
            }
            if !exhausted {
                result.append(lower...range.upperBound)
            }
        }
        var difference = ValueRanges()
        difference.ranges = result
        return difference
    }

    /// The Mesos text form: `[begin-end,begin-end]`, e.g. `[31000-32000,33000-33010]`;
    /// a single value is written `80-80`.
    package var description: String {
        "[" + ranges.map(Self.format).joined(separator: ",") + "]"
    }

    private static func format(_ range: ClosedRange<UInt64>) -> String {
        "\(range.lowerBound)-\(range.upperBound)"
    }

    /// Sorts `ranges` and merges overlapping or adjacent ones.
    private static func coalesce(_ ranges: [ClosedRange<UInt64>]) -> [ClosedRange<UInt64>] {
        let sorted = ranges.sorted { $0.lowerBound < $1.lowerBound }
        var merged: [ClosedRange<UInt64>] = []
        merged.reserveCapacity(sorted.count)
        for range in sorted {
            if let last = merged.last,
                last.upperBound == .max || range.lowerBound <= last.upperBound + 1
            {
                merged[merged.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
            } else {
                merged.append(range)
            }
        }
        return merged
    }
}
