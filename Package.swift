// swift-tools-version:6.1
import PackageDescription

/// The settings every Keel target shares: Swift 6 mode (set on the package), explicit `any`,
/// imports internal unless declared otherwise, and no warnings.
let keelSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .unsafeFlags(["-warnings-as-errors"]),
]

let grpcCore = Target.Dependency.product(name: "GRPCCore", package: "grpc-swift-2")
let grpcProtobuf = Target.Dependency.product(name: "GRPCProtobuf", package: "grpc-swift-protobuf")
let grpcHTTP2 = Target.Dependency.product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport")
let grpcInProcess = Target.Dependency.product(name: "GRPCInProcessTransport", package: "grpc-swift-2")
let swiftProtobuf = Target.Dependency.product(name: "SwiftProtobuf", package: "swift-protobuf")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let metrics = Target.Dependency.product(name: "Metrics", package: "swift-metrics")
let tracing = Target.Dependency.product(name: "Tracing", package: "swift-distributed-tracing")
let serviceLifecycle = Target.Dependency.product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let nioPosix = Target.Dependency.product(name: "NIOPosix", package: "swift-nio")
let crypto = Target.Dependency.product(name: "Crypto", package: "swift-crypto")
let cryptoExtras = Target.Dependency.product(name: "_CryptoExtras", package: "swift-crypto")

let package = Package(
    name: "keel",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "keel", targets: ["keel"]),
        .executable(name: "keel-broker", targets: ["keel-broker"]),
        .executable(name: "keel-registry", targets: ["keel-registry"]),
        .executable(name: "keel-launcher", targets: ["keel-launcher"]),
        .executable(name: "keel-task-supervisor", targets: ["keel-task-supervisor"]),
        .executable(name: "keel-health", targets: ["keel-health"]),
        .executable(name: "keel-tracer", targets: ["keel-tracer"]),
        .executable(name: "keel-bench", targets: ["keel-bench"]),
        .executable(name: "keel-job-runner", targets: ["keel-job-runner"]),
        .library(name: "KeelSDK", targets: ["KeelSDK"]),
        .library(name: "KeelAPI", targets: ["KeelAPI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPGRPC"]),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        // MARK: Shared libraries

        .target(
            name: "KeelAPI",
            dependencies: [grpcCore, grpcProtobuf, swiftProtobuf],
            path: "Shared/KeelAPI",
            swiftSettings: keelSettings
        ),
        .target(
            name: "KeelCore",
            dependencies: [],
            path: "Shared/KeelCore",
            swiftSettings: keelSettings
        ),
        .target(
            name: "KeelRPC",
            dependencies: [
                "KeelAPI", "KeelCore", grpcCore, grpcHTTP2, grpcProtobuf, logging, metrics, tracing, serviceLifecycle,
                swiftProtobuf, .product(name: "JWTKit", package: "jwt-kit"),
            ],
            path: "Shared/KeelRPC",
            swiftSettings: keelSettings
        ),
        .target(
            name: "KeelStore",
            dependencies: [
                .product(name: "SQLiteNIO", package: "sqlite-nio"), logging, serviceLifecycle, nioCore, nioPosix,
            ],
            path: "Shared/KeelStore",
            swiftSettings: keelSettings
        ),
        .target(
            name: "KeelObservability",
            dependencies: [
                "KeelRPC", logging, metrics, tracing, serviceLifecycle, argumentParser, nioCore, nioPosix,
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            path: "Shared/KeelObservability",
            swiftSettings: keelSettings
        ),
        .target(
            name: "KeelSDK",
            dependencies: ["KeelAPI", "KeelCore", "KeelRPC", grpcCore, grpcHTTP2, logging, swiftProtobuf],
            path: "Shared/KeelSDK",
            swiftSettings: keelSettings
        ),

        // MARK: Services

        .target(
            name: "KeelAllocator",
            dependencies: ["KeelCore"],
            path: "Services/Broker/Allocator",
            swiftSettings: keelSettings
        ),
        .target(
            name: "RegistryCore",
            dependencies: [
                "KeelAPI", "KeelCore", "KeelRPC", "KeelStore", "KeelObservability", grpcCore, logging, metrics,
                tracing, serviceLifecycle, swiftProtobuf, crypto, cryptoExtras, nioPosix,
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            path: "Services/Registry/RegistryCore",
            swiftSettings: keelSettings
        ),
        .executableTarget(
            name: "keel-registry",
            dependencies: ["RegistryCore", "KeelObservability", "KeelRPC", argumentParser, serviceLifecycle, logging],
            path: "Services/Registry/keel-registry",
            swiftSettings: keelSettings
        ),
        .target(
            name: "BrokerCore",
            dependencies: [
                "KeelAPI", "KeelAllocator", "KeelCore", "KeelRPC", "KeelStore", "KeelObservability", grpcCore,
                logging, metrics, tracing, serviceLifecycle, swiftProtobuf, .product(name: "JWTKit", package: "jwt-kit"),
            ],
            path: "Services/Broker/BrokerCore",
            swiftSettings: keelSettings
        ),
        .executableTarget(
            name: "keel-broker",
            dependencies: ["BrokerCore", "KeelObservability", "KeelRPC", argumentParser, serviceLifecycle, logging, swiftProtobuf],
            path: "Services/Broker/keel-broker",
            swiftSettings: keelSettings
        ),
        .target(
            name: "LauncherCore",
            dependencies: [
                "KeelAPI", "KeelCore", "KeelRPC", "KeelObservability", grpcCore, logging, metrics, tracing,
                serviceLifecycle, swiftProtobuf, .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Services/Launcher/LauncherCore",
            swiftSettings: keelSettings
        ),
        .executableTarget(
            name: "keel-launcher",
            dependencies: ["LauncherCore", "KeelCore", "KeelObservability", "KeelRPC", argumentParser, serviceLifecycle, logging],
            path: "Services/Launcher/keel-launcher",
            swiftSettings: keelSettings
        ),
        // Linked fully statically: every task starts one supervisor, and a dynamically linked
        // Swift binary spends ~2.5 ms per start loading and relocating libswiftCore and friends
        // (supervising /bin/true took 4.8 ms dynamic, 2.3 ms static; /bin/true alone 0.8 ms,
        // see BENCHMARKS.md). It must keep linking only the Swift runtime and the C library: no
        // dlopen/dlsym lookups (they fail in a static binary), nothing that needs NSS (getpwnam
        // and friends), and no Foundation or Dispatch, whose threads would make its fork of the
        // PID-namespace init (which runs on without exec, see NamespaceInit) unsafe.
        .executableTarget(
            name: "keel-task-supervisor",
            path: "Services/Launcher/keel-task-supervisor",
            swiftSettings: keelSettings,
            linkerSettings: [.unsafeFlags(["-static-executable"])]
        ),
        .target(
            name: "HealthCore",
            dependencies: [
                "KeelAPI", "KeelCore", "KeelRPC", "KeelObservability", grpcCore, logging, metrics, tracing,
                serviceLifecycle, swiftProtobuf,
            ],
            path: "Services/Health/HealthCore",
            swiftSettings: keelSettings
        ),
        .executableTarget(
            name: "keel-health",
            dependencies: ["HealthCore", "KeelObservability", "KeelRPC", argumentParser, serviceLifecycle, logging],
            path: "Services/Health/keel-health",
            swiftSettings: keelSettings
        ),
        .target(
            name: "TracerCore",
            dependencies: [
                "KeelAPI", "KeelCore", "KeelRPC", "KeelStore", "KeelObservability", grpcCore, logging, metrics,
                serviceLifecycle, swiftProtobuf, nioCore, .product(name: "SQLiteNIO", package: "sqlite-nio"),
            ],
            path: "Services/Tracer/TracerCore",
            swiftSettings: keelSettings
        ),
        .executableTarget(
            name: "keel-tracer",
            dependencies: ["TracerCore", "KeelObservability", "KeelRPC", argumentParser, serviceLifecycle, logging],
            path: "Services/Tracer/keel-tracer",
            swiftSettings: keelSettings
        ),
        .target(
            name: "CLICore",
            dependencies: [
                "KeelAPI", "KeelCore", "KeelRPC", "KeelSDK", grpcCore, grpcHTTP2, logging, argumentParser,
                swiftProtobuf, .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Services/CLI/CLICore",
            swiftSettings: keelSettings
        ),
        .executableTarget(
            name: "keel",
            dependencies: ["CLICore", argumentParser],
            path: "Services/CLI/keel",
            swiftSettings: keelSettings
        ),

        // MARK: Benchmarks

        .executableTarget(
            name: "keel-bench",
            dependencies: ["KeelAllocator", "KeelCore", "KeelAPI", "KeelRPC", "KeelSDK", "KeelObservability", argumentParser, swiftProtobuf],
            path: "Benchmarks/keel-bench",
            swiftSettings: keelSettings
        ),

        // MARK: Examples

        .executableTarget(
            name: "keel-job-runner",
            dependencies: ["KeelSDK", "KeelAPI", swiftProtobuf, argumentParser],
            path: "Examples/job-runner",
            swiftSettings: keelSettings
        ),

        // MARK: Tests

        .testTarget(
            name: "KeelAllocatorTests",
            dependencies: ["KeelAllocator", "KeelCore"],
            swiftSettings: keelSettings
        ),
        .testTarget(
            name: "KeelCoreTests",
            dependencies: ["KeelCore"],
            swiftSettings: keelSettings
        ),
        .testTarget(
            name: "KeelRPCTests",
            dependencies: [
                "KeelRPC", "KeelAPI", "KeelCore", grpcCore, grpcInProcess, tracing, logging, swiftProtobuf,
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: keelSettings
        ),
        .testTarget(
            name: "RegistryCoreTests",
            dependencies: ["RegistryCore", "KeelCore"],
            swiftSettings: keelSettings
        ),
        .testTarget(
            name: "KeelStoreTests",
            dependencies: ["KeelStore", logging, serviceLifecycle],
            swiftSettings: keelSettings
        ),
        .testTarget(
            name: "LauncherCoreTests",
            dependencies: [
                "LauncherCore", "KeelAPI", "KeelCore", "KeelRPC", logging, swiftProtobuf,
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: keelSettings
        ),
        .testTarget(
            name: "BrokerCoreTests",
            dependencies: [
                "BrokerCore", "RegistryCore", "KeelAPI", "KeelCore", "KeelRPC", "KeelStore", "KeelSDK", grpcCore,
                grpcInProcess, grpcHTTP2, logging, serviceLifecycle, swiftProtobuf, .product(name: "JWTKit", package: "jwt-kit"),
            ],
            swiftSettings: keelSettings
        ),
        .testTarget(
            name: "KeelSDKTests",
            dependencies: ["KeelSDK", "KeelAPI", swiftProtobuf],
            swiftSettings: keelSettings
        ),
        .testTarget(
            name: "TracerCoreTests",
            dependencies: [
                "TracerCore", "KeelAPI", "KeelRPC", grpcCore, grpcHTTP2, grpcInProcess, logging, serviceLifecycle, swiftProtobuf,
            ],
            swiftSettings: keelSettings
        ),
        .testTarget(
            name: "HealthCoreTests",
            dependencies: ["HealthCore", "KeelAPI", "KeelRPC", grpcCore, grpcInProcess, logging, swiftProtobuf],
            swiftSettings: keelSettings
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["KeelAPI", "KeelSDK", "KeelRPC", grpcCore, grpcHTTP2, logging, swiftProtobuf],
            swiftSettings: keelSettings
        ),
        .testTarget(
            name: "KeelObservabilityTests",
            dependencies: ["KeelObservability", logging],
            swiftSettings: keelSettings
        ),
        .testTarget(
            name: "DeployTests",
            dependencies: [],
            swiftSettings: keelSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
