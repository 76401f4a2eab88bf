import KeelRPC
import Testing

@Suite("Message outbox")
struct MessageOutboxTests {
    @Test("the writer takes everything queued at once, in order; after finish it drains, then ends")
    func batches() async {
        let outbox = MessageOutbox<Int>()
        #expect(outbox.send(1) && outbox.send(2) && outbox.send(3))
        #expect(await outbox.next() == [1, 2, 3])
        outbox.send(4)
        outbox.finish()
        #expect(!outbox.send(5), "a finished outbox drops new messages")
        #expect(await outbox.next() == [4])
        #expect(await outbox.next() == nil)
    }

    @Test("a waiting writer wakes for the next message, and a cancelled one returns nil")
    func waiting() async throws {
        let outbox = MessageOutbox<Int>()
        async let taken = outbox.next()
        // Messages sent before or after the writer parks both reach it.
        outbox.send(7)
        #expect(await taken?.first == 7)

        let writer = Task { await outbox.next() }
        writer.cancel()
        #expect(await writer.value == nil)
        outbox.send(8)
        #expect(await outbox.next() == [8], "a cancelled wait loses nothing")
    }

    @Test("many producers: every message arrives exactly once")
    func producers() async {
        let outbox = MessageOutbox<Int>()
        await withTaskGroup(of: Void.self) { group in
            for producer in 0..<8 {
                group.addTask {
                    for index in 0..<500 { outbox.send(producer * 1000 + index) }
                }
            }
            group.addTask {
                var seen: [Int] = []
                while seen.count < 4000, let batch = await outbox.next() { seen += batch }
                #expect(Set(seen).count == 4000)
                // Each producer's messages stay in its order.
                for producer in 0..<8 {
                    let own = seen.filter { $0 / 1000 == producer }
                    #expect(own == own.sorted())
                }
            }
        }
    }
}
