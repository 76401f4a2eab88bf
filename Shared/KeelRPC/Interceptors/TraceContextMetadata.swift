package import GRPCCore
import Instrumentation

/// Writes trace context headers (W3C `traceparent`, `tracestate`) into gRPC metadata.
package struct MetadataInjector: Injector {
    package init() {}

    package func inject(_ value: String, forKey key: String, into carrier: inout Metadata) {
        carrier.replaceOrAddString(value, forKey: key)
    }
}

/// Reads trace context headers from gRPC metadata.
package struct MetadataExtractor: Extractor {
    package init() {}

    package func extract(key: String, from carrier: Metadata) -> String? {
        for value in carrier[stringValues: key] {
            return value
        }
        return nil
    }
}
