@preconcurrency import Glibc

/// Writes `text` to `path` through a temporary file and a rename, so a reader sees the whole
/// record or none.
///
/// There is no `fsync`: the file only has to outlive keel-launcher, not the machine. A launcher
/// that restarts within the same boot reads it from the page cache. After a reboot the launcher
/// registers as a new agent and drops every task of the old boot without reading their files
/// (see TaskManager.recover in LauncherCore), so flushing would only make each task's end wait
/// for the disk.
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
    return close(fd) == 0 && rename(temporary, path) == 0
}
