import Foundation
#if canImport(Glibc)
@preconcurrency import Glibc
#endif
package import Logging
import KeelRPC
import Metrics
import OTel
package import Prometheus
package import ServiceLifecycle
import UnixSignals
import Tracing

/// What every Keel daemon shares at start: logging, metrics, tracing, the admin port,
/// readiness, and the service group that runs it until SIGTERM or SIGINT.
///
/// Only `main` calls ``Daemon/run(configuration:makeServices:)``, once per process: it
/// bootstraps the global logging, metrics and tracing systems.
package enum Daemon {
    /// The version every daemon reports.
    package static let version = "0.1.0"

    /// The settings every daemon takes, filled from flags and `KEEL_*` variables by `main`.
    package struct Configuration: Sendable {
        /// The executable's name, e.g. `keel-broker`; the service name in logs, metrics and spans.
        package var serviceName: String
        /// The minimum log level.
        package var logLevel: Logger.Level
        /// Host and port of the admin HTTP endpoint; port 0 picks a free port.
        package var adminHost: String
        package var adminPort: Int
        /// The OTLP/gRPC endpoint of keel-tracer (`http://host:port`); nil disables span export.
        package var tracerEndpoint: String?
        /// When set, a JSON file `{"grpc": P, "admin": Q}` written once the daemon is ready, so
        /// that supervisors and tests learn the ports chosen for port 0.
        package var readyFile: String?
        /// Stop when the parent process exits (set by `keel up` for the daemons it starts).
        package var exitWithParent: Bool
        /// The process environment, as read by `main`.
        package var environment: [String: String]

        /// Creates a configuration.
        package init(
            serviceName: String,
            logLevel: Logger.Level = .info,
            adminHost: String = "127.0.0.1",
            adminPort: Int,
            tracerEndpoint: String? = nil,
            readyFile: String? = nil,
            exitWithParent: Bool = false,
            environment: [String: String]
        ) {
            self.serviceName = serviceName
            self.logLevel = logLevel
            self.adminHost = adminHost
            self.adminPort = adminPort
            self.tracerEndpoint = tracerEndpoint
            self.readyFile = readyFile
            self.exitWithParent = exitWithParent
            self.environment = environment
        }
    }

    /// What a daemon's own services get from the shared runtime.
    package struct Context: Sendable {
        /// The root logger (label = service name).
        package var logger: Logger
        /// The Prometheus registry behind `/metrics`.
        package var registry: PrometheusCollectorRegistry
        /// Call once the daemon's gRPC port is bound and it can serve: marks `/readyz` ready,
        /// notifies systemd, and writes the ready file.
        package var markReady: @Sendable (_ grpcPort: Int) async -> Void
    }

    /// Bootstraps observability, builds the daemon's services and runs them until a signal.
    package static func run(
        configuration: Configuration,
        makeServices: (Context) async throws -> [any Service]
    ) async throws {
        LoggingSystem.bootstrap { label in
            var handler = LineLogHandler(label: label)
            handler.logLevel = configuration.logLevel
            return handler
        }
        var rootLogger = Logger(label: configuration.serviceName)
        rootLogger.logLevel = configuration.logLevel
        let logger = rootLogger

        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        Gauge(label: "keel_build_info", dimensions: [("service", configuration.serviceName), ("version", version)]).record(1)
        Gauge(label: "keel_process_start_time_seconds", dimensions: [("service", configuration.serviceName)])
            .record(Date().timeIntervalSince1970)

        var services: [any Service] = []
        if let endpoint = configuration.tracerEndpoint {
            services += try bootstrapTracing(configuration: configuration, endpoint: endpoint, logger: logger)
        }

        let readiness = Readiness()
        let notifier = SystemdNotifier(environment: configuration.environment)
        let ports = ReadyPorts()
        let admin = AdminServer(
            host: configuration.adminHost,
            port: configuration.adminPort,
            registry: registry,
            readiness: readiness,
            logger: logger,
            onListening: { port in
                if let ready = ports.setAdmin(port) {
                    writeReadyFile(configuration.readyFile, ready, logger: logger)
                }
            }
        )
        let context = Context(logger: logger, registry: registry) { grpcPort in
            readiness.markReady()
            notifier.ready()
            logger.notice("ready", metadata: ["keel.grpc_port": "\(grpcPort)"])
            if let ready = ports.setGRPC(grpcPort) {
                writeReadyFile(configuration.readyFile, ready, logger: logger)
            }
        }
        services.append(admin)
        services += try await makeServices(context)
        if configuration.exitWithParent {
            services.append(ParentWatcher(logger: logger))
        }

        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        logger.notice("starting", metadata: ["keel.service": "\(configuration.serviceName)"])
        try await group.run()
        notifier.stopping()
        logger.notice("stopped")
    }

    private static func bootstrapTracing(
        configuration: Configuration,
        endpoint: String,
        logger: Logger
    ) throws -> [any Service] {
        var otel = OTel.Configuration.default
        otel.serviceName = configuration.serviceName
        otel.logs.enabled = false
        otel.metrics.enabled = false
        otel.traces.enabled = true
        otel.traces.exporter = .otlp
        otel.traces.otlpExporter.protocol = .grpc
        otel.traces.otlpExporter.endpoint = endpoint
        otel.traces.batchSpanProcessor.scheduleDelay = .milliseconds(500)
        var diagnostics = logger
        diagnostics.logLevel = .warning
        otel.diagnosticLogger = .custom(diagnostics)
        let backend = try OTel.makeTracingBackend(configuration: otel)
        InstrumentationSystem.bootstrap(backend.factory)
        logger.info("exporting spans", metadata: ["keel.tracer": "\(endpoint)"])
        // Task hops, many per task, go out through their own lean exporter (see HopExporter)
        // where the endpoint is a plain host:port; else as spans of the tracer above.
        guard let address = try? Endpoint(parsing: endpoint) else { return [backend.service] }
        let hops = try HopExporter(endpoint: address, serviceName: configuration.serviceName, logger: diagnostics)
        hops.install()
        return [backend.service, hops]
    }

    private static func writeReadyFile(_ path: String?, _ ports: (grpc: Int, admin: Int), logger: Logger) {
        guard let path else { return }
        let text = "{\"grpc\": \(ports.grpc), \"admin\": \(ports.admin), \"pid\": \(ProcessInfo.processInfo.processIdentifier)}\n"
        let temporary = path + ".tmp"
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: temporary))
            guard rename(temporary, path) == 0 else {
                throw OptionError("rename to \(path) failed with errno \(errno)")
            }
        } catch {
            logger.error("could not write the ready file", metadata: ["keel.path": "\(path)", "keel.error": "\(error)"])
        }
    }
}
