import KeelCore

/// A decline filter: the framework refused `resources` on one agent and must not be offered
/// them again there before `until` (Mesos' refuse filter).
///
/// The filter applies while what would be offered is contained in `resources`; if the agent has
/// more to offer (another framework returned resources), it does not apply, as in Mesos.
struct Filter: Sendable {
    /// The declined resources.
    var resources: Resources
    /// When the filter ends; at or after this instant it is ignored and dropped.
    var until: Instant
    /// The agent's free-resources version at which the filter was last found to apply, or -1.
    var validatedVersion: Int
}

/// A growable set of small non-negative integers (framework slots), one bit each, so the
/// allocator can test "is this framework filtered on this agent" and "are all eligible
/// frameworks filtered on this agent" without hashing.
struct BitSet: Sendable {
    private(set) var words: [UInt64] = []

    /// Whether `index` is in the set.
    func contains(_ index: Int) -> Bool {
        let word = index >> 6
        return word < words.count && words[word] & (1 << UInt64(index & 63)) != 0
    }

    /// Adds `index`.
    mutating func insert(_ index: Int) {
        let word = index >> 6
        if word >= words.count { words.append(contentsOf: repeatElement(0, count: word - words.count + 1)) }
        words[word] |= 1 << UInt64(index & 63)
    }

    /// Removes `index`.
    mutating func remove(_ index: Int) {
        let word = index >> 6
        guard word < words.count else { return }
        words[word] &= ~(1 << UInt64(index & 63))
    }

    /// Whether every member of `self` is also in `other`.
    func isSubset(of other: BitSet) -> Bool {
        for index in words.indices where words[index] != 0 {
            let theirs = index < other.words.count ? other.words[index] : 0
            if words[index] & ~theirs != 0 { return false }
        }
        return true
    }

    /// Whether the set is empty.
    var isEmpty: Bool { words.allSatisfy { $0 == 0 } }

    /// The members in ascending order.
    var members: [Int] {
        var result: [Int] = []
        for (index, word) in words.enumerated() where word != 0 {
            var bits = word
            while bits != 0 {
                let bit = bits.trailingZeroBitCount
                result.append(index << 6 | bit)
                bits &= bits - 1
            }
        }
        return result
    }
}
