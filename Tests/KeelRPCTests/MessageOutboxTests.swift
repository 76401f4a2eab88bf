import KeelRPC
import Synchronization
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

@Suite("Message outbox pacing", .timeLimit(.minutes(1)))
struct MessageOutboxPacingTests {
    /// A pause the test ends: it reports each requested wait and returns when released.
    final class ControlledPause: Sendable {
        let requests: AsyncStream<Duration>
        private let requested: AsyncStream<Duration>.Continuation
        private let releases = Mutex<[CheckedContinuation<Void, Never>]>([])

        init() {
            (requests, requested) = AsyncStream.makeStream(of: Duration.self)
        }

        func wait(_ duration: Duration) async {
            await withCheckedContinuation { continuation in
                releases.withLock { $0.append(continuation) }
                requested.yield(duration)
            }
        }

        func releaseAll() {
            for continuation in releases.withLock({ list in defer { list.removeAll() }; return list }) {
                continuation.resume()
            }
        }
    }

    @Test("the first batch goes out at once; after a batch of several the next waits out the interval and takes what came meanwhile")
    func pacedBatches() async throws {
        let pause = ControlledPause()
        let outbox = MessageOutbox<Int>(minimumInterval: .seconds(3600), pause: { await pause.wait($0) })
        outbox.send(1)
        outbox.send(2)
        #expect(await outbox.next() == [1, 2], "an idle outbox hands over what is queued without waiting")

        outbox.send(3)
        let writer = Task { await outbox.next() }
        var requests = pause.requests.makeAsyncIterator()
        let requested = try #require(await requests.next())
        #expect(requested > .zero && requested <= .seconds(900), "it waits out the interval a quarter at a time")
        outbox.send(4)
        outbox.send(5)
        pause.releaseAll()
        // Messages came during the first quarter: the writer waits on for more.
        #expect(await requests.next() == .seconds(900))
        pause.releaseAll()
        #expect(await writer.value == [3, 4, 5], "what was sent during the wait goes out in the same batch")
    }

    @Test("a writer waiting out the interval takes the queue after a quarter in which nothing came: the flow stopped")
    func quietQuarter() async throws {
        let pause = ControlledPause()
        let outbox = MessageOutbox<Int>(minimumInterval: .seconds(3600), pause: { await pause.wait($0) })
        outbox.send(1)
        outbox.send(2)
        _ = await outbox.next()
        outbox.send(3)
        let writer = Task { await outbox.next() }
        var requests = pause.requests.makeAsyncIterator()
        #expect(await requests.next() != nil)
        pause.releaseAll()
        #expect(await writer.value == [3], "one quiet quarter, not the whole interval")
    }

    @Test("after a batch of one message the next goes out at once: a sparse stream is not held back")
    func sparseStream() async {
        let pause = ControlledPause()
        let outbox = MessageOutbox<Int>(minimumInterval: .seconds(3600), pause: { await pause.wait($0) })
        for index in 0..<3 {
            outbox.send(index)
            #expect(await outbox.next() == [index])
        }
    }

    @Test("a full batch, a finished outbox and an outbox without interval are taken without waiting")
    func noWait() async {
        let pause = ControlledPause()
        let outbox = MessageOutbox<Int>(minimumInterval: .seconds(3600), pause: { await pause.wait($0) })
        outbox.send(0)
        _ = await outbox.next()
        for index in 1...MessageOutbox<Int>.fullBatch { outbox.send(index) }
        #expect(await outbox.next()?.count == MessageOutbox<Int>.fullBatch)

        outbox.send(7)
        outbox.finish()
        #expect(await outbox.next() == [7])
        #expect(await outbox.next() == nil)

        let unpaced = MessageOutbox<Int>(pause: { await pause.wait($0) })
        for index in 0..<3 {
            unpaced.send(index)
            #expect(await unpaced.next() == [index])
        }
    }

    @Test("a writer cancelled while it waits out the interval takes the queue at once")
    func cancelledWait() async throws {
        let outbox = MessageOutbox<Int>(minimumInterval: .seconds(3600))
        outbox.send(0)
        outbox.send(1)
        _ = await outbox.next()
        outbox.send(2)
        let writer = Task { await outbox.next() }
        writer.cancel()
        #expect(await writer.value == [2])
    }
}
