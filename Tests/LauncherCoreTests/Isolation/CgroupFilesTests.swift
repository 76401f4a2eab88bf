import Foundation
@testable import LauncherCore
import Testing

@Suite("Reading cgroup files")
struct CgroupFilesTests {
    /// Writes `contents` to a new file of a fresh directory and passes its path to `body`.
    func withFile(_ contents: String, _ body: (String) throws -> Void) throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let path = workDir + "/file"
        try contents.write(toFile: path, atomically: false, encoding: .utf8)
        try body(path)
    }

    @Test("single numbers, `max` and missing files")
    func integers() throws {
        try withFile("1073741824\n") { #expect(CgroupFiles.readInteger($0) == 1_073_741_824) }
        try withFile("  42\t\n") { #expect(CgroupFiles.readInteger($0) == 42) }
        try withFile("max\n") { #expect(CgroupFiles.readInteger($0) == nil) }
        try withFile("") { #expect(CgroupFiles.readInteger($0) == nil) }
        try withFile("99999999999999999999999\n") { #expect(CgroupFiles.readInteger($0) == nil) }
        #expect(CgroupFiles.readInteger("/nonexistent/keel/memory.max") == nil)
    }

    @Test("first lines, trimmed")
    func lines() throws {
        try withFile("exited 0\n") { #expect(CgroupFiles.readLine($0) == "exited 0") }
        try withFile(" \tTHAWED \n") { #expect(CgroupFiles.readLine($0) == "THAWED") }
        try withFile("\n\ncpu memory pids\nsecond\n") { #expect(CgroupFiles.readLine($0) == "cpu memory pids") }
        try withFile("no newline") { #expect(CgroupFiles.readLine($0) == "no newline") }
        try withFile("") { #expect(CgroupFiles.readLine($0) == nil) }
        try withFile("\n") { #expect(CgroupFiles.readLine($0) == nil) }
    }

    @Test("keyed values match whole keys only")
    func keyed() throws {
        try withFile("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n") { path in
            #expect(CgroupFiles.keyedValue(path, key: "oom_kill") == 3)
            #expect(CgroupFiles.keyedValue(path, key: "oom_kill_disable") == 0)
            #expect(CgroupFiles.keyedValue(path, key: "oom") == nil)
            #expect(CgroupFiles.keyedValue(path, key: "missing") == nil)
        }
        try withFile("populated 1\nfrozen 0") { #expect(CgroupFiles.keyedValue($0, key: "frozen") == 0) }
    }

    @Test("two keyed values from one read, in either order, whole keys only")
    func keyedPairs() throws {
        try withFile("populated 0\nfrozen 1\n") { path in
            #expect(CgroupFiles.keyedValues(path, "populated", "frozen") == (0, 1))
            #expect(CgroupFiles.keyedValues(path, "frozen", "populated") == (1, 0))
            #expect(CgroupFiles.keyedValues(path, "frozen", "missing") == (1, nil))
            #expect(CgroupFiles.keyedValues(path, "froze", "populate") == (nil, nil))
        }
        try withFile("oom_kill_disable 0\nunder_oom 0\noom_kill 3") { path in
            #expect(CgroupFiles.keyedValues(path, "oom_kill", "under_oom") == (3, 0))
        }
        #expect(CgroupFiles.keyedValues("/nonexistent/keel/cgroup.events", "populated", "frozen") == (nil, nil))
    }

    @Test("process lists, also longer than one read buffer")
    func pids() throws {
        try withFile("") { #expect(CgroupFiles.pids($0).isEmpty) }
        try withFile("1\n22\n333\n") { #expect(CgroupFiles.pids($0) == [1, 22, 333]) }
        let many = (1...3000).map { 100_000 + Int32($0) }
        try withFile(many.map { "\($0)\n" }.joined()) { path in
            #expect(CgroupFiles.pids(path) == many)
            #expect(CgroupFiles.read(path)?.count == many.count * 7)
        }
        #expect(CgroupFiles.pids("/nonexistent/keel/cgroup.procs").isEmpty)
    }

    @Test("files of directories below a registered mount point are opened through kept descriptors, which go with the directory")
    func keptDirectories() throws {
        let mountPoint = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(mountPoint) }
        CgroupDirectoryCache.register(mountPoint: mountPoint)
        let directory = mountPoint + "/keel/slot-1"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "7\n".write(toFile: directory + "/pids.max", atomically: false, encoding: .utf8)
        #expect(CgroupDirectoryCache.directory(mountPoint) == nil, "the mount point itself is no task cgroup")
        #expect(CgroupFiles.readInteger(directory + "/pids.max") == 7)
        let kept = try #require(CgroupDirectoryCache.directory(directory))
        #expect(CgroupDirectoryCache.directory(directory) === kept)
        try CgroupFiles.write("9", to: directory + "/pids.max", purpose: "test")
        #expect(CgroupFiles.readInteger(directory + "/pids.max") == 9)

        // Removed and made again behind the cache's back: the path finds the new directory.
        try FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "11\n".write(toFile: directory + "/pids.max", atomically: false, encoding: .utf8)
        #expect(CgroupFiles.readInteger(directory + "/pids.max") == 11)
        #expect(CgroupDirectoryCache.directory(directory) !== kept)

        // Removed through CgroupFiles: forgotten.
        try FileManager.default.removeItem(atPath: directory + "/pids.max")
        #expect(CgroupFiles.removeDirectory(directory).removed)
        #expect(CgroupFiles.readInteger(directory + "/pids.max") == nil)
        #expect(CgroupFiles.pids(directory + "/cgroup.procs").isEmpty)

        // Elsewhere nothing is kept.
        let elsewhere = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(elsewhere) }
        try "5\n".write(toFile: elsewhere + "/value", atomically: false, encoding: .utf8)
        #expect(CgroupFiles.readInteger(elsewhere + "/value") == 5)
        #expect(CgroupDirectoryCache.directory(elsewhere) == nil)
    }
}
