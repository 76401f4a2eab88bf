import Foundation
import LauncherCore
import Synchronization
import Testing

@Suite("Checkpoint writer threads")
struct CheckpointWriterTests {
    @Test("bursts from many submitters: every completion runs once and every file ends with the latest round, also after the threads slept")
    func burstsFromManySubmitters() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let writer = CheckpointWriter(idleTimeout: .milliseconds(50))
        let paths = (0..<120).map { workDir + "/file-\($0)" }
        // Rounds separated by a flush, so the threads go to sleep in between and must be woken
        // again; before the last two, every thread has ended after its idle timeout.
        for round in 0..<4 {
            if round >= 2 {
                #expect(await ProcessTestSupport.eventually { writer.runningThreads == 0 })
            }
            let completed = Counter()
            let submitters = 6
            let perSubmitter = 400
            await withTaskGroup(of: Void.self) { group in
                for submitter in 0..<submitters {
                    group.addTask {
                        for index in 0..<perSubmitter {
                            let path = paths[(index * 7 + submitter) % paths.count]
                            let text = "round \(round) submitter \(submitter) index \(index)"
                            writer.submit(
                                path, durability: index % 10 == 0 ? .synced : .atomic,
                                content: { .bytes(Array(text.utf8)) },
                                completion: { error in
                                    #expect(error == nil)
                                    completed.add()
                                })
                        }
                    }
                }
            }
            await writer.flush()
            #expect(completed.value == submitters * perSubmitter, "round \(round)")
            for path in paths {
                let content = ProcessTestSupport.contents(path) ?? ""
                #expect(content.hasPrefix("round \(round) "), "\(path): \(content)")
            }
        }
    }

    final class Counter: Sendable {
        private let count = Mutex(0)
        func add() { count.withLock { $0 += 1 } }
        var value: Int { count.withLock { $0 } }
    }

    @Test("rewriting a file swaps the new contents in: the name has the newest, .tmp the one before, no other file; remove takes both")
    func rewriteExchanges() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let path = workDir + "/record/task.json"
        for (index, durability) in [CheckpointFile.Durability.synced, .atomic, .durable, .synced].enumerated() {
            try CheckpointFile.write(Array("version \(index)".utf8), to: path, durability: durability)
            #expect(ProcessTestSupport.contents(path) == "version \(index)")
            if index > 0 { #expect(ProcessTestSupport.contents(path + ".tmp") == "version \(index - 1)") }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: workDir + "/record").sorted() == ["task.json", "task.json.tmp"])
        CheckpointFile.remove(path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: workDir + "/record").isEmpty)
    }

    @Test("a deferred write waits for its delay, joins a later undelayed write of its file, and does not hold up a flush")
    func deferredWrites() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let writer = CheckpointWriter()
        let encoded = Counter()
        let completed = Counter()
        func content(_ text: String) -> @Sendable () -> CheckpointWriter.Content {
            { encoded.add(); return .bytes(Array(text.utf8)) }
        }
        let a = workDir + "/a", b = workDir + "/b", c = workDir + "/c", d = workDir + "/d"

        // Deferred for an hour: another file's write and flush go by without it.
        writer.submit(a, durability: .atomic, deferredBy: .seconds(3600), content: content("a1"), completion: { _ in completed.add() })
        writer.submit(b, durability: .synced, content: content("b1"))
        await writer.flush(paths: [b])
        #expect(ProcessTestSupport.contents(b) == "b1")
        #expect(ProcessTestSupport.contents(a) == nil, "still waiting for its delay")
        #expect(encoded.value == 1)

        // An undelayed write of the same file takes it along: one write, the newest contents,
        // both callers told.
        writer.submit(a, durability: .synced, content: content("a2"), completion: { _ in completed.add() })
        await writer.flush(paths: [a])
        #expect(ProcessTestSupport.contents(a) == "a2")
        #expect(encoded.value == 2, "the deferred contents were never encoded")
        #expect(completed.value == 2)

        // A flush of everything writes a deferred file at once.
        writer.submit(c, durability: .atomic, deferredBy: .seconds(3600), content: content("c1"))
        await writer.flush()
        #expect(ProcessTestSupport.contents(c) == "c1")

        // A short delay ends by itself.
        writer.submit(d, durability: .atomic, deferredBy: .milliseconds(20), content: content("d1"))
        #expect(await ProcessTestSupport.eventually { ProcessTestSupport.contents(d) == "d1" })
    }
}
