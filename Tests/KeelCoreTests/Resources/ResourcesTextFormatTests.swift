import KeelCore
import Testing

@Suite("Resources text format")
struct ResourcesTextFormatTests {
    @Test func parsesTheMesosForm() throws {
        let resources = try Resources(parsing: "cpus:2;mem:1024;ports:[31000-32000,33000-33010];disk:100")
        #expect(resources.cpus == 2)
        #expect(resources.mem == 1024)
        #expect(resources.disk == 100)
        #expect(resources.ports == [31000...32000, 33000...33010])
        #expect(resources.description == "cpus:2;mem:1024;disk:100;ports:[31000-32000,33000-33010]")
    }

    @Test func parsesRolesAndSets() throws {
        let resources = try Resources(parsing: "cpus(analytics):1.5; cpus(*):0.5 ;gpu_ids:{gpu1,gpu0}")
        #expect(resources.reserved(role: "analytics").cpus == 1.5)
        #expect(resources.unreserved.cpus == 0.5)
        #expect(resources.set(named: "gpu_ids") == ["gpu0", "gpu1"])
        #expect(resources.description == "cpus:0.5;cpus(analytics):1.5;gpu_ids:{gpu0,gpu1}")
    }

    @Test func toleratesWhitespaceEmptyEntriesAndSingleValues() throws {
        let resources = try Resources(parsing: "  cpus : 2 ;; ports : [ 80 , 443-443 ] ; ")
        #expect(resources == Resources(cpus: 2, ports: [80...80, 443...443]))
        let empty = try Resources(parsing: "")
        #expect(empty.isEmpty)
        #expect(empty.description.isEmpty)
    }

    @Test func repeatedEntriesAreSummed() throws {
        let resources = try Resources(parsing: "cpus:1;cpus:0.5;ports:[1-2];ports:[3-4]")
        #expect(resources.description == "cpus:1.5;ports:[1-4]")
    }

    @Test(arguments: [
        "cpus:2;mem:1024;disk:100;ports:[31000-32000,33000-33010]",
        "cpus:0.001;cpus(a/b):3.25;mem(r1):512;custom:{x,y.z};other:[0-0,18446744073709551615-18446744073709551615]",
        "gpus:1;nvidia.com/gpu:2",
        "",
    ])
    func printsWhatItParses(text: String) throws {
        let parsed = try Resources(parsing: text)
        #expect(parsed.description == text)
        let reparsed = try Resources(parsing: parsed.description)
        #expect(reparsed == parsed)
    }

    @Test func scalarFormatting() {
        let resources: Resources = [.scalar("a", 0.5), .scalar("b", 1024), .scalar("c", 0.125), .scalar("d", 10.1)]
        #expect(resources.description == "a:0.5;b:1024;c:0.125;d:10.1")
    }

    @Test(arguments: [
        ("cpus2", "has no ':'"),
        ("cpus:abc", "is not a number"),
        ("cpus:nan", "is not a number"),
        ("cpus:-1", "negative value -1"),
        ("cpus:[1-2]", "must be a scalar value"),
        ("ports:5", "must be a ranges value"),
        ("ports:[1-2", "without a closing ']'"),
        ("ports:[a-b]", "write each range as begin-end"),
        ("ports:[1-2-3]", "write each range as begin-end"),
        ("ports:[1-2,]", "write each range as begin-end"),
        ("ports:[10-5]", "begin is greater than its end"),
        ("ports:[1-10,5-20]", "overlapping ranges 1-10 and 5-20"),
        ("devices:{a,b", "without a closing '}'"),
        ("devices:{a,,b}", "empty set item"),
        ("cpus(analytics:2", "unterminated role"),
        ("cpus():2", "role must not be empty"),
        ("cpus(a b):2", "invalid role"),
        (":2", "resource name must not be empty"),
        ("my cpus:2", "contains the character ' '"),
    ])
    func reportsErrors(text: String, expected: String) {
        let error = #expect(throws: KeelError.self) { try Resources(parsing: text) }
        #expect(error?.code == .invalidArgument)
        let message = error?.message ?? ""
        #expect(message.contains(expected), "message was: \(message)")
    }

    @Test func errorNamesTheEntry() {
        let error = #expect(throws: KeelError.self) { try Resources(parsing: "cpus:1;mem:-5") }
        #expect(error?.message.hasPrefix("invalid resources entry 'mem:-5'") == true)
        #expect(error?.cause is KeelError)
    }
}
