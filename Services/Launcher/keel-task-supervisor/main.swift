// keel-task-supervisor EXIT_STATUS_FILE EXECUTABLE ARGV0 [ARG...]
//
// The parent of one task process, started by keel-launcher as the leader of the task's session
// and process group. It starts EXECUTABLE with ARGV0 ARG... (same environment, working
// directory and standard files, every signal at its default action), waits for it, and writes
// how it ended to EXIT_STATUS_FILE atomically: `exited CODE` or `signaled SIGNAL [core]`.
//
// It exists so that tasks outlive the launcher: when keel-launcher is killed or restarted, the
// task keeps its parent, the supervisor still collects its true exit status, and the next
// launcher reads the file (see TaskProcess in LauncherCore). It ignores SIGTERM, SIGINT,
// SIGHUP and SIGQUIT, which the launcher sends to the whole group to stop the task, so that it
// survives to record the outcome; SIGKILL to the group ends it together with the task.
// It links nothing but the C library, so it costs a few hundred kilobytes per task.
@preconcurrency import Glibc

func fail(_ message: String) -> Never {
    fputs("keel-task-supervisor: \(message)\n", stderr)
    exit(127)
}

/// Writes `text` to `path` through a temporary file, fsync and rename, then syncs the directory.
func writeAtomically(_ text: String, to path: String) -> Bool {
    let temporary = path + ".tmp"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return false }
    let bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if written < 0 {
            if errno == EINTR { continue }
            close(fd)
            return false
        }
        offset += written
    }
    guard fsync(fd) == 0, close(fd) == 0, rename(temporary, path) == 0 else { return false }
    var directory = path
    if let slash = directory.lastIndex(of: "/") { directory = String(directory[..<slash]) } else { directory = "." }
    let directoryFD = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if directoryFD >= 0 {
        fsync(directoryFD)
        close(directoryFD)
    }
    return true
}

let arguments = CommandLine.arguments
guard arguments.count >= 4 else {
    fail("usage: keel-task-supervisor EXIT_STATUS_FILE EXECUTABLE ARGV0 [ARG...]")
}
let statusPath = arguments[1]
let executable = arguments[2]
let taskArguments = Array(arguments[3...])

for signalNumber in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE] {
    signal(signalNumber, SIG_IGN)
}

var attributes = posix_spawnattr_t()
posix_spawnattr_init(&attributes)
var noSignals = sigset_t()
sigemptyset(&noSignals)
var allSignals = sigset_t()
sigfillset(&allSignals)
posix_spawnattr_setsigmask(&attributes, &noSignals)
posix_spawnattr_setsigdefault(&attributes, &allSignals)
posix_spawnattr_setflags(&attributes, Int16(Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)))

let pointers: [UnsafeMutablePointer<CChar>?] = taskArguments.map { strdup($0) } + [nil]
var child: pid_t = 0
let spawned = pointers.withUnsafeBufferPointer { argv in
    posix_spawn(&child, executable, nil, &attributes, argv.baseAddress!, environ)
}
guard spawned == 0 else {
    let reason = String(cString: strerror(spawned))
    _ = writeAtomically("exited 127\n", to: statusPath)
    fail("cannot start '\(executable)': \(reason)")
}

var raw: Int32 = 0
while waitpid(child, &raw, 0) < 0 {
    if errno != EINTR { fail("cannot wait for the task (pid \(child)): \(String(cString: strerror(errno)))") }
}
let low = raw & 0x7f
let record: String
let code: Int32
if low == 0 {
    code = (raw >> 8) & 0xff
    record = "exited \(code)\n"
} else {
    code = 128 + low
    record = "signaled \(low)\(raw & 0x80 != 0 ? " core" : "")\n"
}
if !writeAtomically(record, to: statusPath) {
    fputs("keel-task-supervisor: cannot write '\(statusPath)': \(String(cString: strerror(errno)))\n", stderr)
}
exit(code)
