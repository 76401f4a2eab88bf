import Foundation
import Synchronization

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A process a test started, with its output collected as it arrives (without blocking threads
/// of the concurrency pool) and its exit awaited with a deadline.
final class ChildProcess: Sendable {
    private struct State {
        var stdout = Data()
        var stderr = Data()
        var exitStatus: Int32?
    }

    /// The collected output, shared with the pipe and termination handlers.
    private final class Collected: Sendable {
        let state = Mutex(State())
    }

    private let process: Process
    private let collected = Collected()
    let commandLine: String

    /// Starts `executable` with `arguments`; the environment is this process's plus `environment`;
    /// `stdin` is written to its standard input (which is empty otherwise).
    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], stdin: String? = nil) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { $1 }
        process.environment = merged
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let input = stdin.map { _ in Pipe() }
        process.standardInput = input ?? FileHandle.nullDevice
        self.process = process
        self.commandLine = ([executable] + arguments).joined(separator: " ")
        let state = collected
        out.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            state.state.withLock { $0.stdout.append(data) }
        }
        err.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            state.state.withLock { $0.stderr.append(data) }
        }
        process.terminationHandler = { process in
            // Collect what is left in the pipes before recording the exit.
            let restOut = (try? out.fileHandleForReading.readToEnd()) ?? nil
            let restErr = (try? err.fileHandleForReading.readToEnd()) ?? nil
            out.fileHandleForReading.readabilityHandler = nil
            err.fileHandleForReading.readabilityHandler = nil
            state.state.withLock { state in
                if let restOut { state.stdout.append(restOut) }
                if let restErr { state.stderr.append(restErr) }
                state.exitStatus = process.terminationStatus
            }
        }
        try process.run()
        if let input, let stdin {
            input.fileHandleForWriting.write(Data(stdin.utf8))
            try input.fileHandleForWriting.close()
        }
    }

    var pid: Int32 { process.processIdentifier }
    var stdout: String { collected.state.withLock { String(decoding: $0.stdout, as: UTF8.self) } }
    var stderr: String { collected.state.withLock { String(decoding: $0.stderr, as: UTF8.self) } }
    var exitStatus: Int32? { collected.state.withLock { $0.exitStatus } }

    /// Sends a signal to the process.
    func signal(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Waits for the exit and returns the status; throws on timeout (after killing the process).
    @discardableResult
    func wait(timeout: Duration = .seconds(120)) async throws -> Int32 {
        try await waitUntil("\(commandLine) exits", timeout: timeout) { self.exitStatus != nil }
        return exitStatus ?? -1
    }

    /// Waits until stderr contains `text`.
    func waitForStderr(_ text: String, timeout: Duration = .seconds(120)) async throws {
        try await waitUntil("stderr of \(commandLine) contains '\(text)'", timeout: timeout) {
            self.stderr.contains(text) || self.exitStatus != nil
        }
        guard stderr.contains(text) else {
            throw TestFailure("\(commandLine) exited before printing '\(text)'; stderr:\n\(stderr)")
        }
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// A failed expectation of the test harness, with what was seen.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
func waitUntil(
    _ what: String,
    timeout: Duration = .seconds(60),
    _ condition: @Sendable () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return }
        guard ContinuousClock.now < deadline else { throw TestFailure("timed out after \(timeout) waiting until \(what)") }
        try await Task.sleep(for: .milliseconds(50))
    }
}
