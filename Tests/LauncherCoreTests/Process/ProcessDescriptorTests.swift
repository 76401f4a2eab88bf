import Foundation
@preconcurrency import Glibc
import LauncherCore
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
}
