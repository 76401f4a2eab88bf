import KeelCore
import LauncherCore
import Testing

/// What a node offers: detected amounts, operator overrides, static reservations carved out of
/// the detected amounts, and the fault domain.
@Suite("Node resources")
struct NodeResourcesTests {
    let detected = Resources(cpus: 8, mem: 16384, disk: 100_000, ports: [31000...32000])

    @Test("an unreserved override replaces the detected amount of that name")
    func overrideReplaces() throws {
        let result = try NodeResources.applying("cpus:4;gpus:1", to: detected)
        #expect(result.cpus == 4)
        #expect(result.gpus == 1)
        #expect(result.mem == 16384)
    }

    @Test("static reservations alone are carved out of the detected amount; the rest stays unreserved")
    func staticReservationsCarveOut() throws {
        let result = try NodeResources.applying("cpus(eng):2;mem(eng):4096", to: detected)
        #expect(result.unreserved.cpus == 6)
        #expect(result.reserved(role: "eng").cpus == 2)
        #expect(result.unreserved.mem == 12288)
        #expect(result.reserved(role: "eng").mem == 4096)
        #expect(result.cpus == 8)
        // With an unreserved amount given too, the overrides are the whole amount.
        let explicit = try NodeResources.applying("cpus:1;cpus(eng):2", to: detected)
        #expect(explicit.cpus == 3)
    }

    @Test("static reservations beyond what the node has are refused")
    func tooMuchReserved() {
        #expect(throws: KeelError.self) { try NodeResources.applying("cpus(eng):9", to: detected) }
        #expect(throws: KeelError.self) { try NodeResources.applying("cpus(eng:2", to: detected) }
    }

    @Test("the fault domain needs a region and a zone", arguments: ["region:eu", "zone:a", "region:eu;zone:", "rack:r1;zone:a", "region:a;region:b;zone:c"])
    func badFaultDomains(text: String) {
        #expect(throws: KeelError.self) { try NodeResources.parseFaultDomain(text) }
    }

    @Test("a fault domain parses")
    func faultDomain() throws {
        let domain = try #require(try NodeResources.parseFaultDomain("region:eu-west;zone:eu-west-1a"))
        #expect(domain.region == "eu-west")
        #expect(domain.zone == "eu-west-1a")
        #expect(try NodeResources.parseFaultDomain("") == nil)
    }
}
