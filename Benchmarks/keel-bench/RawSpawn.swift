import ArgumentParser
import Foundation
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The baseline: spawning the task's program directly with `posix_spawn` and waiting for it.
enum RawSpawn {
    /// Spawns `program` `count` times, `parallelism` at a time (each spawner thread waits for
    /// its child before the next spawn); returns the wall time in seconds.
    static func run(program: String, count: Int, parallelism: Int) throws -> Double {
        let width = max(1, min(parallelism, count))
        let failures = Mutex(0)
        let start = ContinuousClock.now
        DispatchQueue.concurrentPerform(iterations: width) { worker in
            let share = count / width + (worker < count % width ? 1 : 0)
            for _ in 0..<share where !spawnAndWait(program) {
                failures.withLock { $0 += 1 }
            }
        }
        let elapsed = LaunchRun.seconds(ContinuousClock.now - start)
        let failed = failures.withLock { $0 }
        guard failed == 0 else {
            throw ValidationError("\(failed) of \(count) direct spawns of \(program) failed")
        }
        return elapsed
    }

    /// One `posix_spawn` + `waitpid`; whether the program exited with 0.
    private static func spawnAndWait(_ program: String) -> Bool {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(program), nil]
        defer { free(argv[0]) }
        let status = argv.withUnsafeBufferPointer { pointer in
            posix_spawn(&pid, program, nil, nil, pointer.baseAddress!, environ)
        }
        guard status == 0 else { return false }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 {
            if errno != EINTR { return false }
        }
        return raw == 0
    }
}
