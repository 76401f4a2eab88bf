package import ArgumentParser
import Logging

/// The flags every Keel daemon takes; each falls back to its `KEEL_*` variable.
package struct CommonDaemonOptions: ParsableArguments {
    @Option(help: "Minimum log level: trace, debug, info, notice, warning, error, critical. [env: KEEL_LOG_LEVEL] (default: info)")
    package var logLevel: String?

    @Option(help: "OTLP/gRPC endpoint of keel-tracer to export spans to, e.g. http://127.0.0.1:5058; empty disables export. [env: KEEL_TRACER]")
    package var tracer: String?

    @Option(help: "Directory for this daemon's state. [env: KEEL_DATA_DIR]")
    package var dataDir: String?

    @Option(help: "Write {\"grpc\":PORT,\"admin\":PORT,\"pid\":PID} to this file once ready (for supervisors and tests). [env: KEEL_READY_FILE]")
    package var readyFile: String?

    @Flag(help: "Stop when the parent process exits (used by `keel up`). [env: KEEL_EXIT_WITH_PARENT=1]")
    package var exitWithParent = false

    package init() {}

    /// Resolves these options into the shared daemon configuration.
    package func configuration(
        serviceName: String,
        adminListen: String,
        environment: [String: String]
    ) throws -> Daemon.Configuration {
        let options = EnvironmentOptions(environment)
        let (adminHost, adminPort) = try Self.hostPort(adminListen, variable: "KEEL_ADMIN_LISTEN")
        return Daemon.Configuration(
            serviceName: serviceName,
            logLevel: try options.logLevel(logLevel),
            adminHost: adminHost,
            adminPort: adminPort,
            tracerEndpoint: options.optionalString(tracer, "KEEL_TRACER").map { $0.contains("://") ? $0 : "http://\($0)" },
            readyFile: options.optionalString(readyFile, "KEEL_READY_FILE"),
            exitWithParent: options.flag(exitWithParent, "KEEL_EXIT_WITH_PARENT"),
            environment: environment
        )
    }

    /// The data directory: the flag, `KEEL_DATA_DIR`, or `fallback`.
    package func dataDirectory(environment: [String: String], default fallback: String) -> String {
        EnvironmentOptions(environment).string(dataDir, "KEEL_DATA_DIR", default: fallback)
    }

    /// Splits `host:port` for the admin server.
    package static func hostPort(_ text: String, variable: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw OptionError("\(variable) '\(text)' is not host:port (e.g. 127.0.0.1:5051)")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }
}
