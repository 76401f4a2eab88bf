/// Members (dense integer slots) kept sorted by `(key, tie)`, ascending: the allocator's DRF
/// sorter for one level of the role tree or for the frameworks of one role.
///
/// Updating one member's key costs a dictionary look-up, two binary searches and one array
/// shift, so share changes are applied incrementally instead of re-sorting everything.
struct SortedMembers: Sendable {
    /// One member with its sort key.
    struct Entry: Sendable {
        /// The weighted dominant share.
        var key: Double
        /// A stable tie-breaker (registration order), so equal shares sort deterministically.
        var tie: Int
        /// The member's slot.
        var member: Int

        /// Whether `self` sorts before `other`.
        func precedes(_ other: Entry) -> Bool {
            key < other.key || (key == other.key && tie < other.tie)
        }
    }

    /// The members in ascending `(key, tie)` order.
    private(set) var entries: [Entry] = []
    private var current: [Int: Entry] = [:]

    /// How many members there are.
    var count: Int { entries.count }

    /// Whether `member` is present.
    func contains(_ member: Int) -> Bool { current[member] != nil }

    /// The current key of `member`, if present.
    func key(of member: Int) -> Double? { current[member]?.key }

    /// Inserts `member` or moves it to its place for a new key.
    mutating func upsert(_ member: Int, key: Double, tie: Int) {
        let entry = Entry(key: key, tie: tie, member: member)
        if let old = current[member] {
            if old.key == key && old.tie == tie { return }
            entries.remove(at: position(of: old))
        }
        current[member] = entry
        entries.insert(entry, at: insertionPoint(for: entry))
    }

    /// Removes `member` if present.
    mutating func remove(_ member: Int) {
        guard let old = current.removeValue(forKey: member) else { return }
        entries.remove(at: position(of: old))
    }

    /// Replaces every key at once (e.g. after the cluster total changed) and re-sorts;
    /// `keys[i]` is the new key of the member now at `entries[i]`.
    mutating func rekey(_ keys: [Double]) {
        for index in entries.indices {
            entries[index].key = keys[index]
            current[entries[index].member] = entries[index]
        }
        entries.sort { $0.precedes($1) }
    }

    /// The index of an entry known to be present.
    private func position(of entry: Entry) -> Int {
        var index = insertionPoint(for: entry)
        // The entry itself is the first one not preceding it; scan equal neighbours defensively.
        while index < entries.count && entries[index].member != entry.member { index += 1 }
        precondition(index < entries.count, "sorted members out of sync")
        return index
    }

    /// The first index whose entry does not precede `entry`.
    private func insertionPoint(for entry: Entry) -> Int {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].precedes(entry) { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
