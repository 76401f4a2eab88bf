import Foundation
@preconcurrency import Glibc
import LauncherCore
import Testing

@Suite("TaskProcess termination")
struct TaskTerminationTests {
    @Test("terminate stops sleep 1000 with SIGTERM and is idempotent")
    func terminateSleep() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let process = try ProcessTestSupport.launch(.argv(["sleep", "1000"]), in: sandbox)

        let clock = ContinuousClock()
        let start = clock.now
        let status = await process.terminate(gracePeriod: .seconds(30))
        let elapsed = clock.now - start

        #expect(status == .signaled(signal: SIGTERM, coreDumped: false))
        #expect(elapsed < .seconds(20), "SIGTERM should end sleep long before the grace period")
        #expect(process.terminationStatus == status)
        let again = await process.terminate(gracePeriod: .seconds(30))
        #expect(again == status)
        let waited = try await process.wait()
        #expect(waited == status)
        #expect(!process.signalGroup(SIGTERM))
        #expect(ProcessTestSupport.isDead(process.pid))
    }

    @Test("a task that handles SIGTERM gets to exit cleanly within the grace period")
    func gracefulExit() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let script = "trap 'exit 7' TERM; echo ready > ready.tmp; mv ready.tmp ready; sleep 1000 & wait"
        let process = try ProcessTestSupport.launch(.shell(script), in: sandbox)
        let ready = await ProcessTestSupport.eventually {
            FileManager.default.fileExists(atPath: sandbox.root + "/ready")
        }
        #expect(ready)

        let status = await process.terminate(gracePeriod: .seconds(30))

        #expect(status == .exited(code: 7))
    }

    @Test("a shell and its child that both ignore SIGTERM are killed after the grace period")
    func terminateStubbornGroup() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        // Ignored signals stay ignored across fork and exec, so the child's `sleep` ignores TERM too.
        let script = """
            trap '' TERM
            sh -c 'echo $$ > child.tmp; mv child.tmp child.pid; exec sleep 1000' &
            wait
            """
        let process = try ProcessTestSupport.launch(.shell(script), in: sandbox)
        let childPid = try #require(await ProcessTestSupport.waitForPid(in: sandbox.root + "/child.pid"))
        #expect(ProcessTestSupport.processGroup(of: childPid) == process.pid)
        #expect(!ProcessTestSupport.isDead(childPid))

        let grace = Duration.seconds(1)
        let clock = ContinuousClock()
        let start = clock.now
        let status = await process.terminate(gracePeriod: grace)
        let elapsed = clock.now - start

        #expect(status == .signaled(signal: SIGKILL, coreDumped: false))
        #expect(elapsed >= grace, "both ignore SIGTERM, so only SIGKILL after the grace period ends them")
        #expect(elapsed < grace + .seconds(15))
        let childGone = await ProcessTestSupport.eventually { ProcessTestSupport.isDead(childPid) }
        #expect(childGone, "child \(childPid) survived")
        let groupEmpty = await ProcessTestSupport.eventually {
            ProcessTestSupport.liveMembers(ofGroup: process.pid).isEmpty
        }
        #expect(groupEmpty)
    }

    @Test("when the leader exits on its own, the rest of its group is killed")
    func leaderExitKillsGroup() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let script = "trap '' TERM; sleep 1000 & echo $! > child.tmp; mv child.tmp child.pid; exit 0"
        let process = try ProcessTestSupport.launch(.shell(script), in: sandbox)

        let status = try await process.wait()
        let childPid = try #require(await ProcessTestSupport.waitForPid(in: sandbox.root + "/child.pid"))

        #expect(status == .exited(code: 0))
        let childGone = await ProcessTestSupport.eventually { ProcessTestSupport.isDead(childPid) }
        #expect(childGone, "orphaned child \(childPid) survived its leader")
    }

    @Test("terminate after a natural exit returns the recorded status and signals nothing")
    func terminateAfterExit() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let process = try ProcessTestSupport.launch(.shell("exit 5"), in: sandbox)
        let exited = try await process.wait()

        let status = await process.terminate(gracePeriod: .zero)

        #expect(exited == .exited(code: 5))
        #expect(status == exited)
        #expect(!process.signalGroup(SIGKILL))
    }

    @Test("concurrent terminate calls all return the same status")
    func concurrentTerminate() async throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let process = try ProcessTestSupport.launch(.shell("trap '' TERM; sleep 1000"), in: sandbox)

        let statuses = await withTaskGroup(of: TerminationStatus.self) { group in
            for _ in 0..<4 {
                group.addTask { await process.terminate(gracePeriod: .milliseconds(200)) }
            }
            return await group.reduce(into: [TerminationStatus]()) { $0.append($1) }
        }

        #expect(statuses.count == 4)
        #expect(Set(statuses) == [.signaled(signal: SIGKILL, coreDumped: false)])
    }
}
