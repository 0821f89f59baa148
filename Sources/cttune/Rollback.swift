import ArgumentParser
import TunerCore
import TunerModel
import TunerRender
import TunerSystem
import TunerWorkflows

extension Cttune {
    struct Rollback: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rollback",
            abstract:
                """
                Restore the settings and files an apply changed (the last one, a journal entry by ID, or --all), removing \
                the files it created.
                """,
            discussion:
                """
                A rollback is journaled too, so it can be rolled back; a second rollback changes nothing. Apply keeps the \
                newest \(TunerWorkflows.Rollback.defaultKeep) entries plus the ones --all needs.
                """
        )

        @Argument(help: "The journal entry to undo (see --list), or with --list the entry to show in detail; default: the last apply.")
        var id: String?
        @Flag(help: "List the journal entries, oldest first; with an ID, show that entry in detail.") var list = false
        @Flag(help: "Restore the state before cttune's first apply: every value, file and module, removing every file cttune created.")
        var all = false
        @Flag(help: "Remove old journal entries, keeping the newest --keep and those --all needs.") var prune = false
        @Option(help: ArgumentHelp("With --prune: how many of the newest entries to keep.", valueName: "n")) var keep: Int?
        @Flag(help: "Report what would be restored and write nothing.") var check = false
        @OptionGroup var root: RootOption
        @Option(help: "How to print the result.") var format: OutputFormat = .text
        @Option(
            parsing: .unconditional, help: ArgumentHelp("Seconds to wait for another apply or rollback to finish.", valueName: "seconds"))
        var lockTimeout: Double = ApplyLock.defaultWaitSeconds

        func validate() throws {
            if [list, all, prune].filter({ $0 }).count > 1 { throw ValidationError("give one of --list, --all and --prune") }
            if (all || prune) && id != nil { throw ValidationError("--all and --prune take no ID") }
            if keep != nil && !prune { throw ValidationError("--keep goes with --prune") }
            if prune && keep == nil { throw ValidationError("--prune needs --keep N (how many of the newest entries to keep)") }
            if let keep, keep < 0 { throw ValidationError("--keep must be 0 or more, got \(keep)") }
            if check && (list || prune) { throw ValidationError("--check goes with a rollback (ID, the last apply or --all)") }
            try validateLockTimeout(lockTimeout)
        }

        func run() throws {
            try reportingErrors("rollback", format: format) {
                let systemRoot = try root.systemRoot()
                if list {
                    let entries = try TunerWorkflows.Rollback.list(under: systemRoot)
                    try emit(id.map { .detail(try Journal(root: systemRoot).load($0)) } ?? RollbackOutput.list(entries), format: format)
                    return .success
                }
                if prune, let keep {
                    let lock = try ApplyLock(root: systemRoot, waitSeconds: lockTimeout)
                    defer { withExtendedLifetime(lock) {} }
                    let removed = try TunerWorkflows.Rollback.prune(keep: keep, under: systemRoot)
                    try emit(RollbackOutput.pruned(removed), format: format)
                    return .success
                }
                let outcome =
                    all
                    ? try TunerWorkflows.Rollback.all(under: systemRoot, lockWaitSeconds: lockTimeout, check: check)
                    : try TunerWorkflows.Rollback.run(id, under: systemRoot, lockWaitSeconds: lockTimeout, check: check)
                try emit(RollbackOutput.rolledBack(outcome, check: check), format: format)
                return .success
            }
        }
    }
}
