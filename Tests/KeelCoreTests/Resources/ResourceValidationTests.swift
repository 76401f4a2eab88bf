import KeelCore
import Testing

@Suite("Resource validation")
struct ResourceValidationTests {
    private func message(of resource: Resource) -> String? {
        do {
            try resource.validate()
            return nil
        } catch let error as KeelError {
            #expect(error.code == .invalidArgument)
            return error.message
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test func acceptsValidResources() throws {
        try Resource.scalar("cpus", 0.5).validate()
        try Resource.scalar("mem", 0, role: "eng/web").validate()
        try Resource.ranges("ports", [1...2]).validate()
        try Resource.set("devices", ["/dev/nvidia0"]).validate()
        try Resource.scalar("nvidia.com/gpu", 1e12).validate()
        let built = try Resource(validatingName: "disk", value: .scalar(10), role: "r")
        #expect(built.description == "disk(r):10")
    }

    @Test func rejectsBadScalars() {
        #expect(message(of: .scalar("cpus", -0.5)) == "resource 'cpus' has the negative value -0.5; scalar quantities must be zero or positive")
        #expect(message(of: .scalar("cpus", .nan))?.contains("non-finite value nan") == true)
        #expect(message(of: .scalar("mem", -.infinity))?.contains("non-finite value -inf") == true)
        #expect(message(of: .scalar("mem", 1.5e12))?.contains("exceeds the maximum") == true)
    }

    @Test func rejectsBadNames() {
        #expect(message(of: .scalar("", 1))?.hasPrefix("resource name must not be empty") == true)
        #expect(message(of: .scalar("a:b", 1))?.contains("contains the character ':'") == true)
        #expect(message(of: .scalar(String(repeating: "n", count: 256), 1))?.contains("at most 255") == true)
    }

    @Test func enforcesWellKnownKinds() {
        #expect(message(of: .ranges("cpus", [1...2]))?.contains("resource 'cpus' must be a scalar value") == true)
        #expect(message(of: .set("mem", ["a"]))?.contains("resource 'mem' must be a scalar value") == true)
        #expect(message(of: .scalar("ports", 2))?.contains("resource 'ports' must be a ranges value") == true)
    }

    @Test func rejectsBadSetItems() {
        #expect(message(of: .set("devices", [""]))?.contains("empty set item") == true)
        #expect(message(of: .set("devices", ["a,b"]))?.contains("containing ','") == true)
    }

    @Test(arguments: ["", "a//b", "/a", "a/", ".", "a/..", "-a", "a b", "é", "a(b)"])
    func rejectsBadRoles(role: String) {
        let text = message(of: .scalar("cpus", 1, role: role))
        #expect(text?.hasPrefix("resource 'cpus' has an invalid role: ") == true, "role \(role): \(text ?? "nil")")
        #expect(throws: KeelError.self) { try ResourceRole.validate(role) }
    }

    @Test func starRoleIsNotAReservation() {
        let error = #expect(throws: KeelError.self) { try ResourceRole.validate("*") }
        #expect(error?.message.contains("means unreserved") == true)
    }

    @Test func roleLineage() {
        #expect(ResourceRole.lineage(of: "a/b/c") == ["a", "a/b", "a/b/c"])
        #expect(ResourceRole.lineage(of: "a") == ["a"])
    }

    @Test func resourcesValidatingInitThrowsAtFirstInvalid() throws {
        let valid = try Resources(validating: [.scalar("cpus", 1), .scalar("cpus", 1), .scalar("mem", 0)])
        #expect(valid == Resources(cpus: 2))
        let error = #expect(throws: KeelError.self) {
            try Resources(validating: [.scalar("cpus", 1), .scalar("disk", -3)])
        }
        #expect(error?.message.contains("resource 'disk' has the negative value -3") == true)
    }
}
