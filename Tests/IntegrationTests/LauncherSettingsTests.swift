import Foundation
import Testing

/// keel-launcher refuses settings it cannot use, saying what was wrong.
@Suite("launcher settings")
struct LauncherSettingsTests {
    @Test("a cgroup pool size that is not a whole number from 0 to 100000 is refused", arguments: ["lots", "-1", "100001"])
    func badCgroupPoolSize(value: String) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keel-settings-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let launcher = try ChildProcess(
            "\(LocalClusterFixture.buildDirectory())/keel-launcher",
            [],
            environment: [
                "KEEL_CGROUP_POOL_SIZE": value,
                "KEEL_LISTEN": "127.0.0.1:0",
                "KEEL_ADMIN_LISTEN": "127.0.0.1:0",
                "KEEL_BROKER": "127.0.0.1:1",
                "KEEL_DATA_DIR": directory.appendingPathComponent("data").path,
                "KEEL_WORK_DIR": directory.appendingPathComponent("work").path,
                "KEEL_NO_CGROUPS": "1",
                "KEEL_EXIT_WITH_PARENT": "1",
            ]
        )
        let status = try await launcher.wait(timeout: .seconds(60))
        #expect(status != 0)
        #expect(
            launcher.stderr.contains("KEEL_CGROUP_POOL_SIZE must be a whole number from 0 (no pool) to 100000, got '\(value)'"),
            "\(launcher.stderr)")
    }
}
