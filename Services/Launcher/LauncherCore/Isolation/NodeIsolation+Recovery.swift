package import Logging

extension NodeIsolation {
    /// The cgroups of a task started by an earlier launcher: `path` (relative to each mount
    /// point, e.g. `keel/web-1-…`) in every hierarchy in use where it still exists; `nil` if it
    /// exists in none.
    package func existingTaskCgroup(path: String, logger: Logger) -> TaskCgroup? {
        let members = hierarchies.filter { CheckpointFile.isDirectory($0.isolator.directory(path)) }.map {
            TaskCgroup.Member(isolator: $0.isolator, controllers: $0.controllers)
        }
        guard !members.isEmpty else { return nil }
        return TaskCgroup(
            path: path, members: members, limits: TaskResourceLimits(memoryMiB: nil, cpus: nil, maxProcesses: nil),
            rlimitPrefix: [], logger: logger)
    }
}
