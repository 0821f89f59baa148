import ArgumentParser
import FoundationEssentials
import TunerCore
import TunerModel
import TunerRender
import TunerSystem
import TunerWorkflows

extension Cttune {
    struct Apply: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "apply",
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
                """
                Exit 0 when what cannot be applied here was skipped (global settings outside the initial network namespace, \
                module unloads on a kernel without loadable modules).
                """
        ) var allowPartial = false
        @OptionGroup var scope: BlacklistScopeOptions
        @Option(help: "How to print the result.") var format: OutputFormat = .text
        @Option(
            help:
                """
                When another file read after cttune's at boot sets a planned key: warn (apply and report it), refuse (change \
                nothing, exit 1), or override (name cttune's file 99-zz-cttune.conf so it is read last).
                """
        ) var onConflict: ConflictPolicy = .warn
        @Flag(
            help:
                """
                Plan from the inputs recorded in the header of cttune's sysctl.d file (the boot unit's apply), so the boot \
                applies exactly the persisted plan; the profile options are used only when there is no such file.
                """
        ) var persisted = false
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
            try reportingErrors("apply", format: format) {
                var request = ApplyRequest()
                (request.runtime, request.persistent, request.check, request.lockWaitSeconds) = (
                    !persistOnly, !runtimeOnly, check, lockTimeout
                )
                (request.includeDefrag, request.force) = (scope.includeDefrag, scope.force)
                request.onConflict = onConflict
                let inputs = persisted ? try recordedOptions() : options
                request.profileReference = inputs.profileReference
                request.kernel = inputs.kernel
                request.ruleset = inputs.ruleset.flatMap { $0 == "-" ? nil : URL(fileURLWithPath: $0).standardizedFileURL.path }
                let outcome = try Applier.apply(under: try options.root.systemRoot(), request: request, inputs: try inputs.planInputs())
                try emit(ApplyOutput(outcome, diff: diff, allowPartial: allowPartial, check: check), format: format)
                return detailedExitcode && outcome.changed ? .changes : .success
            }
        }
    }
}

extension Cttune.Apply {
    /// The profile options recorded in cttune's sysctl.d header, under this
    /// command's `--root`; this command's options when there is no header.
    func recordedOptions() throws -> ProfileOptions {
        guard let recorded = try PersistentConfig.recordedArguments(under: try options.root.systemRoot()) else { return options }
        var inputs: ProfileOptions
        do {
            inputs = try Cttune.Apply.parse(recorded.arguments).options
        } catch {
            throw TunerError.malformed(
                path: recorded.file,
                detail:
                    """
                    its \"# Regenerate with:\" line is not a cttune apply command (\(Cttune.Apply.message(for: error))) — \
                    rerun the apply that wrote it, or drop --persisted
                    """
            )
        }
        inputs.root = options.root
        return inputs
    }
}

extension ConflictPolicy: ExpressibleByArgument {}

extension ProfileOptions {
    /// The profile for generated files' headers: a name as given, a path made absolute.
    var profileReference: String {
        ProfileCatalog.isPath(profile) ? URL(fileURLWithPath: profile).standardizedFileURL.path : profile
    }
}
