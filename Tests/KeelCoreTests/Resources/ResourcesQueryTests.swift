import KeelCore
import Testing

@Suite("Resources queries")
struct ResourcesQueryTests {
    let sample = Resources(cpus: 4, mem: 4096, disk: 1000, gpus: 1, ports: [31000...32000])
        + Resources(cpus: 2, mem: 1024, role: "eng")
        + Resources(cpus: 1, role: "eng/web")
        + Resources(cpus: 8, role: "ops")

    @Test func amountsSumAcrossRoles() {
        #expect(sample.cpus == 15)
        #expect(sample.mem == 5120)
        #expect(sample.disk == 1000)
        #expect(sample.gpus == 1)
        #expect(sample.ports == [31000...32000])
        #expect(sample.scalar(named: "missing") == 0)
        #expect(sample.ranges(named: "missing").isEmpty)
        #expect(sample.set(named: "missing").isEmpty)
    }

    @Test func namesAndRoles() {
        #expect(sample.names == ["cpus", "mem", "disk", "gpus", "ports"])
        #expect(sample.roles == ["eng", "eng/web", "ops"])
    }

    @Test func reservationFilters() {
        #expect(sample.unreserved.cpus == 4)
        #expect(sample.reserved.cpus == 11)
        #expect(sample.reserved(role: "eng") == Resources(cpus: 2, mem: 1024, role: "eng"))
        #expect(sample.reserved(role: "nobody").isEmpty)
    }

    @Test func allocatableIncludesAncestorReservations() {
        let forWeb = sample.allocatable(to: "eng/web")
        #expect(forWeb.cpus == 7)
        #expect(forWeb.roles == ["eng", "eng/web"])
        let forEng = sample.allocatable(to: "eng")
        #expect(forEng.cpus == 6)
        let forOther = sample.allocatable(to: "other")
        #expect(forOther == sample.unreserved)
    }

    @Test func flattenedMovesEverythingToOneRole() {
        let flat = sample.flattened()
        #expect(flat.roles.isEmpty)
        #expect(flat.cpus == 15)
        #expect(flat.count == 5)
        let toOps = sample.flattened(to: "ops")
        #expect(toOps.roles == ["ops"])
        #expect(sample.flattened(to: "*") == flat)
    }

    @Test func starRoleMeansUnreserved() {
        let resource = Resource.scalar("cpus", 1, role: "*")
        #expect(resource.role == nil)
        #expect(!resource.isReserved)
    }
}
