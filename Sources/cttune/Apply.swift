import ArgumentParser
import Foundation
import Tuner

extension Cttune {
    struct Apply: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Apply the plan: kernel settings now and boot-time files, journaled and undone as a whole on failure.",
            discussion: "Safe to rerun: a second apply with the same inputs writes nothing. Undo with `cttune rollback`.")

        @OptionGroup var options: ProfileOptions
        @Flag(help: "Write the kernel settings only, not the boot-time files.") var runtimeOnly = false
        @Flag(help: "Write the boot-time files only (sysctl.d, modprobe.d, modules-load.d), not the kernel settings.") var persistOnly =
            false
        @Flag(help: "Report what would change and write nothing (check mode).") var check = false
        @Flag(help: "Show a diff of every file that changes.") var diff = false
        @Flag(
            help:
                "Exit 0 when what cannot be applied here was skipped (global settings outside the initial network namespace, module unloads on a kernel without loadable modules)."
        ) var allowPartial = false
        @Option(help: "How to print the result.") var format: OutputFormat = .text
        @Flag(help: "Exit 2 when something changed (or, with --check, would change), 0 when nothing did.") var detailedExitcode = false
        @Option(
            parsing: .unconditional, help: ArgumentHelp("Seconds to wait for another apply or rollback to finish.", valueName: "seconds"))
        var lockTimeout: Double = ApplyLock.defaultWaitSeconds

        func validate() throws {
            if runtimeOnly && persistOnly {
                throw ValidationError("--runtime-only and --persist-only exclude each other; give neither to apply both")
            }
            try validateLockTimeout(lockTimeout)
        }

        func run() throws {
            try reportingErrors {
                var request = ApplyRequest()
                (request.runtime, request.persistent, request.check, request.lockWaitSeconds) = (
                    !persistOnly, !runtimeOnly, check, lockTimeout
                )
                request.regenerateCommand = options.commandLine(subcommand: "apply") + " --persist-only"
                let outcome = try Applier.apply(
                    under: try options.root.systemRoot(), request: request, profile: try options.loadProfile(), facts: options.gatherFacts)
                switch format {
                case .json: printJSON(ApplyReport.json(outcome, diff: diff))
                case .text: print(ApplyReport.text(outcome, diff: diff))
                }
                if let error = outcome.error { throw error }
                if !outcome.notAppliedHere.isEmpty && !allowPartial {
                    throw TunerError.partialApply(keys: outcome.notAppliedHere, check: check)
                }
                return detailedExitcode && outcome.changed ? 2 : 0
            }
        }
    }
}

extension ProfileOptions {
    /// The command that recomputes the same plan, for generated files' headers (`--root` left out: it names the build tree).
    func commandLine(subcommand: String) -> String {
        let reference = ProfileCatalog.isPath(profile) ? URL(fileURLWithPath: profile).standardizedFileURL.path : profile
        return
            (["cttune", subcommand, "--profile", reference] + (memory.map { ["--memory", $0] } ?? [])
            + (cpus.map { ["--cpus", String($0)] } ?? [])).joined(separator: " ")
    }
}
