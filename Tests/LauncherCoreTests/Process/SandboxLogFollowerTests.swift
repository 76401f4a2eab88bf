import Foundation
@preconcurrency import Glibc
import LauncherCore
import Testing

/// The follower behind `keel logs -f` and `keel run`, against rotations done by hand the way
/// keel-task-supervisor does them (rename `stdout.N` to `stdout.N+1`, `stdout` to `stdout.1`).
@Suite("Sandbox log follower")
struct SandboxLogFollowerTests {
    /// Appends `text` to `name` in `sandbox`.
    private static func append(_ text: String, to name: String, in sandbox: TaskSandbox) throws {
        let handle = try #require(FileHandle(forWritingAtPath: sandbox.root + "/" + name))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
    }

    /// Shifts `stdout.N` to `stdout.N+1` (dropping those past `kept`) and `stdout` to
    /// `stdout.1`, then starts an empty `stdout`.
    private static func rotate(_ sandbox: TaskSandbox, kept: Int) throws {
        let base = sandbox.root + "/stdout"
        unlink(base + ".\(kept)")
        for number in stride(from: kept - 1, through: 1, by: -1) {
            rename(base + ".\(number)", base + ".\(number + 1)")
        }
        rename(base, base + ".1")
        try ProcessTestSupport.write("", to: base)
    }

    private static func drain(_ follower: SandboxLogFollower) throws -> String {
        var read = ""
        while true {
            let chunk = try follower.next(length: 5)
            if chunk.data.isEmpty { return read }
            read += String(decoding: chunk.data, as: UTF8.self)
        }
    }

    @Test("files rotated several times between two reads are all read, oldest first, each byte once")
    func severalRotationsBetweenReads() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let follower = SandboxLogFollower(sandbox: sandbox, path: "stdout")

        try Self.append("one-a ", to: "stdout", in: sandbox)
        #expect(try Self.drain(follower) == "one-a ")
        try Self.append("one-b ", to: "stdout", in: sandbox)
        try Self.rotate(sandbox, kept: 4)
        try Self.append("two ", to: "stdout", in: sandbox)
        try Self.rotate(sandbox, kept: 4)
        try Self.append("three ", to: "stdout", in: sandbox)
        try Self.rotate(sandbox, kept: 4)
        try Self.append("four", to: "stdout", in: sandbox)

        #expect(try Self.drain(follower) == "one-b two three four")
        try Self.append(" more", to: "stdout", in: sandbox)
        #expect(try Self.drain(follower) == " more")
    }

    @Test("the file being read is finished even once deleted; a file deleted before it was opened is skipped")
    func rotatedOutOfTheKeptFiles() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        let follower = SandboxLogFollower(sandbox: sandbox, path: "stdout")

        try Self.append("first-a ", to: "stdout", in: sandbox)
        #expect(try Self.drain(follower) == "first-a ")
        try Self.append("first-b ", to: "stdout", in: sandbox)
        // Two files are kept: after four rotations the first file and "gone " are deleted.
        for text in ["gone ", "kept-1 ", "kept-2 ", "live "] {
            try Self.rotate(sandbox, kept: 2)
            try Self.append(text, to: "stdout", in: sandbox)
        }
        #expect(try Self.drain(follower) == "first-b kept-1 kept-2 live ")
    }
}
