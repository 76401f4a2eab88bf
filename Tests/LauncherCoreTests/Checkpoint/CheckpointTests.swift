import Foundation
@preconcurrency import Glibc
import KeelAPI
import LauncherCore
import SwiftProtobuf
import Synchronization
import Testing

@Suite("Launcher checkpoint files")
struct CheckpointTests {
    static func status(_ taskID: String, _ state: Keel_V1_TaskState, exitCode: Int32? = nil) -> Keel_V1_TaskStatus {
        .with {
            $0.taskID.value = taskID
            $0.state = state
            $0.uuid = withUnsafeBytes(of: UUID().uuid) { Data($0) }
            if let exitCode { $0.exitCode = exitCode }
        }
    }

    static func task(_ id: String) -> Keel_V1_TaskInfo {
        .with {
            $0.taskID.value = id
            $0.name = "task \(id)"
            $0.command.shell = "sleep 1"
        }
    }

    @Test("the journal's CRC-32 is zlib's: the check value, and a bitwise reference at every length and split")
    func crc32() {
        var check = CRC32()
        check.update(ArraySlice("123456789".utf8))
        #expect(check.value == 0xCBF4_3926)
        func reference(_ bytes: [UInt8]) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
            }
            return ~crc
        }
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<70).map { _ in UInt8.random(in: 0...255, using: &generator) }
        for count in 0...bytes.count {
            let expected = reference(Array(bytes[0..<count]))
            var whole = CRC32()
            whole.update(bytes[0..<count])
            #expect(whole.value == expected, "length \(count)")
            let split = count / 3
            var parts = CRC32()
            parts.update(bytes[0..<split])
            parts.update(bytes[split..<count])
            #expect(parts.value == expected, "length \(count) split at \(split)")
        }
    }

    @Test("a task record survives a write and a read by a new store, field by field")
    func roundTrip() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let store = TaskCheckpointStore(workDir: workDir, logger: ProcessTestSupport.logger)
        var record = TaskCheckpoint(frameworkID: "fw-1", task: Self.task("t-1"))
        record.runID = "run-1"
        record.sandbox = workDir + "/sandboxes/fw-1/t-1/run-1"
        store.create(record)
        store.update(record.key) {
            $0.supervisorPID = 4242
            $0.supervisorStartTime = 99
            $0.exitStatusFile = store.exitStatusPath(record.key)
            $0.cgroup = "keel/t-1-run-1"
            $0.killRequested = true
        }
        let running = Self.status("t-1", .taskRunning)
        store.recordPending(record.key, updates: [running], reported: running)
        store.flushBlocking()

        let reread = TaskCheckpointStore(workDir: workDir, logger: ProcessTestSupport.logger).load()
        #expect(reread.unreadable.isEmpty)
        let loaded = try #require(reread.records.first)
        #expect(reread.records.count == 1)
        #expect(loaded.key == LauncherTaskKey(frameworkID: "fw-1", taskID: "t-1"))
        #expect(try loaded.decodedTask() == Self.task("t-1"))
        #expect(loaded.runID == "run-1")
        #expect(loaded.sandbox == record.sandbox)
        #expect(loaded.supervisorPID == 4242)
        #expect(loaded.supervisorStartTime == 99)
        #expect(loaded.cgroup == "keel/t-1-run-1")
        #expect(loaded.killRequested)
        #expect(loaded.taskState == .taskRunning)
        #expect(try loaded.decodedPendingUpdates() == [running])
        // One journal holds it, and nothing is left beside it.
        let checkpoint = TaskCheckpointStore.checkpointDirectory(workDir: workDir)
        #expect(CheckpointJournal.read(store.journalPath).records.keys.sorted { $0.taskID < $1.taskID } == [record.key])
        #expect(!FileManager.default.fileExists(atPath: checkpoint + "/tasks"), "no directory per task")
    }

    @Test("a record is removed once its task ended and every update was acknowledged, with its exit status")
    func removedWhenDone() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let store = TaskCheckpointStore(workDir: workDir, logger: ProcessTestSupport.logger)
        let record = TaskCheckpoint(frameworkID: "fw-1", task: Self.task("t-2"))
        store.create(record)
        let finished = Self.status("t-2", .taskFinished, exitCode: 0)
        store.recordPending(record.key, updates: [finished], reported: finished)
        store.flushBlocking()
        // The supervisor writes the exit status into the directory made for it.
        try ProcessTestSupport.write("exited 0\n", to: store.exitStatusPath(record.key))
        #expect(TaskCheckpointStore.read(workDir: workDir, logger: ProcessTestSupport.logger).records.map(\.key) == [record.key])
        store.recordPending(record.key, updates: [], reported: nil)
        store.flushBlocking()
        #expect(TaskCheckpointStore.read(workDir: workDir, logger: ProcessTestSupport.logger).records.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: store.exitStatusPath(record.key)))
        #expect(store.record(record.key) == nil)
    }

    @Test("a damaged record and a garbled one are reported with the reason; good ones and older records still load")
    func corruptRecords() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let store = TaskCheckpointStore(workDir: workDir, logger: ProcessTestSupport.logger)
        for id in ["good", "damaged", "torn"] {
            store.create(TaskCheckpoint(frameworkID: "fw-1", task: Self.task(id)))
        }
        store.flushBlocking()
        var journal = try #require(FileManager.default.contents(atPath: store.journalPath)).map { $0 }
        // A newer record of "damaged" whose payload no longer matches its checksum, then a
        // record of "garbled" that is intact on disk but is no task record.
        var frame: [UInt8] = []
        JournalFrame(key: LauncherTaskKey(frameworkID: "fw-1", taskID: "damaged"), payload: Array("{\"version\":1}".utf8)).append(to: &frame)
        frame[frame.count - 3] ^= 0xff
        journal += frame
        JournalFrame(key: LauncherTaskKey(frameworkID: "fw-1", taskID: "garbled"), payload: Array("{\"version\":1,\"task\":\"%%%\"}".utf8))
            .append(to: &journal)
        // A newer record of "torn" cut short at the end, as a crash mid-write leaves it.
        var torn: [UInt8] = []
        JournalFrame(key: LauncherTaskKey(frameworkID: "fw-1", taskID: "torn"), payload: Array("{}".utf8)).append(to: &torn)
        journal += torn.prefix(torn.count - 1)
        try Data(journal).write(to: URL(fileURLWithPath: store.journalPath))

        let loaded = TaskCheckpointStore(workDir: workDir, logger: ProcessTestSupport.logger).load()
        #expect(Set(loaded.records.map(\.taskID)) == ["good", "torn"], "the torn write was never stored; the record before it stands")
        let problems = Dictionary(uniqueKeysWithValues: loaded.unreadable.map { ($0.key.taskID, $0.reason) })
        #expect(Set(problems.keys) == ["damaged", "garbled"])
        #expect(problems["damaged"]?.contains("fails its checksum") == true, "\(problems)")
        #expect(problems["garbled"]?.contains("corrupt") == true, "\(problems)")
        // Loading rewrote the journal with the readable records only.
        #expect(Set(CheckpointJournal.read(store.journalPath).records.keys.map(\.taskID)) == ["good", "torn"])
    }

    @Test("a damaged stretch in the middle of the journal loses only the records in it")
    func damagedRegion() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let path = TaskCheckpointStore.checkpointDirectory(workDir: workDir) + "/tasks.journal"
        var journal: [UInt8] = []
        for id in ["before", "lost", "after"] {
            let record = TaskCheckpoint(frameworkID: "fw-1", task: Self.task(id))
            if id == "lost" {
                let start = journal.count
                JournalFrame(key: record.key, payload: record.jsonBytes()).append(to: &journal)
                for index in start..<(start + 8) { journal[index] = 0 }
            } else {
                JournalFrame(key: record.key, payload: record.jsonBytes()).append(to: &journal)
            }
        }
        try CheckpointFile.makeDirectories(TaskCheckpointStore.checkpointDirectory(workDir: workDir))
        try Data(journal).write(to: URL(fileURLWithPath: path))
        let contents = CheckpointJournal.read(path)
        #expect(Set(contents.records.keys.map(\.taskID)) == ["before", "after"])
        #expect(contents.lostRegions.count == 1)
        #expect(!contents.tornTail)
    }

    @Test("the journal is compacted to its live records once it has grown, and stays readable meanwhile")
    func compaction() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let path = workDir + "/journal"
        let records = Mutex<[LauncherTaskKey: [UInt8]]>([:])
        let journal = CheckpointJournal(path: path, compactionMinimum: 16 * 1024, logger: ProcessTestSupport.logger) { key in
            records.withLock { $0[key] }.map { .record($0) } ?? .removed(files: [], directory: nil)
        }
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: 1000)
        var largest = 0
        for round in 0..<100 {
            let key = LauncherTaskKey(frameworkID: "fw", taskID: "t-\(round % 10)")
            // Ten tasks, each rewritten ten times; the last round removes every other one.
            records.withLock { $0[key] = round >= 90 && round % 2 == 1 ? nil : payload + Array("\(round)".utf8) }
            journal.submit(key, durable: round % 3 == 0)
            await journal.flush()
            largest = max(largest, Int((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0))
        }
        let contents = CheckpointJournal.read(path)
        #expect(contents.lostRegions.isEmpty && !contents.tornTail && contents.damaged.isEmpty)
        let expected = records.withLock { $0 }
        #expect(contents.records == expected)
        #expect(expected.count == 5)
        #expect(largest < 100 * 1000, "compacted along the way (largest \(largest) bytes)")
    }

    @Test("a deferred change waits for its delay, joins a later undelayed change of its task, and does not hold up a flush")
    func deferredChanges() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let path = workDir + "/journal"
        let records = Mutex<[LauncherTaskKey: [UInt8]]>([:])
        let encoded = Mutex(0)
        let journal = CheckpointJournal(path: path, logger: ProcessTestSupport.logger) { key in
            encoded.withLock { $0 += 1 }
            return records.withLock { $0[key] }.map { .record($0) } ?? .removed(files: [], directory: nil)
        }
        func key(_ name: String) -> LauncherTaskKey { LauncherTaskKey(frameworkID: "fw", taskID: name) }
        func change(_ name: String, _ text: String) { records.withLock { $0[key(name)] = Array(text.utf8) } }
        func stored(_ name: String) -> String? {
            CheckpointJournal.read(path).records[key(name)].map { String(decoding: $0, as: UTF8.self) }
        }

        // Deferred for an hour: another task's change and its flush go by without it.
        change("a", "a1")
        let completed = Mutex(0)
        journal.submit(key("a"), durable: false, deferredBy: .seconds(3600)) { _ in completed.withLock { $0 += 1 } }
        change("b", "b1")
        journal.submit(key("b"), durable: true)
        await journal.flush(keys: [key("b")])
        #expect(stored("b") == "b1")
        #expect(stored("a") == nil, "still waiting for its delay")
        #expect(encoded.withLock { $0 } == 1)

        // An undelayed change of the same task takes it along: one record, the newest, both callers told.
        change("a", "a2")
        journal.submit(key("a"), durable: true) { _ in completed.withLock { $0 += 1 } }
        await journal.flush(keys: [key("a")])
        #expect(stored("a") == "a2")
        #expect(encoded.withLock { $0 } == 2, "the deferred record was never encoded on its own")
        #expect(completed.withLock { $0 } == 2)

        // A flush of everything writes a deferred change at once.
        change("c", "c1")
        journal.submit(key("c"), durable: false, deferredBy: .seconds(3600))
        await journal.flush()
        #expect(stored("c") == "c1")

        // A short delay ends by itself, also while the writer thread sleeps towards a longer one.
        change("d", "d1")
        journal.submit(key("d"), durable: false, deferredBy: .seconds(3600))
        change("e", "e1")
        journal.submit(key("e"), durable: false, deferredBy: .milliseconds(20))
        #expect(await ProcessTestSupport.eventually { stored("e") == "e1" })
        #expect(stored("d") == nil)
    }

    @Test("a journal that cannot be written tells its callers so, and flushes still return")
    func unwritableJournal() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        // Its directory would have to be made under a regular file.
        try ProcessTestSupport.write("", to: workDir + "/file")
        let journal = CheckpointJournal(path: workDir + "/file/journal", logger: ProcessTestSupport.logger) { _ in
            .record(Array("{}".utf8))
        }
        let failure = Mutex<LauncherError?>(nil)
        let done = Mutex(false)
        journal.submit(LauncherTaskKey(frameworkID: "fw", taskID: "t"), durable: true) { error in
            failure.withLock { $0 = error }
            done.withLock { $0 = true }
        }
        await journal.flush()
        #expect(done.withLock { $0 })
        let error = try #require(failure.withLock { $0 })
        #expect(error.message.contains(workDir + "/file"), "\(error.message)")
    }

    @Test("records of the layout before the journal are moved into it, and their directories go when their tasks are done")
    func legacyRecords() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let legacyRoot = TaskCheckpointStore.checkpointDirectory(workDir: workDir) + "/tasks/fw-1"
        var running = TaskCheckpoint(frameworkID: "fw-1", task: Self.task("old-running"))
        running.exitStatusFile = legacyRoot + "/old-running/exit-status"
        running.taskState = .taskRunning
        try CheckpointFile.write(running.jsonBytes(), to: legacyRoot + "/old-running/task.json")
        // A task moved into the journal by an earlier start and done since: only its directory is left.
        try CheckpointFile.makeDirectories(legacyRoot + "/old-done")

        let store = TaskCheckpointStore(workDir: workDir, logger: ProcessTestSupport.logger)
        let loaded = store.load()
        #expect(loaded.records.map(\.key) == [running.key])
        #expect(loaded.unreadable.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: legacyRoot + "/old-done"))
        #expect(!FileManager.default.fileExists(atPath: legacyRoot + "/old-running/task.json"), "moved into the journal")
        #expect(FileManager.default.fileExists(atPath: legacyRoot + "/old-running"), "kept for the supervisor's exit status")
        #expect(CheckpointJournal.read(store.journalPath).records.keys.map(\.taskID) == ["old-running"])
        // Another start still finds it (in the journal now).
        #expect(TaskCheckpointStore.read(workDir: workDir, logger: ProcessTestSupport.logger).records.map(\.key) == [running.key])

        try ProcessTestSupport.write("exited 0\n", to: legacyRoot + "/old-running/exit-status")
        store.discard(running.key)
        store.flushBlocking()
        #expect(!FileManager.default.fileExists(atPath: legacyRoot + "/old-running"))
        #expect(TaskCheckpointStore.read(workDir: workDir, logger: ProcessTestSupport.logger).records.isEmpty)
    }

    @Test("the agent id is kept within a boot and dropped after a reboot")
    func agentIDAndBootID() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let logger = ProcessTestSupport.logger
        #expect(AgentCheckpoint.recover(workDir: workDir, bootID: "boot-a", logger: logger) == .fresh)

        try AgentCheckpoint(agentID: "agent-1", bootID: "boot-a").save(workDir: workDir)
        let sameBoot = AgentCheckpoint.recover(workDir: workDir, bootID: "boot-a", logger: logger)
        #expect(sameBoot == .sameBoot(agentID: "agent-1"))
        #expect(sameBoot.agentID == "agent-1")

        let rebooted = AgentCheckpoint.recover(workDir: workDir, bootID: "boot-b", logger: logger)
        #expect(rebooted == .rebooted(previousAgentID: "agent-1"))
        #expect(rebooted.agentID == nil)

        try Data("{\"agentID\":\"age".utf8).write(to: URL(fileURLWithPath: AgentCheckpoint.path(workDir: workDir)))
        let corrupt = AgentCheckpoint.recover(workDir: workDir, bootID: "boot-a", logger: logger)
        guard case .unreadable = corrupt else {
            Issue.record("a truncated agent checkpoint should be unreadable, got \(corrupt)")
            return
        }
        #expect(corrupt.agentID == nil)
    }

    @Test("a newly assigned agent id is checkpointed with the boot id")
    func identityCheckpointsNewID() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let identity = AgentIdentity(agentID: nil) { id in
            try? AgentCheckpoint(agentID: id, bootID: "boot-a").save(workDir: workDir)
        }
        identity.set("agent-7")
        let recovered = AgentCheckpoint.recover(workDir: workDir, bootID: "boot-a", logger: ProcessTestSupport.logger)
        #expect(recovered == .sameBoot(agentID: "agent-7"))
    }

    @Test("status updates are on disk before they are sent, and come back in order after a restart")
    func durableUpdates() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let store = TaskCheckpointStore(workDir: workDir, logger: ProcessTestSupport.logger)
        let key = LauncherTaskKey(frameworkID: "fw-1", taskID: "t-3")
        store.create(TaskCheckpoint(frameworkID: "fw-1", task: Self.task("t-3")))
        let manager = StatusUpdateManager(initialBackoff: .seconds(60), maxBackoff: .seconds(60), checkpoints: store)
        let onDiskWhenSent = SentLog()
        manager.connect { message in
            let onDisk = (try? TaskCheckpointStore.read(workDir: workDir, logger: ProcessTestSupport.logger).records
                .first?.decodedPendingUpdates()) ?? []
            onDiskWhenSent.append(message.statusUpdate.status, onDisk: onDisk.map(\.uuid).contains(message.statusUpdate.status.uuid))
            return true
        }
        let starting = Self.status("t-3", .taskStarting)
        let running = Self.status("t-3", .taskRunning)
        let finished = Self.status("t-3", .taskFinished, exitCode: 0)
        manager.enqueue(frameworkID: "fw-1", status: starting)
        manager.enqueue(frameworkID: "fw-1", status: running)
        manager.enqueue(frameworkID: "fw-1", status: finished)
        #expect(await ProcessTestSupport.eventually { !onDiskWhenSent.entries.isEmpty })
        await store.flush()
        #expect(onDiskWhenSent.entries.map(\.status) == [starting], "one update at a time per task")
        let allOnDisk = onDiskWhenSent.entries.allSatisfy { $0.onDisk }
        #expect(allOnDisk, "on disk before it was sent")
        #expect(manager.acknowledge(frameworkID: "fw-1", taskID: "t-3", uuid: starting.uuid))
        #expect(onDiskWhenSent.entries.map(\.status) == [starting, running])
        await store.flush()

        // A new launcher: the two unacknowledged updates come back, oldest first.
        let reloaded = TaskCheckpointStore(workDir: workDir, logger: ProcessTestSupport.logger)
        let record = try #require(reloaded.load().records.first)
        #expect(record.taskState == .taskFinished)
        let restored = StatusUpdateManager(initialBackoff: .seconds(60), maxBackoff: .seconds(60), checkpoints: reloaded)
        restored.restore(frameworkID: "fw-1", updates: try record.decodedPendingUpdates())
        #expect(restored.pending(key) == [running, finished])
        let resent = SentLog()
        restored.connect { message in
            resent.append(message.statusUpdate.status, onDisk: true)
            return true
        }
        #expect(resent.entries.map(\.status) == [running])
        #expect(restored.acknowledge(frameworkID: "fw-1", taskID: "t-3", uuid: running.uuid))
        #expect(resent.entries.map(\.status) == [running, finished])
        #expect(restored.acknowledge(frameworkID: "fw-1", taskID: "t-3", uuid: finished.uuid))
        await reloaded.flush()
        #expect(
            TaskCheckpointStore.read(workDir: workDir, logger: ProcessTestSupport.logger).records.isEmpty,
            "the finished task's record is gone")
        _ = key
    }

    @Test("many tasks' records are written in batches, each task's newest change last")
    func parallelWrites() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let store = TaskCheckpointStore(workDir: workDir, logger: ProcessTestSupport.logger)
        let ids = (0..<200).map { "t-\($0)" }
        let sent = SentLog()
        let manager = StatusUpdateManager(initialBackoff: .seconds(60), maxBackoff: .seconds(60), checkpoints: store)
        manager.connect { message in
            sent.append(message.statusUpdate.status, onDisk: true)
            return true
        }
        for id in ids {
            store.create(TaskCheckpoint(frameworkID: "fw-1", task: Self.task(id)))
            for state in [Keel_V1_TaskState.taskStarting, .taskRunning, .taskFinished] {
                manager.enqueue(frameworkID: "fw-1", status: Self.status(id, state))
            }
        }
        #expect(await ProcessTestSupport.eventually { sent.entries.count == ids.count })
        #expect(Set(sent.entries.map(\.status.taskID.value)) == Set(ids))
        let firstsFirst = sent.entries.allSatisfy { $0.status.state == .taskStarting }
        #expect(firstsFirst, "each task's first update goes first")
        await store.flush()
        let loaded = TaskCheckpointStore(workDir: workDir, logger: ProcessTestSupport.logger).load()
        #expect(loaded.unreadable.isEmpty)
        #expect(loaded.records.count == ids.count)
        let newest = loaded.records.allSatisfy { $0.taskState == .taskFinished && $0.pendingUpdates.count == 3 }
        #expect(newest, "every record holds its task's last change")
    }
}

/// The updates a test sender saw, with how many were on disk at that moment.
final class SentLog: Sendable {
    struct Entry: Sendable {
        var status: Keel_V1_TaskStatus
        /// Whether the update was in its task's checkpoint on disk when it was sent.
        var onDisk: Bool
    }

    private let state = Mutex<[Entry]>([])

    func append(_ status: Keel_V1_TaskStatus, onDisk: Bool) {
        state.withLock { $0.append(Entry(status: status, onDisk: onDisk)) }
    }

    var entries: [Entry] { state.withLock { $0 } }
}
