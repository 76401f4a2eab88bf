import KeelAPI
import KeelSDK
import SwiftProtobuf
import Testing

/// Placing resource requests on offers: the right offer, concrete ports, roles, attribute
/// constraints, several tasks on one offer, and what does not fit.
@Suite("Offer packer")
struct OfferPackerTests {
    @Test("the first offer that fits is chosen, by resources and attribute constraints")
    func firstFit() throws {
        let small = Self.offer("small", cpus: 0.5, mem: 256, rack: "r1")
        let wrongRack = Self.offer("wrong-rack", cpus: 4, mem: 4096, rack: "r2")
        let right = Self.offer("right", cpus: 2, mem: 2048, rack: "r1")
        let request = ResourceRequest(cpus: 1, mem: 1024, ports: 2, constraints: [try AttributeConstraint(parsing: "rack == r1")])
        let chosen = request.firstFit(in: [small, wrongRack, right])
        #expect(chosen?.id.value == "right")

        let notR1 = ResourceRequest(cpus: 1, mem: 1024, constraints: [try AttributeConstraint(parsing: "rack!=r1")])
        #expect(notR1.firstFit(in: [small, wrongRack, right])?.id.value == "wrong-rack")
    }

    @Test("a placement takes scalars and picks concrete ports from the offered ranges")
    func placementWithPorts() throws {
        let offer = Self.offer("o", cpus: 2, mem: 2048, disk: 100, ports: [31000...31001, 31005...31010])
        var packer = OfferPacker(offer)
        let first = try packer.place(ResourceRequest(cpus: 0.5, mem: 256, disk: 10, ports: 3))
        #expect(first.ports == [31000, 31001, 31005])
        #expect(Self.scalar(first.resources, "cpus") == 0.5)
        #expect(Self.scalar(first.resources, "mem") == 256)
        #expect(Self.scalar(first.resources, "disk") == 10)
        let ranges = first.resources.filter { $0.name == "ports" }.flatMap { $0.ranges.range.map { $0.begin...$0.end } }
        #expect(ranges == [31000...31001, 31005...31005])

        let second = try packer.place(ResourceRequest(cpus: 1, mem: 1024, ports: 2))
        #expect(second.ports == [31006, 31007])
        // 0.5 cpus are left: a third 1-cpu task does not fit, and nothing is taken.
        #expect(!packer.fits(ResourceRequest(cpus: 1, mem: 1)))
        var error: SchedulerError?
        do {
            _ = try packer.place(ResourceRequest(cpus: 1, mem: 1))
        } catch let caught {
            error = caught
        }
        #expect(error?.code == .insufficientResources)
        #expect(Self.scalar(packer.unplaced, "cpus") == 0.5)
        #expect(packer.fits(ResourceRequest(cpus: 0.5, mem: 512, ports: 3)))
        #expect(!packer.fits(ResourceRequest(cpus: 0.1, mem: 1, ports: 4)))
    }

    @Test("a role request uses that role's reservation and the shared pool, never another role's")
    func roles() throws {
        var offer = Self.offer("o", cpus: 1, mem: 1024)
        offer.resources.append(Self.reserved(.scalar("cpus", 2), role: "eng"))
        offer.resources.append(Self.reserved(.scalar("cpus", 8), role: "batch"))
        var packer = OfferPacker(offer)
        let placement = try packer.place(ResourceRequest(cpus: 2.5, mem: 64, role: "eng"))
        let cpus = placement.resources.filter { $0.name == "cpus" }
        #expect(cpus.map(\.scalar.value) == [2, 0.5])
        #expect(cpus.map { $0.reservations.last?.role ?? "*" } == ["eng", "*"])
        #expect(!packer.fits(ResourceRequest(cpus: 1, mem: 1, role: "eng")))
        #expect(packer.fits(ResourceRequest(cpus: 1, mem: 1, role: "batch")))
    }

    @Test("constraints that cannot be parsed are refused with invalidConstraint")
    func badConstraint() {
        for text in ["rack", "== r1", "rack ==", "rack = r1"] {
            var code: SchedulerError.Code?
            do {
                _ = try AttributeConstraint(parsing: text)
            } catch {
                code = error.code
            }
            #expect(code == .invalidConstraint, "\(text)")
        }
    }

    // MARK: Fixtures

    static func offer(
        _ id: String, cpus: Double, mem: Double, disk: Double = 0, ports: [ClosedRange<UInt64>] = [31000...31009],
        rack: String? = nil
    ) -> Keel_V1_Offer {
        .with {
            $0.id.value = id
            $0.agentID.value = "agent-\(id)"
            $0.hostname = id
            $0.resources = [.scalar("cpus", cpus), .scalar("mem", mem)]
            if disk > 0 { $0.resources.append(.scalar("disk", disk)) }
            if !ports.isEmpty { $0.resources.append(.ranges("ports", ports)) }
            if let rack {
                $0.attributes = [.with {
                    $0.name = "rack"
                    $0.type = .text
                    $0.text.value = rack
                }]
            }
        }
    }

    static func reserved(_ resource: Keel_V1_Resource, role: String) -> Keel_V1_Resource {
        var resource = resource
        resource.reservations = [.with {
            $0.type = .static
            $0.role = role
        }]
        return resource
    }

    static func scalar(_ resources: [Keel_V1_Resource], _ name: String) -> Double {
        resources.filter { $0.name == name }.reduce(0) { $0 + $1.scalar.value }
    }
}
