import Foundation
@preconcurrency import Glibc
import LauncherCore
import Synchronization
import Testing

@Suite("Process descriptors")
struct ProcessDescriptorTests {
    @Test("a pidfd stays unreadable while its process runs and wakes the waiter when it ends")
    func waitsForExit() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["1000"]
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        let pidfd = try #require(ProcessDescriptor.open(process.processIdentifier), "this kernel and C library have pidfd_open")
        defer { ProcessDescriptor.close(pidfd) }

        var entry = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        #expect(poll(&entry, 1, 0) == 0, "not readable while the process runs")
        let waiter = Task.detached { ProcessDescriptor.waitForExit(pidfd) }
        kill(process.processIdentifier, SIGKILL)
        #expect(await waiter.value)
    }

    @Test("there is no pidfd for a process that does not exist")
    func missingProcess() {
        #expect(ProcessDescriptor.open(Int32.max - 1) == nil)
    }

    @Test("one watcher thread sees every watched process end, once each, in whatever order they end")
    func watcherSeesEveryExit() async throws {
        let watcher = try #require(ProcessExitWatcher.shared)
        let count = 40
        var processes: [Process] = []
        defer { for process in processes where process.isRunning { process.terminate() } }
        let ended = Mutex<[Int32: Int]>([:])
        for _ in 0..<count {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sleep")
            process.arguments = ["1000"]
            try process.run()
            processes.append(process)
            let pid = process.processIdentifier
            let pidfd = try #require(ProcessDescriptor.open(pid))
            #expect(watcher.watch(pidfd) { ended.withLock { $0[pid, default: 0] += 1 } })
        }
        // Other tests start and end threads meanwhile: the watcher's are counted by their name.
        #expect(Self.threads(named: ProcessExitWatcher.threadName) == 1, "one watcher thread for all watched processes")
        #expect(ended.withLock { $0.isEmpty }, "nothing ended yet")
        // Kill them in reverse order of watching.
        for process in processes.reversed() { kill(process.processIdentifier, SIGKILL) }
        #expect(await ProcessTestSupport.eventually { ended.withLock { $0.count } == count })
        #expect(ended.withLock { $0.values.allSatisfy { $0 == 1 } })
        #expect(Set(ended.withLock { Array($0.keys) }) == Set(processes.map(\.processIdentifier)))
    }

    /// How many threads of this process are named `name`.
    static func threads(named name: String) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { task in
            let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)
            return comm?.trimmingCharacters(in: .newlines) == name
        }.count
    }
}
