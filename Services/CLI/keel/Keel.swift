import ArgumentParser
import CLICore
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// `keel`: the command line of a Keel cluster.
@main
enum Keel {
    static func main() async {
        // Line-buffer stdout so that output redirected to a file or pipe (keel up's endpoint
        // table, keel run's task output) appears as it is written.
        setvbuf(stdout, nil, _IOLBF, 0)
        await KeelCommand.main()
    }
}
