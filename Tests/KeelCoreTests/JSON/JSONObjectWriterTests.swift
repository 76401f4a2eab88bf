import Foundation
import KeelCore
import Testing

@Suite("JSON object writer")
struct JSONObjectWriterTests {
    @Test("run-time keys and values with quotes, backslashes, control characters and non-ASCII read back unchanged")
    func escapedFields() throws {
        let fields = [
            "plain": "value",
            "quote\"d": "say \"hi\"",
            "back\\slash": "C:\\path\\",
            "control": "line\nnext\ttab\u{1}\u{1f}",
            "ünïcode ✓": "日本語 🚀",
            "slash/key": "/a/b",
            "": "",
        ]
        var writer = JSONObjectWriter(capacity: 16)
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            writer.field(named: key, string: value)
        }
        let bytes = writer.finish()
        #expect(try JSONDecoder().decode([String: String].self, from: Data(bytes)) == fields)
        #expect(String(decoding: bytes, as: UTF8.self).contains("\"slash/key\":\"/a/b\""), "slashes are not escaped")
    }

    @Test("static keys, numbers, booleans and base64 data make one object")
    func mixedFields() throws {
        struct Decoded: Decodable, Equatable {
            var name: String
            var count: Int
            var big: UInt64
            var flag: Bool
            var blob: Data
            var blobs: [Data]
        }
        var writer = JSONObjectWriter(capacity: 0)
        writer.field("name", string: "n")
        writer.field("count", number: -3)
        writer.field("big", number: UInt64.max)
        writer.field("flag", bool: true)
        writer.field("blob", base64: Data([0xff, 0x00, 0x7f, 0x80]))
        writer.field("blobs", base64Array: [Data(), Data([1]), Data([1, 2]), Data([1, 2, 3])])
        let decoded = try JSONDecoder().decode(Decoded.self, from: Data(writer.finish()))
        #expect(decoded == Decoded(
            name: "n", count: -3, big: .max, flag: true, blob: Data([0xff, 0x00, 0x7f, 0x80]),
            blobs: [Data(), Data([1]), Data([1, 2]), Data([1, 2, 3])]))
    }

    @Test("base64 of every length matches Foundation's, and escapes at the ends of strings are kept")
    func base64AndStringEnds() throws {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<48 {
            let data = Data((0..<length).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
            var writer = JSONObjectWriter(capacity: 0)
            writer.field("blob", base64: data)
            #expect(writer.finish() == Array("{\"blob\":\"\(data.base64EncodedString())\"}".utf8), "length \(length)")
        }
        let values = ["\"", "\\", "\n", "\"start", "end\\", "\u{0}mid\u{1f}dle\"", String(repeating: "ab\"c", count: 100)]
        for value in values {
            var writer = JSONObjectWriter(capacity: 0)
            writer.field(named: value, string: value)
            #expect(try JSONDecoder().decode([String: String].self, from: Data(writer.finish())) == [value: value])
        }
    }

    @Test("an object without fields is {}")
    func emptyObject() {
        var writer = JSONObjectWriter(capacity: 0)
        #expect(writer.finish() == Array("{}".utf8))
    }
}
