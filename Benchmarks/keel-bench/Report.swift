#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The measurements of one (pattern, agents, frameworks) configuration.
struct Report {
    var pattern: Pattern
    var agents: Int
    var frameworks: Int
    var cycles: Int
    /// Wall time of each `allocate(now:)` call, in milliseconds.
    var cycleMilliseconds: [Double]
    /// Offers returned per cycle.
    var offers: [Int]
    /// Time of the per-cycle event work outside `allocate` (declines or agent updates), in ms.
    var eventMilliseconds: [Double]
    /// Time to set the scenario up (adding agents, frameworks and initial allocations), in ms.
    var setupMilliseconds: Double
    /// Peak resident set size of the process so far, in KiB (`VmHWM`).
    var peakRSSKiB: Int

    static let header = """
        | agents | frameworks | pattern | cycle p50 ms | cycle p99 ms | offers/cycle | events p50 ms | setup ms | peak RSS MiB |
        |---:|---:|---|---:|---:|---:|---:|---:|---:|
        """

    var row: String {
        "| \(agents) | \(frameworks) | \(pattern.rawValue) | \(f(p(cycleMilliseconds, 50))) | \(f(p(cycleMilliseconds, 99))) | "
            + "\(f(meanOffers)) | \(f(p(eventMilliseconds, 50))) | \(f(setupMilliseconds)) | \(peakRSSKiB / 1024) |"
    }

    var json: String {
        "{\"benchmark\":\"allocator\",\"pattern\":\"\(pattern.rawValue)\",\"agents\":\(agents),\"frameworks\":\(frameworks),"
            + "\"cycles\":\(cycles),\"cycle_ms_p50\":\(f(p(cycleMilliseconds, 50))),\"cycle_ms_p99\":\(f(p(cycleMilliseconds, 99))),"
            + "\"cycle_ms_max\":\(f(cycleMilliseconds.max() ?? 0)),\"offers_per_cycle\":\(f(meanOffers)),"
            + "\"event_ms_p50\":\(f(p(eventMilliseconds, 50))),\"setup_ms\":\(f(setupMilliseconds)),\"peak_rss_kib\":\(peakRSSKiB)}"
    }

    private var meanOffers: Double { offers.isEmpty ? 0 : Double(offers.reduce(0, +)) / Double(offers.count) }

    /// The `percent` percentile (nearest rank).
    private func p(_ values: [Double], _ percent: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let rank = Int((percent / 100 * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }

    private func f(_ value: Double) -> String {
        let scaled = (value * 100).rounded() / 100
        return "\(scaled)"
    }
}

/// Reads the peak resident set size from `/proc/self/status` (`VmHWM`), in KiB; 0 elsewhere.
func peakRSSKiB() -> Int {
    guard let file = fopen("/proc/self/status", "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix("VmHWM:") {
            return Int(text.dropFirst(6).filter(\.isNumber)) ?? 0
        }
    }
    return 0
}
