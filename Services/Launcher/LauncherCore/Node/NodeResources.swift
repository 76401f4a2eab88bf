#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Foundation
package import KeelCore

/// Detects what a node can offer: CPUs, memory and the disk of the work directory, plus the
/// default port range; explicit settings override each detected value.
package enum NodeResources {
    /// Memory kept back for the operating system and Keel itself, in MiB.
    package static let reservedMemoryMiB: Double = 512
    /// Disk kept back in the work directory's file system, in MiB.
    package static let reservedDiskMiB: Double = 1024
    /// The ports offered when none are configured.
    package static let defaultPorts: ValueRanges = [31000...32000]

    /// The detected resources with `overrides` (Mesos `--resources` syntax) applied per name.
    ///
    /// - Throws: `KeelError` `.invalidArgument` when `overrides` does not parse.
    package static func detect(workDir: String, overrides: String?) throws -> Resources {
        let cpus = Double(max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let memory = max(256, physicalMemoryMiB() - reservedMemoryMiB)
        let disk = max(0, diskMiB(path: workDir) - reservedDiskMiB)
        var detected = Resources(cpus: cpus, mem: memory.rounded(.down), disk: disk.rounded(.down), ports: defaultPorts)
        if let overrides, !overrides.isEmpty {
            let given = try Resources(parsing: overrides)
            detected = detected.filtered { resource in !given.names.contains(resource.name) } + given
        }
        return detected
    }

    /// Total physical memory in MiB.
    package static func physicalMemoryMiB() -> Double {
        let pages = Double(sysconf(Int32(_SC_PHYS_PAGES)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        return pages * pageSize / 1_048_576
    }

    /// Space available in the file system holding `path`, in MiB (0 if it cannot be read).
    package static func diskMiB(path: String) -> Double {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return 0 }
        return Double(stats.f_bavail) * Double(stats.f_frsize) / 1_048_576
    }

    /// The boot id of this node (changes on every reboot), or "" if unknown.
    package static func bootID() -> String {
        (try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
    }

    /// Parses `name:value;name:value` attributes.
    package static func parseAttributes(_ text: String?) throws -> [(String, String)] {
        guard let text, !text.isEmpty else { return [] }
        return try text.split(separator: ";").map { pair in
            let parts = pair.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw KeelError.invalidArgument("attribute '\(pair)' is not name:value (e.g. rack:r1;ssd:true)")
            }
            return (String(parts[0]), String(parts[1]))
        }
    }
}
