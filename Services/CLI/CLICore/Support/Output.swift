import Foundation
import KeelAPI
import SwiftProtobuf

/// Writing results for people (tables) and programs (JSON).
enum Output {
    /// Prints rows as an aligned table with a header.
    static func table(_ header: [String], _ rows: [[String]]) {
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                index == cells.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        print(line(header))
        for row in rows { print(line(row)) }
    }

    /// Prints a protobuf message as indented JSON (proto3 JSON mapping).
    static func json(_ message: some SwiftProtobuf.Message) throws {
        let compact = try message.jsonUTF8Data()
        let object = try JSONSerialization.jsonObject(with: compact)
        let pretty = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        FileHandle.standardOutput.write(pretty)
        FileHandle.standardOutput.write(Data("\n".utf8))
    }

    /// Writes a line to standard error.
    static func note(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    /// A compact description of resources, e.g. `cpus:0.5 mem:128 ports:[31000-31010]`.
    /// Reserved resources show their role, e.g. `cpus(eng):2`.
    static func resources(_ resources: [KeelAPIResource]) -> String {
        resources.map { resource in
            let role = resource.reservations.last.map(\.role).flatMap { $0.isEmpty || $0 == "*" ? nil : $0 }
            let name = role.map { "\(resource.name)(\($0))" } ?? resource.name
            switch resource.type {
            case .scalar:
                return "\(name):\(number(resource.scalar.value))"
            case .ranges:
                let ranges = resource.ranges.range.map { $0.begin == $0.end ? "\($0.begin)" : "\($0.begin)-\($0.end)" }
                return "\(name):[\(ranges.joined(separator: ","))]"
            case .set:
                return "\(name):{\(resource.set.item.joined(separator: ","))}"
            default:
                return name
            }
        }.joined(separator: " ")
    }

    /// A number without a needless fraction, e.g. `2` or `0.5`.
    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(format: "%.3g", value)
    }

    /// Amounts by resource name, e.g. `cpus:4 mem:8192`; `-` when there are none.
    static func amounts(_ amounts: [String: Double]) -> String {
        guard !amounts.isEmpty else { return "-" }
        let order = ["cpus", "gpus", "mem", "disk"]
        return amounts.sorted { (order.firstIndex(of: $0.key) ?? 9, $0.key) < (order.firstIndex(of: $1.key) ?? 9, $1.key) }
            .map { "\($0.key):\(number($0.value))" }.joined(separator: " ")
    }
}
