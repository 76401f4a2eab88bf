import ArgumentParser

/// The allocation patterns of Mesos' allocator benchmark.
enum Pattern: String, CaseIterable, ExpressibleByArgument {
    /// Every framework declines every offer with a long filter, cycle after cycle.
    case declineOffers
    /// Agents are added, then each one is updated, with an allocation cycle after each round.
    case addAndUpdateAgent
}

/// `keel-bench allocator`: times allocation cycles of `KeelAllocator`.
struct AllocatorBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allocator",
        abstract: "Time allocation cycles (Mesos HierarchicalAllocator_BENCHMARK_Test patterns)."
    )

    @Option(help: "Number of agents (default: the matrix 1000, 5000, 10000, 20000).")
    var agents: Int?

    @Option(help: "Number of frameworks (default: the matrix 1, 50, 100, 200, 500, 1000).")
    var frameworks: Int?

    @Option(help: "Pattern to run (default: both).")
    var pattern: Pattern?

    @Option(help: "Allocation cycles measured per configuration.")
    var cycles: Int = 10

    @Flag(help: "Print one JSON object per line instead of a table.")
    var json = false

    func validate() throws {
        guard cycles > 0 else { throw ValidationError("--cycles must be at least 1") }
        if let agents, agents <= 0 { throw ValidationError("--agents must be at least 1") }
        if let frameworks, frameworks <= 0 { throw ValidationError("--frameworks must be at least 1") }
    }

    func run() throws {
        let agentCounts = agents.map { [$0] } ?? [1000, 5000, 10000, 20000]
        let frameworkCounts = frameworks.map { [$0] } ?? [1, 50, 100, 200, 500, 1000]
        let patterns = pattern.map { [$0] } ?? Pattern.allCases
        let arithmetic = ResourcesArithmeticBenchmark.run()
        if json { print(arithmetic.json) } else { print(arithmetic.text) }
        if !json { print(Report.header) }
        for pattern in patterns {
            for agentCount in agentCounts {
                for frameworkCount in frameworkCounts {
                    let report = try Scenario.run(
                        pattern: pattern, agents: agentCount, frameworks: frameworkCount, cycles: cycles)
                    print(json ? report.json : report.row)
                }
            }
        }
    }
}
