@preconcurrency import Glibc
package import Logging

extension NodeIsolation {
    /// Finds the cgroup hierarchies that are mounted read-write and in which the launcher can
    /// create and configure cgroups, chooses one per controller, and logs the outcome.
    ///
    /// Every candidate is probed for real: a cgroup `<root>/.probe-<pid>` is created, its control
    /// files checked, and removed again. Per controller, cgroup v2 is preferred when the
    /// controller is available there (on hybrid hosts it usually is not, except the core v2
    /// freezer), then cgroup v1. Memory and pids without any cgroup fall back to rlimits,
    /// which are crude and logged as such; CPU and freezer have no fallback.
    ///
    /// With `taskSupervisor` (the `keel-task-supervisor` tasks run under), PID namespaces are
    /// checked too (``checkPIDNamespaces(supervisor:logger:)``) unless the settings turn them off.
    package static func detect(
        settings: Settings = Settings(), taskSupervisor: String? = nil, logger: Logger
    ) -> NodeIsolation {
        let prlimit = ["/usr/bin/prlimit", "/bin/prlimit"].first { (path: String) in access(path, X_OK) == 0 }
        var assignments: [CgroupController: any CgroupIsolator] = [:]
        if settings.useCgroups {
            let mounts = cgroupMounts()
            if let v2 = mounts.v2.flatMap({ probeV2(mountPoint: $0, settings: settings, logger: logger) }) {
                for controller in v2.controllers { assignments[controller] = v2 }
            }
            for (mountPoint, controllers) in mounts.v1 {
                let wanted = controllers.subtracting(assignments.keys)
                guard !wanted.isEmpty else { continue }
                let usable = probeV1(mountPoint: mountPoint, controllers: wanted, settings: settings, logger: logger)
                guard !usable.isEmpty else { continue }
                let hierarchy = CgroupV1Hierarchy(mountPoint: mountPoint, controllers: usable)
                for controller in usable { assignments[controller] = hierarchy }
            }
        }
        var pidNamespaces = false
        if !settings.usePIDNamespaces {
            logger.notice("PID namespaces are turned off; tasks see every process of the node")
        } else if let taskSupervisor {
            pidNamespaces = checkPIDNamespaces(supervisor: taskSupervisor, logger: logger)
        } else {
            logger.warning("tasks run without keel-task-supervisor, so not in PID namespaces of their own; they see every process of the node")
        }
        let isolation = NodeIsolation(
            settings: settings, assignments: assignments, prlimitPath: prlimit, pidNamespaces: pidNamespaces)
        isolation.log(to: logger)
        return isolation
    }

    private func log(to logger: Logger) {
        let chosen = CgroupController.allCases.map { controller in
            "\(controller)=\(assignments[controller].map { "\($0.mechanism) (\($0.mountPoint))" } ?? "none")"
        }
        logger.notice(
            "task isolation",
            metadata: [
                "keel.isolation": "\(chosen.joined(separator: ", "))",
                "keel.capabilities": "\(capabilities.joined(separator: " "))",
                "keel.cgroup_root": "\(settings.root)",
                "keel.max_processes_per_task": "\(settings.maxProcessesPerTask)",
            ])
        for controller in rlimitFallbacks {
            let detail =
                controller == .memory
                ? "RLIMIT_AS caps virtual address space, not resident memory: runtimes that reserve large "
                    + "address ranges may fail, and no OOM is reported"
                : "RLIMIT_NPROC counts every process of the task's user (not of the task) and does not apply to root"
            logger.warning(
                "no usable cgroup for \(controller); falling back to a crude rlimit",
                metadata: ["keel.controller": "\(controller)", "keel.fallback": "\(detail)"])
        }
        for controller in CgroupController.allCases where assignments[controller] == nil && !rlimitFallbacks.contains(controller) {
            logger.warning(
                "no usable cgroup for \(controller); tasks are not isolated for it",
                metadata: [
                    "keel.controller": "\(controller)",
                    "keel.hint": "mount the controller read-write under \(settings.cgroupMount) and run the launcher as root",
                ])
        }
    }

    /// Read-write cgroup mounts from `/proc/self/mounts`: v1 mount points with the controllers
    /// Keel uses, and the v2 mount point.
    private static func cgroupMounts() -> (v1: [(String, Set<CgroupController>)], v2: String?) {
        var v1: [(String, Set<CgroupController>)] = []
        var v2: String?
        for line in (CgroupFiles.read("/proc/self/mounts") ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 4 else { continue }
            let options = Set(fields[3].split(separator: ",").map(String.init))
            guard options.contains("rw") else { continue }
            let mountPoint = String(fields[1])
            if fields[2] == "cgroup2" {
                v2 = v2 ?? mountPoint
            } else if fields[2] == "cgroup" {
                let controllers = Set(CgroupController.allCases.filter { options.contains($0.rawValue) })
                if !controllers.isEmpty { v1.append((mountPoint, controllers)) }
            }
        }
        return (v1.sorted { $0.0 < $1.0 }, v2)
    }

    /// The controllers of `controllers` whose files appear in a freshly created probe cgroup.
    private static func probeV1(
        mountPoint: String, controllers: Set<CgroupController>, settings: Settings, logger: Logger
    ) -> Set<CgroupController> {
        let probe = "\(mountPoint)/\(settings.root)/.probe-\(getpid())"
        do {
            try CgroupFiles.makeDirectories(probe, purpose: "probe cgroup v1 at \(mountPoint)")
        } catch {
            logger.info("cgroup v1 hierarchy is not usable", metadata: ["keel.mount": "\(mountPoint)", "keel.error": "\(error)"])
            return []
        }
        defer { _ = CgroupFiles.removeDirectory(probe) }
        let files: [CgroupController: String] = [
            .memory: "memory.limit_in_bytes", .cpu: "cpu.shares", .pids: "pids.max", .freezer: "freezer.state",
        ]
        return controllers.filter { files[$0].map { CgroupFiles.exists(probe + "/" + $0) } ?? false }
    }

    /// The v2 hierarchy with the controllers that can be enabled for task cgroups, or `nil`.
    private static func probeV2(mountPoint: String, settings: Settings, logger: Logger) -> CgroupV2Hierarchy? {
        let parent = "\(mountPoint)/\(settings.root)"
        let probe = "\(parent)/.probe-\(getpid())"
        do {
            try CgroupFiles.makeDirectories(probe, purpose: "probe cgroup v2 at \(mountPoint)")
        } catch {
            logger.info("cgroup v2 hierarchy is not usable", metadata: ["keel.mount": "\(mountPoint)", "keel.error": "\(error)"])
            return nil
        }
        defer { _ = CgroupFiles.removeDirectory(probe) }
        let offered = Set((CgroupFiles.readLine(mountPoint + "/cgroup.controllers") ?? "").split(separator: " ").map(String.init))
        var usable: Set<CgroupController> = CgroupFiles.exists(probe + "/cgroup.freeze") ? [.freezer] : []
        for controller in CgroupController.allCases {
            guard let name = CgroupV2Hierarchy.enableName(controller), offered.contains(name) else { continue }
            // Delegate it from the mount point to the Keel root; it then shows in the probe.
            try? CgroupFiles.write("+" + name, to: mountPoint + "/cgroup.subtree_control", purpose: "probe")
            try? CgroupFiles.write("+" + name, to: parent + "/cgroup.subtree_control", purpose: "probe")
            let granted = (CgroupFiles.readLine(probe + "/cgroup.controllers") ?? "").split(separator: " ")
            if granted.contains(Substring(name)) { usable.insert(controller) }
        }
        logger.info(
            "cgroup v2 hierarchy probed",
            metadata: [
                "keel.mount": "\(mountPoint)", "keel.offered": "\(offered.sorted())",
                "keel.usable": "\(usable.sorted().map(\.rawValue))",
            ])
        return usable.isEmpty ? nil : CgroupV2Hierarchy(mountPoint: mountPoint, controllers: usable)
    }
}
