import Foundation
import KeelCore
import Testing

/// ACL evaluation: first matching rule decides, NONE denies, permissive decides the rest; and
/// the JSON document is parsed strictly.
@Suite("ACLs")
struct ACLsTests {
    /// analytics may register analytics and analytics/*-like roles listed; ops anything; nobody
    /// may register "root-only" except ops (order matters); guest explicitly nothing.
    static let acls = ACLs(
        permissive: false,
        rules: [
            .registerFrameworks: [
                .init(principals: .values(["guest"]), object: .none),
                .init(principals: .values(["ops"]), object: .any),
                .init(principals: .values(["analytics", "etl"]), object: .values(["analytics", "batch"])),
                .init(principals: .any, object: .values(["public"])),
            ],
            .runTasks: [
                .init(principals: .any, object: .values(["nobody"])),
                .init(principals: .values(["ops"]), object: .values(["root"])),
                .init(principals: .none, object: .values(["forbidden"])),
            ],
            .teardownFrameworks: [
                .init(principals: .values(["ops"]), object: .any),
                .init(principals: .values(["analytics"]), object: .values(["analytics"])),
            ],
        ]
    )

    struct Case: Sendable, CustomTestStringConvertible {
        var action: ACLs.Action
        var principal: String?
        var object: String
        var allowed: Bool
        var rule: Int?
        var testDescription: String { "\(principal ?? "<none>") \(action.rawValue) \(object) → \(allowed)" }
    }

    @Test(
        "decisions",
        arguments: [
            Case(action: .registerFrameworks, principal: "ops", object: "prod", allowed: true, rule: 1),
            Case(action: .registerFrameworks, principal: "analytics", object: "analytics", allowed: true, rule: 2),
            Case(action: .registerFrameworks, principal: "etl", object: "batch", allowed: true, rule: 2),
            Case(action: .registerFrameworks, principal: "analytics", object: "prod", allowed: false, rule: nil),
            Case(action: .registerFrameworks, principal: "analytics", object: "public", allowed: true, rule: 3),
            Case(action: .registerFrameworks, principal: "guest", object: "public", allowed: false, rule: 0),
            Case(action: .registerFrameworks, principal: nil, object: "public", allowed: true, rule: 3),
            Case(action: .registerFrameworks, principal: nil, object: "analytics", allowed: false, rule: nil),
            Case(action: .runTasks, principal: "analytics", object: "nobody", allowed: true, rule: 0),
            Case(action: .runTasks, principal: "analytics", object: "root", allowed: false, rule: nil),
            Case(action: .runTasks, principal: "ops", object: "root", allowed: true, rule: 1),
            Case(action: .runTasks, principal: "ops", object: "forbidden", allowed: false, rule: 2),
            Case(action: .teardownFrameworks, principal: "ops", object: "analytics", allowed: true, rule: 0),
            Case(action: .teardownFrameworks, principal: "analytics", object: "analytics", allowed: true, rule: 1),
            Case(action: .teardownFrameworks, principal: "analytics", object: "ops", allowed: false, rule: nil),
            Case(action: .teardownFrameworks, principal: nil, object: "", allowed: false, rule: nil),
        ]
    )
    func decisions(_ test: Case) {
        let decision = Self.acls.decide(test.action, principal: test.principal, object: test.object)
        #expect(decision.allowed == test.allowed)
        #expect(decision.ruleIndex == test.rule)
    }

    @Test("permissive decides what no rule matches; no rules at all allows everything")
    func permissive() {
        var acls = Self.acls
        acls.permissive = true
        #expect(acls.decide(.registerFrameworks, principal: "analytics", object: "prod").allowed)
        #expect(!acls.decide(.registerFrameworks, principal: "guest", object: "prod").allowed)
        #expect(ACLs.allowAll.decide(.runTasks, principal: nil, object: "root").allowed)
    }

    @Test("a denial names the principal, the action, the object, the cause and the remedy")
    func denialMessage() {
        let error = #expect(throws: KeelError.self) {
            try Self.acls.authorize(.runTasks, principal: "analytics", object: "root")
        }
        #expect(error?.code == .permissionDenied)
        let message = error?.message ?? ""
        #expect(message.contains("principal 'analytics' may not run tasks as user 'root'"))
        #expect(message.contains("no run_tasks rule allows it"))
        #expect(message.contains("KEEL_ACLS_FILE"))
        let ruleError = #expect(throws: KeelError.self) {
            try Self.acls.authorize(.registerFrameworks, principal: "guest", object: "public")
        }
        #expect(ruleError?.message.contains("rule 0 of register_frameworks denies it") == true)
    }

    @Test("the JSON document parses into the same rules")
    func parse() throws {
        let json = """
            {
              "permissive": false,
              "register_frameworks": [
                {"principals": {"values": ["guest"]}, "roles": {"type": "NONE"}},
                {"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}},
                {"principals": {"values": ["analytics", "etl"]}, "roles": {"values": ["analytics", "batch"]}},
                {"principals": {"type": "ANY"}, "roles": {"values": ["public"]}}
              ],
              "run_tasks": [
                {"principals": {"type": "ANY"}, "users": {"values": ["nobody"]}},
                {"principals": {"values": ["ops"]}, "users": {"values": ["root"]}},
                {"principals": {"type": "NONE"}, "users": {"values": ["forbidden"]}}
              ],
              "teardown_frameworks": [
                {"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}},
                {"principals": {"values": ["analytics"]}, "framework_principals": {"values": ["analytics"]}}
              ]
            }
            """
        let parsed = try ACLs(json: Data(json.utf8), source: "acls.json")
        #expect(parsed == Self.acls)
        let empty = try ACLs(json: Data("{}".utf8), source: "acls.json")
        #expect(empty == .allowAll)
    }

    @Test(
        "malformed documents are refused with the place and the fix",
        arguments: [
            ("[]", "acls.json: the ACL document must be a JSON object"),
            ("{", "acls.json is not valid JSON"),
            (#"{"register_framework": []}"#, "acls.json: unknown key 'register_framework'"),
            (#"{"permissive": "no"}"#, "acls.json: permissive must be true or false"),
            (#"{"run_tasks": {}}"#, "acls.json: run_tasks must be a list of rules"),
            (#"{"run_tasks": [{"principals": {"type": "ANY"}}]}"#, "acls.json: run_tasks[0].users is missing"),
            (#"{"run_tasks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}}]}"#, "acls.json: run_tasks[0]: unknown key 'roles'"),
            (#"{"teardown_frameworks": [{"principals": {"type": "ALL"}, "framework_principals": {"type": "ANY"}}]}"#, "acls.json: teardown_frameworks[0].principals.type must be"),
            (#"{"register_frameworks": [{"principals": {"values": []}, "roles": {"type": "ANY"}}]}"#, "acls.json: register_frameworks[0].principals.values must be a non-empty list"),
            (#"{"register_frameworks": [{"principals": {"values": ["a"], "type": "ANY"}, "roles": {"type": "ANY"}}]}"#, "acls.json: register_frameworks[0].principals is malformed"),
        ]
    )
    func malformed(_ json: String, expected: String) {
        do {
            _ = try ACLs(json: Data(json.utf8), source: "acls.json")
            Issue.record("parsed: \(json)")
        } catch let error as KeelError {
            #expect(error.code == .invalidArgument)
            #expect(error.message.hasPrefix(expected), "\(error.message)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }
}
