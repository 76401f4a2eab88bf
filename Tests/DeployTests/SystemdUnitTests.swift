// Tests for the deployment files in Deploy/: systemd units, env examples and
// install.sh. They only read the repository and write to temporary
// directories; nothing is installed.
//
// The repository root is found by walking up from this file (also through a
// symlinked test directory) to the first directory containing Deploy/systemd,
// or taken from $KEEL_REPO_ROOT if set.

import Foundation
import Testing

// MARK: - Fixtures

enum Deploy {
    static let daemons = ["broker", "registry", "launcher", "health", "tracer"]
    static let binaries = daemons.map { "keel-\($0)" } + ["keel-task-supervisor", "keel"]
    static let serviceFiles = daemons.map { "keel-\($0).service" }
    static let unitFiles = serviceFiles + ["keel.target"]

    /// The KEEL_* variables each daemon reads. This is the contract with the
    /// daemons: the env examples must list exactly these.
    static let sharedVariables: Set<String> = [
        "KEEL_LOG_LEVEL", "KEEL_DATA_DIR", "KEEL_TRACER", "KEEL_ADMIN_LISTEN", "KEEL_LISTEN", "KEEL_CONCURRENCY_EXECUTOR",
    ]
    static let daemonVariables: [String: Set<String>] = [
        "broker": [
            "KEEL_REGISTRY", "KEEL_STORE", "KEEL_OFFER_INTERVAL", "KEEL_OFFER_TIMEOUT", "KEEL_ACLS_FILE", "KEEL_PRINCIPAL",
            "KEEL_SECRET",
        ],
        "registry": ["KEEL_TOKEN_TTL", "KEEL_CREDENTIALS_FILE", "KEEL_ACLS_FILE"],
        "launcher": [
            "KEEL_BROKER", "KEEL_WORK_DIR", "KEEL_RESOURCES", "KEEL_ATTRIBUTES", "KEEL_HOSTNAME", "KEEL_ADVERTISE",
            "KEEL_STOP_TASKS_ON_EXIT", "KEEL_FETCHER_CACHE_SIZE", "KEEL_FAULT_DOMAIN", "KEEL_SYSTEM_RESERVED",
            "KEEL_CPU_HARD_LIMIT", "KEEL_NO_PID_NAMESPACE", "KEEL_TASK_LOG_MAX_SIZE", "KEEL_TASK_LOG_MAX_FILES",
            "KEEL_SANDBOX_GC_AGE", "KEEL_SANDBOX_GC_DISK_WATERMARK", "KEEL_SANDBOX_GC_INTERVAL", "KEEL_CGROUP_POOL_SIZE",
            "KEEL_NO_SUPERVISOR_REUSE",
        ],
        "health": ["KEEL_BROKER", "KEEL_PING_INTERVAL", "KEEL_PING_BUDGET"],
        "tracer": ["KEEL_RETENTION", "KEEL_MAX_SPANS"],
    ]
    /// (gRPC, admin HTTP) port of each daemon.
    static let ports: [String: (listen: Int, admin: Int)] = [
        "broker": (5050, 5051),
        "registry": (5052, 5053),
        "launcher": (5054, 5055),
        "health": (5056, 5057),
        "tracer": (5058, 5059),
    ]

    static let repoRoot: URL = findRepoRoot()
    static var deployDir: URL { repoRoot.appendingPathComponent("Deploy") }
    static var systemdDir: URL { deployDir.appendingPathComponent("systemd") }
    static var envDir: URL { deployDir.appendingPathComponent("env") }
    static var installScript: URL { deployDir.appendingPathComponent("install.sh") }

    private static func isRepoRoot(_ dir: URL) -> Bool {
        var isDir: ObjCBool = false
        let path = dir.appendingPathComponent("Deploy/systemd").path
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
    }

    private static func findRepoRoot(filePath: String = #filePath) -> URL {
        if let env = ProcessInfo.processInfo.environment["KEEL_REPO_ROOT"], !env.isEmpty {
            return URL(fileURLWithPath: env, isDirectory: true).standardizedFileURL
        }
        let file = URL(fileURLWithPath: filePath)
        // The literal path first, then with symlinks resolved (the test
        // directory may be a symlink into the repository), then the working
        // directory (swift test runs in the package root).
        var starts = [file.deletingLastPathComponent(), file.resolvingSymlinksInPath().deletingLastPathComponent()]
        if let real = realPath(filePath) {
            starts.append(URL(fileURLWithPath: real).deletingLastPathComponent())
        }
        starts.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true))
        for start in starts {
            var dir = start.standardizedFileURL
            while true {
                if isRepoRoot(dir) { return dir }
                let parent = dir.deletingLastPathComponent()
                if parent.path == dir.path { break }
                dir = parent
            }
        }
        // Conventional layout: <root>/Tests/DeployTests/<this file>. Tests
        // reading files below will then fail with a clear "file not found".
        return file.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

// MARK: - Helpers

struct ProcessResult: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `command` (looked up in PATH via /usr/bin/env) and captures its output
/// through temporary files, which cannot dead-lock like pipes can.
func runProcess(_ command: String, _ arguments: [String], environment: [String: String]? = nil) throws -> ProcessResult {
    let scratch = try makeTempDir(prefix: "proc")
    defer { try? FileManager.default.removeItem(at: scratch) }
    let outURL = scratch.appendingPathComponent("stdout")
    let errURL = scratch.appendingPathComponent("stderr")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL)
    let err = try FileHandle(forWritingTo: errURL)

    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [command] + arguments
    if let environment {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    }
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = out
    process.standardError = err
    try process.run()
    process.waitUntilExit()
    try out.close()
    try err.close()

    let stdout = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
    let stderr = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
    return ProcessResult(status: process.terminationStatus, stdout: stdout, stderr: stderr)
}

func makeTempDir(prefix: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("deploy-tests-\(prefix)-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

func executableInPath(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    for dir in path.split(separator: ":") {
        let candidate = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

func readText(_ url: URL) throws -> String {
    try String(contentsOf: url, encoding: .utf8)
}

/// `Key=Value` assignments of a unit file (comments and section headers dropped).
func unitDirectives(_ text: String) -> [(key: String, value: String)] {
    var result: [(key: String, value: String)] = []
    for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
        let line = rawLine.trimmingCharacters(in: .whitespaces)
        if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") || line.hasPrefix("[") { continue }
        guard let eq = line.firstIndex(of: "=") else { continue }
        let key = line[..<eq].trimmingCharacters(in: .whitespaces)
        let value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        result.append((key: key, value: value))
    }
    return result
}

func values(_ directives: [(key: String, value: String)], _ key: String) -> [String] {
    directives.filter { $0.key == key }.map(\.value)
}

/// Lines of systemd-analyze output that talk about Keel units (other lines are
/// noise about unrelated units installed on the machine).
func keelLines(_ output: String) -> [String] {
    output.split(separator: "\n").map(String.init).filter { $0.lowercased().contains("keel") }
}

/// Copies all units into a fresh directory, pointing ExecStart= at an existing
/// executable (systemd-analyze verify checks that the binary exists).
func stageUnits() throws -> URL {
    let dir = try makeTempDir(prefix: "units")
    let fakeBinary = ["/usr/bin/true", "/bin/true"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/bin/true"
    for unit in Deploy.unitFiles {
        let text = try readText(Deploy.systemdDir.appendingPathComponent(unit))
        let rewritten = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            line.hasPrefix("ExecStart=/usr/local/bin/keel-") ? "ExecStart=\(fakeBinary)" : String(line)
        }.joined(separator: "\n")
        try rewritten.write(to: dir.appendingPathComponent(unit), atomically: true, encoding: .utf8)
    }
    return dir
}

let systemdAnalyzeAvailable = executableInPath("systemd-analyze") != nil

// MARK: - systemd units

@Suite("systemd units")
struct SystemdUnitTests {
    @Test("systemd-analyze verify accepts all units together", .enabled(if: systemdAnalyzeAvailable, "systemd-analyze not installed"))
    func verifyAllUnits() throws {
        let dir = try stageUnits()
        defer { try? FileManager.default.removeItem(at: dir) }
        let paths = Deploy.unitFiles.map { dir.appendingPathComponent($0).path }
        let result = try runProcess("systemd-analyze", ["verify"] + paths, environment: ["SYSTEMD_LOG_COLOR": "0"])
        let complaints = keelLines(result.stderr) + keelLines(result.stdout)
        #expect(result.status == 0, "systemd-analyze verify failed:\n\(result.stderr)")
        #expect(complaints.isEmpty, "systemd-analyze verify complained:\n\(complaints.joined(separator: "\n"))")
    }

    @Test("systemd-analyze verify accepts each unit", .enabled(if: systemdAnalyzeAvailable, "systemd-analyze not installed"),
          arguments: Deploy.unitFiles)
    func verifyUnit(_ unit: String) throws {
        let dir = try stageUnits()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent(unit).path
        let result = try runProcess("systemd-analyze", ["verify", path], environment: ["SYSTEMD_LOG_COLOR": "0"])
        let complaints = keelLines(result.stderr) + keelLines(result.stdout)
        #expect(result.status == 0, "systemd-analyze verify \(unit) failed:\n\(result.stderr)")
        #expect(complaints.isEmpty, "systemd-analyze verify \(unit) complained:\n\(complaints.joined(separator: "\n"))")
    }

    @Test("every daemon unit honours the service contract", arguments: Deploy.daemons)
    func serviceContract(_ daemon: String) throws {
        let text = try readText(Deploy.systemdDir.appendingPathComponent("keel-\(daemon).service"))
        let d = unitDirectives(text)

        #expect(values(d, "Type") == ["notify"])
        #expect(values(d, "NotifyAccess") == ["main"])
        #expect(values(d, "ExecStart") == ["/usr/local/bin/keel-\(daemon)"])
        #expect(values(d, "EnvironmentFile") == ["-/etc/keel/\(daemon).env"])
        #expect(values(d, "Restart") == ["on-failure"])
        #expect(values(d, "RestartSec") == ["2"])
        #expect(values(d, "KillSignal") == ["SIGTERM"])
        #expect(values(d, "LimitNOFILE") == ["1048576"])
        #expect(values(d, "PartOf") == ["keel.target"])
        #expect(values(d, "WantedBy") == ["keel.target"])
        #expect(values(d, "StateDirectory") == ["keel/\(daemon)"])
        #expect(values(d, "TimeoutStopSec").count == 1)
        let after = values(d, "After").joined(separator: " ").split(separator: " ").map(String.init)
        #expect(after.contains("network-online.target"))
        // Ordering only: no hard dependency between Keel daemons, so they can
        // start in any order.
        let hardDeps = (values(d, "Requires") + values(d, "BindsTo") + values(d, "Requisite")).joined(separator: " ")
        #expect(!hardDeps.contains("keel-"))

        let environment = values(d, "Environment")
        #expect(environment.contains("KEEL_DATA_DIR=/var/lib/keel/\(daemon)"))
    }

    @Test("sandboxed daemons are hardened", arguments: ["broker", "registry", "health", "tracer"])
    func sandboxedDaemons(_ daemon: String) throws {
        let d = unitDirectives(try readText(Deploy.systemdDir.appendingPathComponent("keel-\(daemon).service")))
        let expected: [String: String] = [
            "DynamicUser": "yes",
            "ProtectSystem": "strict",
            "ProtectHome": "yes",
            "PrivateTmp": "yes",
            "NoNewPrivileges": "yes",
            "ProtectKernelTunables": "yes",
            "ProtectKernelModules": "yes",
            "ProtectControlGroups": "yes",
            "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
            "LockPersonality": "yes",
            "SystemCallArchitectures": "native",
            "CapabilityBoundingSet": "",
        ]
        for (key, value) in expected.sorted(by: { $0.key < $1.key }) {
            #expect(values(d, key) == [value], "keel-\(daemon).service: \(key)")
        }
    }

    @Test("launcher keeps tasks alive and owns its cgroup")
    func launcher() throws {
        let d = unitDirectives(try readText(Deploy.systemdDir.appendingPathComponent("keel-launcher.service")))
        #expect(values(d, "KillMode") == ["process"])
        #expect(values(d, "Delegate") == ["yes"])
        #expect(values(d, "Environment").contains("KEEL_WORK_DIR=/var/lib/keel/launcher"))
        // Tasks inherit these, and the launcher needs root, cgroupfs and setuid.
        for key in ["User", "DynamicUser", "NoNewPrivileges", "ProtectControlGroups", "ProtectSystem", "CapabilityBoundingSet"] {
            #expect(values(d, key).isEmpty, "keel-launcher.service must not set \(key)=")
        }
        // Tasks get killed with a grace period: the launcher needs longer to stop.
        let broker = unitDirectives(try readText(Deploy.systemdDir.appendingPathComponent("keel-broker.service")))
        let launcherStop = Int(values(d, "TimeoutStopSec").first ?? "") ?? 0
        let brokerStop = Int(values(broker, "TimeoutStopSec").first ?? "") ?? 0
        #expect(launcherStop > brokerStop)
    }

    @Test("keel.target wants all five daemons")
    func target() throws {
        let d = unitDirectives(try readText(Deploy.systemdDir.appendingPathComponent("keel.target")))
        let wants = Set(values(d, "Wants").joined(separator: " ").split(separator: " ").map(String.init))
        #expect(wants == Set(Deploy.serviceFiles))
        #expect(values(d, "WantedBy") == ["multi-user.target"])
    }
}

// MARK: - env examples

@Suite("env examples")
struct EnvExampleTests {
    @Test("every variable is a documented KEEL_* assignment", arguments: Deploy.daemons)
    func envExample(_ daemon: String) throws {
        let url = Deploy.envDir.appendingPathComponent("\(daemon).env.example")
        let lines = try readText(url).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)

        var keys: [String] = []
        var previous = ""
        for (index, rawLine) in lines.enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            defer { previous = line }
            if line.isEmpty || line.hasPrefix("#") { continue }
            let location = "\(daemon).env.example:\(index + 1)"

            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            #expect(parts.count == 2, "\(location): not KEY=VALUE: \(line)")
            guard parts.count == 2 else { continue }
            let key = String(parts[0])
            let value = String(parts[1])
            let keyIsValid = key.hasPrefix("KEEL_") && key.count > 5
                && key.allSatisfy { ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
            #expect(keyIsValid, "\(location): key must be KEEL_[A-Z0-9_]+, got \(key)")
            // Documented: the line right above an assignment is a comment.
            #expect(previous.hasPrefix("#"), "\(location): \(key) has no comment above it")
            // systemd EnvironmentFile= syntax that is also shell-safe.
            let unquoted = value.hasPrefix("\"") && value.hasSuffix("\"") && value.count >= 2
                ? String(value.dropFirst().dropLast()) : value
            let hasUnsafe = unquoted == value && value.contains(where: { " ;$`\\'\"".contains($0) })
            #expect(!hasUnsafe, "\(location): quote the value of \(key)")
            keys.append(key)
        }

        #expect(keys.count == Set(keys).count, "\(daemon).env.example: duplicate variables")
        let expected = Deploy.sharedVariables.union(Deploy.daemonVariables[daemon] ?? [])
        let missing = expected.subtracting(keys).sorted()
        let unexpected = Set(keys).subtracting(expected).sorted()
        #expect(missing.isEmpty, "\(daemon).env.example lacks \(missing)")
        #expect(unexpected.isEmpty, "\(daemon).env.example has variables outside the contract: \(unexpected)")
    }

    @Test("default ports and addresses", arguments: Deploy.daemons)
    func ports(_ daemon: String) throws {
        let text = try readText(Deploy.envDir.appendingPathComponent("\(daemon).env.example"))
        var env: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2 { env[String(parts[0])] = String(parts[1]) }
        }
        let ports = try #require(Deploy.ports[daemon])
        #expect(env["KEEL_LISTEN"] == "0.0.0.0:\(ports.listen)")
        #expect(env["KEEL_ADMIN_LISTEN"] == "0.0.0.0:\(ports.admin)")
        #expect(env["KEEL_DATA_DIR"] == "/var/lib/keel/\(daemon)")
        if daemon == "broker" {
            #expect(env["KEEL_REGISTRY"] == "127.0.0.1:5052")
        }
        if daemon == "launcher" || daemon == "health" {
            #expect(env["KEEL_BROKER"] == "127.0.0.1:5050")
        }
        if daemon == "launcher" {
            #expect(env["KEEL_WORK_DIR"] == "/var/lib/keel/launcher")
        }
    }
}

// MARK: - install.sh

@Suite("install.sh")
struct InstallScriptTests {
    @Test("bash -n install.sh")
    func syntax() throws {
        let result = try runProcess("bash", ["-n", Deploy.installScript.path])
        #expect(result.status == 0, "bash -n failed:\n\(result.stderr)")
    }

    /// A directory with the seven binaries as tiny executable scripts.
    func fakeBinDir(skipping skipped: String? = nil) throws -> URL {
        let dir = try makeTempDir(prefix: "bin")
        for binary in Deploy.binaries where binary != skipped {
            let path = dir.appendingPathComponent(binary).path
            let created = FileManager.default.createFile(atPath: path, contents: Data("#!/bin/sh\nexit 0\n".utf8),
                                                         attributes: [.posixPermissions: 0o755])
            #expect(created, "could not create \(path)")
        }
        return dir
    }

    @Test("--dry-run with all seven binaries succeeds")
    func dryRun() throws {
        let bin = try fakeBinDir()
        defer { try? FileManager.default.removeItem(at: bin) }
        let result = try runProcess("bash", [Deploy.installScript.path, "--dry-run", "--bin-dir", bin.path])
        #expect(result.status == 0, "install.sh --dry-run failed:\n\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("systemctl enable --now keel.target"))
        for binary in Deploy.binaries {
            #expect(result.stdout.contains("/usr/local/bin/\(binary)"), "dry run does not install \(binary)")
        }
    }

    @Test("a missing binary is named, with how to build it")
    func missingBinary() throws {
        let bin = try fakeBinDir(skipping: "keel-health")
        defer { try? FileManager.default.removeItem(at: bin) }
        let result = try runProcess("bash", [Deploy.installScript.path, "--dry-run", "--bin-dir", bin.path])
        #expect(result.status != 0)
        #expect(result.stderr.contains("keel-health"))
        #expect(result.stderr.contains("swift build -c release"))
    }

    @Test("--help exits 0")
    func help() throws {
        let result = try runProcess("bash", [Deploy.installScript.path, "--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("--dry-run"))
    }
}
