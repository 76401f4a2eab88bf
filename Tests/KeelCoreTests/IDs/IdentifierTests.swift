import KeelCore
import Testing

@Suite("Identifiers")
struct IdentifierTests {
    @Test(arguments: ["a", "task-1", "my_app.v2", "ABC-def_0.9", String(repeating: "x", count: 255)])
    func acceptsValidIDs(text: String) throws {
        let id = try TaskID(validating: text)
        #expect(id.value == text)
        #expect(id.description == text)
    }

    @Test func rejectsEmpty() {
        let error = #expect(throws: KeelError.self) { try TaskID(validating: "") }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("task ID must not be empty") == true)
    }

    @Test func rejectsTooLong() {
        let text = String(repeating: "x", count: 256)
        let error = #expect(throws: KeelError.self) { try AgentID(validating: text) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("256 characters long, but at most 255") == true)
        #expect(error?.message.contains("agent ID") == true)
    }

    @Test(arguments: ["a b", "a/b", "tâche", "x:y", "new\nline", "semi;colon"])
    func rejectsDisallowedCharacters(text: String) {
        let error = #expect(throws: KeelError.self) { try FrameworkID(validating: text) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("framework ID") == true)
        #expect(error?.message.contains("which is not allowed") == true)
    }

    @Test func namesTheOffendingCharacter() {
        let error = #expect(throws: KeelError.self) { try TaskID(validating: "web server") }
        #expect(error?.message.contains("' '") == true)
        let control = #expect(throws: KeelError.self) { try TaskID(validating: "a\tb") }
        #expect(control?.message.contains("U+9") == true)
    }

    @Test(arguments: [".", ".."])
    func rejectsDotNames(text: String) {
        let error = #expect(throws: KeelError.self) { try OfferID(validating: text) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("directory names") == true)
    }

    @Test func randomIDsAreValidUUIDs() throws {
        let id = FrameworkID.random()
        let text = id.value
        let bytes = Array(text.utf8)
        #expect(bytes.count == 36)
        #expect(bytes[8] == UInt8(ascii: "-") && bytes[13] == UInt8(ascii: "-"))
        #expect(bytes[18] == UInt8(ascii: "-") && bytes[23] == UInt8(ascii: "-"))
        #expect(bytes[14] == UInt8(ascii: "4"))
        #expect(text == text.lowercased())
        let revalidated = try FrameworkID(validating: text)
        #expect(revalidated == id)
    }

    @Test func randomIDsAreUnique() {
        let ids = Set((0..<1000).map { _ in OfferID.random() })
        #expect(ids.count == 1000)
    }

    @Test func seededRandomIsReproducible() {
        var first = SeededGenerator(seed: 42)
        var second = SeededGenerator(seed: 42)
        let a = AgentID.random(using: &first)
        let b = AgentID.random(using: &second)
        #expect(a == b)
    }

    @Test func ordersByValue() {
        let ids = [TaskID("b"), TaskID("a"), TaskID("c")].sorted()
        let values = ids.map(\.value)
        #expect(values == ["a", "b", "c"])
        #expect(TaskID("a") < TaskID("b"))
        #expect(TaskID("a") == TaskID("a"))
    }
}
