@preconcurrency import Glibc

/// The command line of `keel-task-supervisor`, parsed.
///
/// ```
/// keel-task-supervisor [--pid-namespace [--reuse-key KEY]] [--join-cgroup PROCS_FILE]... [--stdout PATH
///                      --stderr PATH --log-max-size BYTES --log-max-files COUNT] EXIT_STATUS_FILE EXECUTABLE
///                      ARGV0 [ARG...]
/// keel-task-supervisor --namespace-check
/// keel-task-supervisor --spawner
/// ```
enum SupervisorMode {
    /// Supervise one task (the normal mode, started by keel-launcher).
    case supervise(SupervisorOptions)
    /// Run as a task inside a PID namespace and succeed only if this process sees itself as
    /// PID 2 in a private `/proc` (how keel-launcher checks that PID namespaces work).
    case namespaceCheck
    /// Start supervisors by `fork` on keel-launcher's requests (see ``Spawner``).
    case spawner
}

/// What the supervisor does for one task.
struct SupervisorOptions {
    var exitStatusFile: String
    var executable: String
    var arguments: [String]
    /// Start the task in new PID and mount namespaces, with the supervisor as their init.
    var pidNamespace = false
    /// Where the task's output goes, when the supervisor writes it itself (through pipes).
    var output: OutputFiles?
    /// The `cgroup.procs` files the task joins before it runs (the supervisor stays outside).
    var cgroupProcsFiles: [String] = []
    /// With a PID namespace and a spawner: the supervisor may serve later tasks that name the
    /// same key (the launcher's framework and user) once this one has ended (see ``TaskReuse``).
    /// An executed supervisor, or one without a PID namespace, serves one task whatever this says.
    var reuseKey: String?
}

/// The task's output files and how they are rotated.
struct OutputFiles {
    var stdoutPath: String
    var stderrPath: String
    /// A file is rotated before it would grow past this many bytes.
    var maxSize: Int
    /// The most files kept per stream, the live one included (`stdout`, `stdout.1`, …).
    var maxFiles: Int
}

extension SupervisorMode {
    static let usage = """
        usage: keel-task-supervisor [--pid-namespace [--reuse-key KEY]] [--join-cgroup PROCS_FILE]... [--stdout PATH \
        --stderr PATH --log-max-size BYTES --log-max-files COUNT] EXIT_STATUS_FILE EXECUTABLE ARGV0 [ARG...]
        """

    /// Parses `arguments` (without the program name); a ``UsageError`` says what is wrong.
    static func parse(_ arguments: [String]) -> Result<SupervisorMode, UsageError> {
        var rest = arguments[...]
        if rest.first == "--namespace-check" {
            return .success(.namespaceCheck)
        }
        if rest.first == "--spawner" {
            return .success(.spawner)
        }
        var pidNamespace = false
        var stdoutPath: String?
        var stderrPath: String?
        var maxSize: Int?
        var maxFiles: Int?
        var cgroupProcsFiles: [String] = []
        var reuseKey: String?
        while let option = rest.first, option.hasPrefix("--") {
            rest.removeFirst()
            if option == "--pid-namespace" {
                pidNamespace = true
                continue
            }
            guard let value = rest.popFirst() else {
                return .failure(UsageError(message: "option \(option) needs a value\n\(usage)"))
            }
            switch option {
            case "--join-cgroup": cgroupProcsFiles.append(value)
            case "--reuse-key":
                guard !value.isEmpty else { return .failure(UsageError(message: "--reuse-key must not be empty")) }
                reuseKey = value
            case "--stdout": stdoutPath = value
            case "--stderr": stderrPath = value
            case "--log-max-size":
                guard let size = Int(value), size > 0 else {
                    return .failure(UsageError(message: "--log-max-size must be a positive number of bytes, got '\(value)'"))
                }
                maxSize = size
            case "--log-max-files":
                guard let count = Int(value), count > 0 else {
                    return .failure(UsageError(message: "--log-max-files must be a positive count, got '\(value)'"))
                }
                maxFiles = count
            default:
                return .failure(UsageError(message: "unknown option \(option)\n\(usage)"))
            }
        }
        guard rest.count >= 3 else {
            return .failure(UsageError(message: usage))
        }
        var options = SupervisorOptions(
            exitStatusFile: rest.first!, executable: rest.dropFirst().first!, arguments: Array(rest.dropFirst(2)))
        options.pidNamespace = pidNamespace
        options.cgroupProcsFiles = cgroupProcsFiles
        options.reuseKey = pidNamespace ? reuseKey : nil
        switch (stdoutPath, stderrPath, maxSize, maxFiles) {
        case (nil, nil, nil, nil):
            break
        case (let stdoutPath?, let stderrPath?, let maxSize?, let maxFiles?):
            options.output = OutputFiles(stdoutPath: stdoutPath, stderrPath: stderrPath, maxSize: maxSize, maxFiles: maxFiles)
        default:
            return .failure(UsageError(message: "--stdout, --stderr, --log-max-size and --log-max-files go together\n\(usage)"))
        }
        return .success(.supervise(options))
    }
}

/// A command line the supervisor cannot use.
struct UsageError: Error {
    var message: String
}
