import ArgumentParser
import Foundation
import KeelRPC

/// Where the cluster's services are; shared by every command that talks to it.
struct ClusterOptions: ParsableArguments {
    @Option(help: "keel-broker gRPC address. [env: KEEL_BROKER] (default: 127.0.0.1:5050)")
    var broker: String?

    @Option(help: "keel-registry gRPC address. [env: KEEL_REGISTRY] (default: 127.0.0.1:5052)")
    var registry: String?

    @Option(help: "keel-tracer gRPC address. [env: KEEL_TRACER] (default: 127.0.0.1:5058)")
    var tracer: String?

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    private var environment: [String: String] { ProcessInfo.processInfo.environment }

    func brokerEndpoint() throws -> KeelRPC.Endpoint {
        try endpoint(broker, "KEEL_BROKER", "127.0.0.1:5050")
    }

    func registryEndpoint() throws -> KeelRPC.Endpoint {
        try endpoint(registry, "KEEL_REGISTRY", "127.0.0.1:5052")
    }

    func tracerEndpoint() throws -> KeelRPC.Endpoint {
        try endpoint(tracer, "KEEL_TRACER", "127.0.0.1:5058")
    }

    private func endpoint(_ flag: String?, _ variable: String, _ fallback: String) throws -> KeelRPC.Endpoint {
        let text = flag ?? environment[variable].flatMap { $0.isEmpty ? nil : $0 } ?? fallback
        do {
            return try KeelRPC.Endpoint(parsing: text)
        } catch {
            throw ValidationError("\(variable): \(error)")
        }
    }
}
