import ArgumentParser

/// Keel's benchmark tool: `keel-bench allocator ...` reproduces Mesos'
/// `HierarchicalAllocator_BENCHMARK_Test` patterns in process.
@main
struct KeelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keel-bench",
        abstract: "Benchmarks for Keel components (build with -c release).",
        subcommands: [AllocatorBenchmark.self]
    )
}
