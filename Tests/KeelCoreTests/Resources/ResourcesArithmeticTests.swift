import KeelCore
import Testing

@Suite("Resources arithmetic")
struct ResourcesArithmeticTests {
    @Test func fixedPointAddition() {
        let sum = Resources(cpus: 0.1) + Resources(cpus: 0.2)
        #expect(sum.cpus == 0.3)
        #expect(sum == Resources(cpus: 0.3))
    }

    @Test func repeatedAdditionDoesNotDrift() {
        var total = Resources()
        for _ in 0..<10 { total += Resources(cpus: 0.1) }
        #expect(total.cpus == 1.0)
        for _ in 0..<10 { total -= Resources(cpus: 0.1) }
        #expect(total.isEmpty)
    }

    @Test func scalarsRoundToThreeDecimals() {
        let resources = Resources(cpus: 0.12345, mem: 0.0004)
        #expect(resources.cpus == 0.123)
        #expect(resources.mem == 0)
        #expect(resources.count == 1)
    }

    @Test func sameKeyEntriesMerge() {
        let resources: Resources = [.scalar("cpus", 1), .scalar("cpus", 2), .scalar("mem", 128)]
        #expect(resources.count == 2)
        #expect(resources.cpus == 3)
    }

    @Test func rolesAreKeptSeparate() {
        let resources = Resources(cpus: 1) + Resources(cpus: 2, role: "analytics")
        #expect(resources.count == 2)
        #expect(resources.cpus == 3)
        #expect(resources.unreserved == Resources(cpus: 1))
        #expect(resources.reserved(role: "analytics") == Resources(cpus: 2, role: "analytics"))
        #expect(!Resources(cpus: 4).contains(Resources(cpus: 1, role: "analytics")))
        #expect(!Resources(cpus: 4, role: "analytics").contains(Resources(cpus: 1)))
    }

    @Test func rangesMergeOnAddition() {
        let a = Resources(ports: [31000...31500])
        let b = Resources(ports: [31501...32000, 40000...40000])
        #expect((a + b).ports == [31000...32000, 40000...40000])
        #expect((a + b).count == 1)
    }

    @Test func rangesSplitOnSubtraction() {
        let whole = Resources(ports: [1...10])
        let difference = whole - Resources(ports: [3...5])
        #expect(difference.ports == [1...2, 6...10])
        let checked = try? whole.subtracting(Resources(ports: [3...5]))
        #expect(checked == difference)
    }

    @Test func setsUnionAndDifference() {
        let a: Resources = [.set("devices", ["gpu0", "gpu1"])]
        let b: Resources = [.set("devices", ["gpu1", "gpu2"])]
        #expect((a + b).set(named: "devices") == ["gpu0", "gpu1", "gpu2"])
        #expect((a - b).set(named: "devices") == ["gpu0"])
        #expect((a - a).isEmpty)
        #expect((a + b).contains(a))
        #expect(!a.contains(b))
    }

    @Test func saturatingSubtraction() {
        let have = Resources(cpus: 1, mem: 128)
        let difference = have - Resources(cpus: 4, disk: 10)
        #expect(difference == Resources(mem: 128))
    }

    @Test func subtractingThrowsWhenNotContained() {
        let have = Resources(cpus: 1, mem: 128)
        let error = #expect(throws: KeelError.self) { try have.subtracting(Resources(cpus: 1.5)) }
        #expect(error?.code == .failedPrecondition)
        #expect(error?.message.contains("'cpus:0.5' is not available") == true)
    }

    @Test func subtractLeavesValueUnchangedOnError() {
        var have = Resources(cpus: 1)
        #expect(throws: KeelError.self) { try have.subtract(Resources(mem: 1)) }
        #expect(have == Resources(cpus: 1))
        let result = try? have.subtracting(Resources(cpus: 0.25))
        #expect(result == Resources(cpus: 0.75))
    }

    @Test func containsCoversEachKind() {
        let have = Resources(cpus: 2, mem: 1024, ports: [31000...32000]) + Resource.set("devices", ["a", "b"])
        #expect(have.contains(Resources(cpus: 2)))
        #expect(have.contains(Resources(cpus: 1.999, mem: 1024)))
        #expect(!have.contains(Resources(cpus: 2.001)))
        #expect(have.contains(Resources(ports: [31000...31010, 31999...32000])))
        #expect(!have.contains(Resources(ports: [32000...32001])))
        #expect(have.contains(Resource.set("devices", ["b"])))
        #expect(!have.contains(Resource.set("devices", ["c"])))
        #expect(have.contains(Resources()))
        #expect(have.contains(have))
        #expect(have.contains(Resource.scalar("cpus", 0)))
        #expect(!have.contains(Resource.scalar("cpus", -1)))
    }

    @Test func emptyEntriesAreRemoved() {
        let resources: Resources = [
            .scalar("cpus", 0), .ranges("ports", ValueRanges()), .set("devices", []), .scalar("mem", 1),
        ]
        #expect(resources == Resources(mem: 1))
        #expect((Resources(cpus: 1) - Resources(cpus: 1)).isEmpty)
    }

    @Test func invalidResourcesAreDroppedByNonThrowingInit() {
        let resources: Resources = [
            .scalar("cpus", -1), .scalar("mem", .nan), .scalar("", 1), .ranges("cpus", [1...2]),
            .scalar("disk", 10),
        ]
        #expect(resources == Resources(disk: 10))
        #expect(Resources() + Resource.scalar("cpus", .infinity) == Resources())
    }

    @Test func orderIsCanonical() {
        let a: Resources = [.scalar("zeta", 1), .scalar("mem", 2), .scalar("cpus", 1, role: "r"), .scalar("cpus", 1)]
        let b: Resources = [.scalar("cpus", 1), .scalar("cpus", 1, role: "r"), .scalar("mem", 2), .scalar("zeta", 1)]
        #expect(a == b)
        let names = a.map(\.description)
        #expect(names == ["cpus:1", "cpus(r):1", "mem:2", "zeta:1"])
    }
}
