import KeelCore
import Testing

@Suite("KeelError")
struct KeelErrorTests {
    struct Underlying: Error, CustomStringConvertible {
        var description: String { "disk full" }
    }

    @Test func descriptionIncludesCodeAndMessage() {
        let error = KeelError(code: .notFound, message: "task t1 not found; check the task ID")
        #expect(error.description == "NOT_FOUND: task t1 not found; check the task ID")
        #expect(error.cause == nil)
    }

    @Test func descriptionIncludesCause() {
        let error = KeelError.internalError("could not write", cause: Underlying())
        #expect(error.code == .internalError)
        #expect(error.description == "INTERNAL: could not write (caused by: disk full)")
        #expect(error.cause is Underlying)
    }

    @Test func codesAreDistinctAndNamed() {
        let codes: [KeelError.Code] = [
            .invalidArgument, .notFound, .alreadyExists, .failedPrecondition, .permissionDenied,
            .unauthenticated, .resourceExhausted, .unavailable, .internalError,
        ]
        let names = codes.map(\.description)
        #expect(Set(codes).count == codes.count)
        #expect(
            names == [
                "INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS", "FAILED_PRECONDITION",
                "PERMISSION_DENIED", "UNAUTHENTICATED", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL",
            ])
    }

    @Test func shorthandsSetTheirCode() {
        #expect(KeelError.invalidArgument("x").code == .invalidArgument)
        #expect(KeelError.notFound("x").code == .notFound)
        #expect(KeelError.alreadyExists("x").code == .alreadyExists)
        #expect(KeelError.failedPrecondition("x").code == .failedPrecondition)
        #expect(KeelError.internalError("x").message == "x")
    }
}
