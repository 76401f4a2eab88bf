import ArgumentParser
import KeelObservability

/// Keel's benchmark tool: `keel-bench allocator ...` reproduces Mesos'
/// `HierarchicalAllocator_BENCHMARK_Test` patterns in process; `keel-bench launch` times task
/// launches through a real local cluster.
@main
struct KeelBench: AsyncParsableCommand {
    /// Puts Swift concurrency on the event loops (``ConcurrencyExecutor``) before anything runs.
    static func main() async {
        ConcurrencyExecutor.install()
        await main(nil)
    }

    static let configuration = CommandConfiguration(
        commandName: "keel-bench",
        abstract: "Benchmarks for Keel components (build with -c release).",
        subcommands: [AllocatorBenchmark.self, LaunchBenchmark.self]
    )
}
