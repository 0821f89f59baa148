import ArgumentParser
import Tuner

extension Cttune {
    struct Rollback: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Restore the settings and files an apply changed (the last one, or a journal entry by ID), removing the files it created.",
            discussion: "A rollback is journaled too, so it can be rolled back; a second rollback changes nothing.")

        @Argument(help: "The journal entry to undo (see --list); default: the last apply.") var id: String?
        @Flag(help: "List the journal entries, oldest first.") var list = false
        @OptionGroup var root: RootOption
        @Option(help: "How to print the result.") var format: OutputFormat = .text
        @Option(
            parsing: .unconditional, help: ArgumentHelp("Seconds to wait for another apply or rollback to finish.", valueName: "seconds"))
        var lockTimeout: Double = ApplyLock.defaultWaitSeconds

        func validate() throws {
            if list && id != nil { throw ValidationError("give either --list or an ID, not both") }
            try validateLockTimeout(lockTimeout)
        }

        func run() throws {
            try reportingErrors {
                let systemRoot = try root.systemRoot()
                if list {
                    let entries = try Tuner.Rollback.list(under: systemRoot)
                    format == .json ? printJSON(ApplyReport.json(entries)) : print(ApplyReport.text(entries))
                    return 0
                }
                let outcome = try Tuner.Rollback.run(id, under: systemRoot, lockWaitSeconds: lockTimeout)
                format == .json ? printJSON(ApplyReport.json(outcome)) : print(ApplyReport.text(outcome))
                if let error = outcome.error { throw error }
                return 0
            }
        }
    }
}
