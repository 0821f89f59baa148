import ArgumentParser
import SystemPackage
import TunerCore
import TunerModel
import TunerRender
import TunerSystem
import TunerWorkflows

extension Cttune {
    struct Blacklist: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "blacklist",
            abstract:
                """
                Keep the conntrack/NAT modules off after reboot: write /etc/modprobe.d/cttune-blacklist.conf (blacklist and \
                install /bin/false lines).
                """,
            discussion:
                """
                Lists every module outside the family that the blacklist makes unloadable, and refuses (exit 1) while one is \
                loaded, listed in modules-load.d or used by a ruleset, unless --force. Says whether the initramfs must be \
                rebuilt for early boot and prints the command; never runs it.
                """
        )

        @OptionGroup var root: RootOption
        @Option(help: ArgumentHelp("Write this file instead of /etc/modprobe.d/cttune-blacklist.conf.", valueName: "file"))
        var output: String?
        @Option(
            help: ArgumentHelp(
                "List the modules of this kernel release only (default: every kernel under /lib/modules).", valueName: "version"))
        var kernel: String?
        @Flag(help: "Print the file and what would change; write nothing.") var dryRun = false
        @Flag(help: "Delete the file instead.") var remove = false
        @OptionGroup var scope: BlacklistScopeOptions
        @Option(help: "How to print the result.") var format: OutputFormat = .text

        func validate() throws {
            if output != nil && root.root != nil { throw ValidationError("give either --output FILE or --root DIR, not both") }
            try validateKernelRelease(kernel)
        }

        func run() throws {
            try reportingErrors("blacklist", format: format) {
                let host = try ModuleHost(root: try root.systemRoot(), release: kernel, anyKernel: kernel == nil)
                if !remove { try NatChains.refuseIfAny(under: try root.systemRoot(), purpose: "blacklist the conntrack modules") }
                let file = output.map { FilePath(CommandLinePath.absolute($0)) }
                let result =
                    remove
                    ? try host.removeBlacklist(output: file, dryRun: dryRun)
                    : try host.writeBlacklist(
                        output: file, allKernels: kernel == nil, includingDefrag: scope.includeDefrag, force: scope.force, dryRun: dryRun)
                try emit(ModulesOutput.blacklist(result), format: format)
                return .success
            }
        }
    }
}
