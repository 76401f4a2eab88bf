import Foundation
import KeelCore
import Testing

@Suite("Random UUIDs")
struct RandomUUIDTests {
    @Test("version 4, RFC 4122 variant, distinct, and readable by UUID(uuidString:)")
    func randomUUIDs() {
        let uuids = (0..<1000).map { _ in UUID.random() }
        #expect(Set(uuids).count == 1000)
        for uuid in uuids {
            let bytes = uuid.uuid
            #expect(bytes.6 >> 4 == 4, "version nibble of \(uuid)")
            #expect(bytes.8 >> 6 == 0b10, "variant bits of \(uuid)")
            #expect(UUID(uuidString: uuid.uuidString) == uuid)
        }
    }
}
