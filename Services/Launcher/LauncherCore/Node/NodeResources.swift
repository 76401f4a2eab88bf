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

    /// The detected resources with `overrides` (Mesos `--resources` syntax) applied per name,
    /// less what is kept for the system.
    ///
    /// For a name the overrides give unreserved (e.g. `cpus:4`), the overrides are the whole
    /// amount. For a name they give only reserved for roles (static reservations such as
    /// `cpus(eng):2`), the reservations are carved out of the detected amount and the rest stays
    /// unreserved. `systemReserved` (e.g. `mem:512;disk:1024`) is taken from the detected amounts
    /// before that, so it is never offered.
    ///
    /// - Throws: `KeelError` `.invalidArgument` when `overrides` does not parse, or when static
    ///   reservations exceed what is detected.
    package static func detect(
        workDir: String, overrides: String?, systemReserved: Resources = defaultSystemReserved
    ) throws -> Resources {
        let cpus = Double(max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        let memory = max(256, physicalMemoryMiB() - systemReserved.mem)
        let disk = max(0, diskMiB(path: workDir) - systemReserved.disk)
        let detected = Resources(cpus: cpus, mem: memory.rounded(.down), disk: disk.rounded(.down), ports: defaultPorts)
        return try applying(overrides, to: detected)
    }

    /// What the system keeps by default: ``reservedMemoryMiB`` and ``reservedDiskMiB``.
    package static let defaultSystemReserved = Resources(cpus: 0, mem: reservedMemoryMiB, disk: reservedDiskMiB)

    /// `detected` with `overrides` applied as ``detect(workDir:overrides:systemReserved:)`` describes.
    package static func applying(_ overrides: String?, to detected: Resources) throws -> Resources {
        guard let overrides, !overrides.isEmpty else { return detected }
        let given = try Resources(parsing: overrides)
        var result = detected.filtered { !given.names.contains($0.name) }
        for name in given.names.sorted() {
            let entries = given.filtered { $0.name == name }
            if !entries.unreserved.isEmpty {
                result += entries
                continue
            }
            let pool = detected.filtered { $0.name == name }
            let carved = entries.flattened()
            guard pool.contains(carved) else {
                throw KeelError.invalidArgument(
                    "the static reservations '\(entries)' need more than the node has of \(name) ('\(pool)'); reserve less or give the total, e.g. \(name):AMOUNT;\(entries)"
                )
            }
            result += (pool - carved) + entries
        }
        return result
    }

    /// Parses a fault domain, `region:NAME;zone:NAME` (both required).
    package static func parseFaultDomain(_ text: String?) throws -> (region: String, zone: String)? {
        guard let text, !text.isEmpty else { return nil }
        var fields: [String: String] = [:]
        for pair in text.split(separator: ";") {
            let parts = pair.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, ["region", "zone"].contains(parts[0]), !parts[1].isEmpty, fields[parts[0]] == nil else {
                throw KeelError.invalidArgument("fault domain '\(text)' must be region:NAME;zone:NAME, e.g. region:eu-west;zone:eu-west-1a")
            }
            fields[parts[0]] = parts[1]
        }
        guard let region = fields["region"], let zone = fields["zone"] else {
            throw KeelError.invalidArgument("fault domain '\(text)' needs both a region and a zone, e.g. region:eu-west;zone:eu-west-1a")
        }
        return (region, zone)
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
