import Foundation
import KeelAPI

/// Renders OTLP attribute values as the strings the store keeps and the query API returns.
enum AttributeRendering {
    /// The first `limit` attributes as `key → string` (later duplicates win, as in OTLP SDKs).
    static func strings(_ attributes: [Opentelemetry_Proto_Common_V1_KeyValue], limit: Int) -> [String: String] {
        var result: [String: String] = [:]
        for attribute in attributes.prefix(limit) where !attribute.key.isEmpty {
            let key = OTLPSpanDecoder.truncated(attribute.key, to: OTLPSpanDecoder.maxKeyLength)
            let value = render(attribute.value, depth: 0)
            result[key] = OTLPSpanDecoder.truncated(value, to: OTLPSpanDecoder.maxValueLength)
        }
        return result
    }

    /// One value as text: strings as-is, numbers and booleans in decimal, bytes in hex, arrays as
    /// `[a, b]`, key-value lists as `{k: v}`; nesting deeper than 8 levels becomes `…`.
    static func render(_ value: Opentelemetry_Proto_Common_V1_AnyValue, depth: Int) -> String {
        guard depth < 8 else { return "…" }
        switch value.value {
        case .stringValue(let text): return text
        case .boolValue(let flag): return flag ? "true" : "false"
        case .intValue(let number): return "\(number)"
        case .doubleValue(let number): return "\(number)"
        case .bytesValue(let bytes): return OTLPSpanDecoder.hex(bytes)
        case .arrayValue(let array):
            return "[" + array.values.prefix(64).map { render($0, depth: depth + 1) }.joined(separator: ", ") + "]"
        case .kvlistValue(let list):
            let pairs = list.values.prefix(64).map { "\($0.key): \(render($0.value, depth: depth + 1))" }
            return "{" + pairs.joined(separator: ", ") + "}"
        case nil: return ""
        }
    }
}
