import KeelCore

/// Times the `Resources` operations the allocator leans on, so their cost is visible next to
/// the cycle times.
struct ResourcesArithmeticBenchmark {
    var addNanoseconds: Double
    var subtractNanoseconds: Double
    var containsNanoseconds: Double
    var equalNanoseconds: Double
    var allocatableNanoseconds: Double

    static func run(iterations: Int = 200_000) -> ResourcesArithmeticBenchmark {
        let total = Scenario.agentTotal
        let part = Scenario.initialAllocation
        let clock = ContinuousClock()
        var sink = 0
        func time(_ body: () -> Int) -> Double {
            let elapsed = clock.measure { for _ in 0..<iterations { sink &+= body() } }
            return Scenario.milliseconds(elapsed) * 1e6 / Double(iterations)
        }
        let result = ResourcesArithmeticBenchmark(
            addNanoseconds: time { (total + part).count },
            subtractNanoseconds: time { (total - part).count },
            containsNanoseconds: time { total.contains(part) ? 1 : 0 },
            equalNanoseconds: time { total == part ? 1 : 0 },
            allocatableNanoseconds: time { total.allocatable(to: "eng/web").count })
        if sink == 42 { print("") }  // keep the work observable
        return result
    }

    var text: String {
        "Resources arithmetic on a 5-entry agent bag (ns/op): + \(Int(addNanoseconds)), - \(Int(subtractNanoseconds)), "
            + "contains \(Int(containsNanoseconds)), == \(Int(equalNanoseconds)), allocatable(to:) \(Int(allocatableNanoseconds))\n"
    }

    var json: String {
        "{\"benchmark\":\"resources\",\"add_ns\":\(Int(addNanoseconds)),\"subtract_ns\":\(Int(subtractNanoseconds)),"
            + "\"contains_ns\":\(Int(containsNanoseconds)),\"equal_ns\":\(Int(equalNanoseconds)),"
            + "\"allocatable_ns\":\(Int(allocatableNanoseconds))}"
    }
}
