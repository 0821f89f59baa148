import ArgumentParser
import FoundationEssentials
import SystemPackage
import TunerCore
import TunerModel
import TunerRender
import TunerSystem
import TunerWorkflows

extension Cttune {
    struct Unload: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "unload",
            abstract: "Unload the conntrack/NAT modules, holders first, like `modprobe -r --remove-holders`.",
            discussion:
                """
                Never unloads a module outside the conntrack/NAT family: a loaded holder outside it (openvswitch, ip_vs, \
                act_ct, nf_flow_table) refuses the unload, naming it; there is no --force. Also refused while firewall rules \
                need connection tracking or while a module is in use. Exit 1 when refused or when a module could not be \
                unloaded (those unloaded before are listed).
                """
        )

        @OptionGroup var tree: ModuleTreeOptions
        @Flag(help: "Print the exact unload order and what would stop it; unload nothing.") var dryRun = false
        @Option(help: "How to print the result.") var format: OutputFormat = .text

        func validate() throws {
            // delete_module acts on the running kernel whatever the tree says is loaded.
            if let root = tree.root.root, !dryRun, !SystemRoot(base: FilePath(root)).isLive {
                throw ValidationError(
                    """
                    --root DIR describes a tree, not the running kernel: add --dry-run to see its unload order, or drop \
                    --root to unload on this host
                    """
                )
            }
        }

        func run() throws {
            try reportingErrors("unload", format: format) {
                let host = try tree.host()
                // Only the running system has live rules; an image tree has none.
                let blocking = host.root.isLive ? try RulesetAnalyzer().analyzeLive().blockingRules : []
                let outcome = try host.unload(blockingRules: blocking, dryRun: dryRun)
                // The reason on stderr; a refused dry run's order on stdout.
                try emit(ModulesOutput.unload(outcome), format: format)
                return .success
            }
        }
    }
}
