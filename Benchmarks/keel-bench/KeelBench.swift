import ArgumentParser

/// Keel's benchmark tool: `keel-bench allocator ...` reproduces Mesos'
/// `HierarchicalAllocator_BENCHMARK_Test` patterns in process; `keel-bench launch` times task
/// launches through a real local cluster.
@main
struct KeelBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keel-bench",
        abstract: "Benchmarks for Keel components (build with -c release).",
        subcommands: [AllocatorBenchmark.self, LaunchBenchmark.self]
    )
}
