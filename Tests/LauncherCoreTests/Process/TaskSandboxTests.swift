import Foundation
@preconcurrency import Glibc
import LauncherCore
import Testing

@Suite("TaskSandbox")
struct TaskSandboxTests {
    @Test("creates <workDir>/sandboxes/<framework>/<task>/<run> with stdout and stderr")
    func createsLayout() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }

        let sandbox = try TaskSandbox.create(workDir: workDir, frameworkID: "fw", taskID: "t1", runID: "r1")

        #expect(sandbox.root == workDir + "/sandboxes/fw/t1/r1")
        #expect(sandbox.stdoutPath == sandbox.root + "/stdout")
        #expect(FileManager.default.fileExists(atPath: sandbox.stdoutPath))
        #expect(FileManager.default.fileExists(atPath: sandbox.stderrPath))
        let names = try sandbox.list(path: "").map(\.name)
        #expect(names == ["stderr", "stdout"])
        let again = try TaskSandbox.create(workDir: workDir, frameworkID: "fw", taskID: "t1", runID: "r1")
        #expect(again == sandbox)
    }

    @Test("a sandbox whose task directory was replaced by a symlink is refused")
    func refusesSymlinkedTaskDirectory() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        _ = try TaskSandbox.create(workDir: workDir, frameworkID: "fw", taskID: "t1", runID: "r1")
        try FileManager.default.createDirectory(atPath: workDir + "/elsewhere/r2", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: workDir + "/sandboxes/fw/t2", withDestinationPath: workDir + "/elsewhere")

        let error = #expect(throws: LauncherError.self) {
            try TaskSandbox.create(workDir: workDir, frameworkID: "fw", taskID: "t2", runID: "r2")
        }
        #expect(error?.message.contains("sandboxes/fw/t2") == true)
    }

    @Test("a work directory reached through a symlink gives sandboxes under its real path")
    func canonicalWorkDir() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        try FileManager.default.createDirectory(atPath: workDir + "/real", withIntermediateDirectories: false)
        try FileManager.default.createSymbolicLink(atPath: workDir + "/link", withDestinationPath: workDir + "/real")

        let sandbox = try TaskSandbox.create(workDir: workDir + "/link/", frameworkID: "fw", taskID: "t1", runID: "r1")
        #expect(sandbox.root == workDir + "/real/sandboxes/fw/t1/r1")
    }

    @Test("directories are created with their missing parents; a file in the way is named in the error")
    func makeDirectories() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        try CheckpointFile.makeDirectories(workDir + "/a/b/c/")
        try CheckpointFile.makeDirectories(workDir + "/a/b/c")
        try CheckpointFile.makeDirectories(workDir + "/a/b/d")
        #expect(CheckpointFile.isDirectory(workDir + "/a/b/c") && CheckpointFile.isDirectory(workDir + "/a/b/d"))

        #expect(FileManager.default.createFile(atPath: workDir + "/a/file", contents: Data()))
        let error = #expect(throws: LauncherError.self) { try CheckpointFile.makeDirectories(workDir + "/a/file/x/y") }
        #expect(error?.message.contains("'\(workDir)/a/file'") == true)
        let exists = #expect(throws: LauncherError.self) { try CheckpointFile.makeDirectories(workDir + "/a/file") }
        #expect(exists?.message.contains("'\(workDir)/a/file'") == true)
    }

    @Test("IDs that are not a single path component are rejected", arguments: ["", ".", "..", "../x", "a/b"])
    func rejectsBadIDs(id: String) throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }

        let error = #expect(throws: LauncherError.self) {
            try TaskSandbox.create(workDir: workDir, frameworkID: "fw", taskID: id, runID: "r1")
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test("paths escaping the sandbox are rejected", arguments: ["../x", "a/../../x", "..", "/etc/passwd", "/"])
    func rejectsEscapes(path: String) throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)

        let error = #expect(throws: LauncherError.self) {
            try sandbox.resolve(relativePath: path)
        }
        #expect(error?.code == .permissionDenied)
        #expect(error?.message.contains("escapes the sandbox") == true)
    }

    @Test("symlinks pointing outside the sandbox are rejected, inside ones followed")
    func symlinks() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        #expect(symlink("/etc", sandbox.root + "/etc") == 0)
        #expect(symlink("stdout", sandbox.root + "/out-link") == 0)

        for path in ["etc", "etc/passwd", "./etc/hostname"] {
            let error = #expect(throws: LauncherError.self) {
                try sandbox.resolve(relativePath: path)
            }
            #expect(error?.code == .permissionDenied)
        }
        let readError = #expect(throws: LauncherError.self) {
            try sandbox.read(path: "etc/passwd", offset: 0, length: 100)
        }
        #expect(readError?.code == .permissionDenied)
        let listError = #expect(throws: LauncherError.self) {
            try sandbox.list(path: "etc")
        }
        #expect(listError?.code == .permissionDenied)

        #expect(try sandbox.resolve(relativePath: "out-link") == sandbox.stdoutPath)
        #expect(try sandbox.resolve(relativePath: "") == sandbox.root)
        #expect(try sandbox.resolve(relativePath: ".") == sandbox.root)
    }

    @Test("a missing path is notFound")
    func missingPath() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)

        let error = #expect(throws: LauncherError.self) {
            try sandbox.read(path: "no/such/file", offset: 0, length: 10)
        }
        #expect(error?.code == .notFound)
    }

    @Test("read honours offset and length and reports the file size")
    func readWithOffsetAndLength() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        try ProcessTestSupport.write("0123456789", to: sandbox.root + "/digits")

        let middle = try sandbox.read(path: "digits", offset: 2, length: 3)
        #expect(middle.data == Array("234".utf8))
        #expect(middle.offset == 2)
        #expect(middle.fileSize == 10)

        let tail = try sandbox.read(path: "digits", offset: 8, length: 100)
        #expect(tail.data == Array("89".utf8))

        let past = try sandbox.read(path: "digits", offset: 20, length: 5)
        #expect(past.data.isEmpty)
        #expect(past.fileSize == 10)

        let whole = try sandbox.read(path: "./digits", offset: 0, length: 10)
        #expect(String(decoding: whole.data, as: UTF8.self) == "0123456789")

        let negative = #expect(throws: LauncherError.self) {
            try sandbox.read(path: "digits", offset: -1, length: 5)
        }
        #expect(negative?.code == .invalidArgument)
        let directory = #expect(throws: LauncherError.self) {
            try sandbox.read(path: "", offset: 0, length: 5)
        }
        #expect(directory?.code == .invalidArgument)
    }

    @Test("list reports name, size, mode, mtime and directory flag")
    func listEntries() throws {
        let workDir = try ProcessTestSupport.makeWorkDir()
        defer { ProcessTestSupport.removeTree(workDir) }
        let sandbox = try ProcessTestSupport.makeSandbox(in: workDir)
        #expect(mkdir(sandbox.root + "/data", 0o750) == 0)
        try ProcessTestSupport.write("abc", to: sandbox.root + "/data/file.txt")
        #expect(chmod(sandbox.root + "/data/file.txt", 0o640) == 0)

        let top = try sandbox.list(path: "")
        #expect(top.map(\.name) == ["data", "stderr", "stdout"])
        let data = try #require(top.first)
        #expect(data.isDirectory)
        #expect(data.mode & 0o777 == 0o750)

        let inner = try sandbox.list(path: "data")
        #expect(inner.count == 1)
        let file = try #require(inner.first)
        #expect(file.name == "file.txt")
        #expect(file.relativePath == "data/file.txt")
        #expect(file.size == 3)
        #expect(file.mode & 0o777 == 0o640)
        #expect(!file.isDirectory)
        let now = Int64(Date().timeIntervalSince1970)
        #expect(abs(file.mtime - now) < 3600)

        let notDirectory = #expect(throws: LauncherError.self) {
            try sandbox.list(path: "stdout")
        }
        #expect(notDirectory?.code == .invalidArgument)
    }
}
