import Dispatch
import LauncherCore
import Synchronization
import Testing

@Suite("Task work executor", .timeLimit(.minutes(1)))
struct TaskWorkExecutorTests {
    @Test("task work runs on it, child tasks too, and blocking work does not hold up the others")
    func concurrentTaskWork() async {
        let executor = TaskWorkExecutor()
        // Each of two tasks blocks its thread until the other has started: they finish only if
        // they run on two threads at once, as blocking task work (a fork through the spawner,
        // file system calls) needs.
        let first = DispatchSemaphore(value: 0)
        let second = DispatchSemaphore(value: 0)
        let met = await withTaskExecutorPreference(executor) {
            await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    first.signal()
                    return second.wait(timeout: .now() + 30) == .success
                }
                group.addTask {
                    second.signal()
                    return first.wait(timeout: .now() + 30) == .success
                }
                var results: [Bool] = []
                for await result in group { results.append(result) }
                return results
            }
        }
        #expect(met == [true, true])
    }
}
