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
    static func resources(_ resources: [KeelAPIResource]) -> String {
        resources.map { resource in
            switch resource.type {
            case .scalar:
                let value = resource.scalar.value
                let text = value == value.rounded() ? String(Int64(value)) : String(format: "%.3g", value)
                return "\(resource.name):\(text)"
            case .ranges:
                let ranges = resource.ranges.range.map { $0.begin == $0.end ? "\($0.begin)" : "\($0.begin)-\($0.end)" }
                return "\(resource.name):[\(ranges.joined(separator: ","))]"
            case .set:
                return "\(resource.name):{\(resource.set.item.joined(separator: ","))}"
            default:
                return resource.name
            }
        }.joined(separator: " ")
    }
}
