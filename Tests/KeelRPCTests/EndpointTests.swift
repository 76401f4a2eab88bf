import GRPCCore
import KeelCore
import KeelRPC
import Testing

@Suite("Endpoints and errors")
struct EndpointTests {
    @Test("host:port forms parse", arguments: [
        ("127.0.0.1:5050", "127.0.0.1", 5050),
        ("localhost:80", "localhost", 80),
        ("[::1]:5052", "::1", 5052),
        (":5054", "0.0.0.0", 5054),
        ("http://127.0.0.1:5058", "127.0.0.1", 5058),
        ("0.0.0.0:0", "0.0.0.0", 0),
    ])
    func parses(text: String, host: String, port: Int) throws {
        let endpoint = try Endpoint(parsing: text)
        #expect(endpoint.host == host)
        #expect(endpoint.port == port)
    }

    @Test("malformed addresses are refused with the expected form", arguments: [
        "", "127.0.0.1", "host:", "host:port", "host:70000", "::1:5050", "[::1]5050", "[::1",
    ])
    func refuses(text: String) {
        do {
            let endpoint = try Endpoint(parsing: text)
            Issue.record("'\(text)' parsed as \(endpoint)")
        } catch {
            #expect(error.description.contains("host:port"))
        }
    }

    @Test("wildcards are dialed on loopback and IPv6 is bracketed")
    func dialable() throws {
        let any = try Endpoint(parsing: "0.0.0.0:5050").dialable
        #expect(any.description == "127.0.0.1:5050")
        let v6 = try Endpoint(parsing: "[::]:5050").dialable
        #expect(v6.description == "[::1]:5050")
    }

    @Test("Keel errors keep their message and map to the matching gRPC status")
    func errorMapping() {
        let cases: [(KeelError.Code, RPCError.Code)] = [
            (.invalidArgument, .invalidArgument), (.notFound, .notFound), (.alreadyExists, .alreadyExists),
            (.failedPrecondition, .failedPrecondition), (.permissionDenied, .permissionDenied),
            (.unauthenticated, .unauthenticated), (.resourceExhausted, .resourceExhausted),
            (.unavailable, .unavailable), (.internalError, .internalError),
        ]
        for (code, expected) in cases {
            let error = KeelError(code: code, message: "what went wrong; what to do").rpcError
            #expect(error.code == expected)
            #expect(error.message == "what went wrong; what to do")
        }
    }
}
