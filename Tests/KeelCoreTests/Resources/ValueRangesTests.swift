import KeelCore
import Testing

@Suite("ValueRanges")
struct ValueRangesTests {
    @Test func coalescesOverlappingAndAdjacentRanges() {
        let ranges = ValueRanges([20...30, 1...5, 6...10, 25...40, 50...50])
        #expect(ranges.ranges == [1...10, 20...40, 50...50])
        #expect(ranges.description == "[1-10,20-40,50-50]")
    }

    @Test func emptyRanges() {
        let empty = ValueRanges()
        #expect(empty.isEmpty)
        #expect(empty.description == "[]")
        #expect(empty.valueCount == 0)
        #expect(ValueRanges([1...2]).contains(empty))
        #expect(empty.contains(empty))
    }

    @Test func subtractionSplitsRanges() {
        let whole: ValueRanges = [1...10]
        let hole: ValueRanges = [3...5]
        #expect(whole.subtracting(hole) == [1...2, 6...10])
    }

    @Test func subtractionAtEdgesAndAcrossRanges() {
        let ranges: ValueRanges = [1...10, 20...30]
        #expect(ranges.subtracting([1...3]) == [4...10, 20...30])
        #expect(ranges.subtracting([8...22]) == [1...7, 23...30])
        #expect(ranges.subtracting([0...100]) == ValueRanges())
        #expect(ranges.subtracting([11...19]) == ranges)
        #expect(ranges.subtracting([2...2, 4...4, 25...26]) == [1...1, 3...3, 5...10, 20...24, 27...30])
    }

    @Test func unionMerges() {
        let a: ValueRanges = [31000...31500]
        let b: ValueRanges = [31501...32000, 33000...33010]
        #expect(a.union(b) == [31000...32000, 33000...33010])
    }

    @Test func containsValuesAndRanges() {
        let ranges: ValueRanges = [10...20, 30...40]
        #expect(ranges.contains(10))
        #expect(ranges.contains(40))
        #expect(!ranges.contains(25))
        #expect(!ranges.contains(9))
        #expect(ranges.contains([12...15, 30...40]))
        #expect(!ranges.contains([15...35]))
        #expect(!ranges.contains([41...41]))
    }

    @Test func extremeBounds() {
        let all: ValueRanges = [0...UInt64.max]
        #expect(all.valueCount == UInt64.max)
        #expect(ValueRanges([0...5, UInt64.max...UInt64.max, 6...(UInt64.max - 1)]) == all)
        #expect(all.subtracting([0...0]) == [1...UInt64.max])
        #expect(all.subtracting([UInt64.max...UInt64.max]) == [0...(UInt64.max - 1)])
    }

    @Test func valueCount() {
        let ports: ValueRanges = [31000...32000, 33000...33010]
        #expect(ports.valueCount == 1012)
    }

    @Test func validatingAcceptsAdjacentPairs() throws {
        let ranges = try ValueRanges(validating: [(begin: 3, end: 4), (begin: 1, end: 2)])
        #expect(ranges == [1...4])
    }

    @Test func validatingRejectsReversedBounds() {
        let error = #expect(throws: KeelError.self) {
            try ValueRanges(validating: [(begin: 10, end: 5)], for: "ports")
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("resource 'ports' has range 10-5 whose begin is greater than its end") == true)
    }

    @Test func validatingRejectsOverlaps() {
        let error = #expect(throws: KeelError.self) {
            try ValueRanges(validating: [(begin: 5, end: 20), (begin: 1, end: 10)])
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("overlapping ranges 1-10 and 5-20") == true)
    }
}
