import ArgumentParser
import CLICore

/// `keel`: the command line of a Keel cluster.
@main
enum Keel {
    static func main() async {
        await KeelCommand.main()
    }
}
