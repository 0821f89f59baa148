import ArgumentParser
import TunerCore
import TunerModel
import TunerRender
import TunerSystem
import TunerWorkflows

extension Cttune {
    struct Modules: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "modules",
            abstract:
                "Show the conntrack/NAT kernel modules: state, holders, dependencies, softdeps and modprobe.d config. Changes nothing.")

        @OptionGroup var tree: ModuleTreeOptions
        @Option(help: "How to print the modules.") var format: OutputFormat = .text

        func run() throws {
            try reportingErrors("modules", format: format) {
                try emit(ModulesOutput.inventory(try tree.host().inventory()), format: format)
                return .success
            }
        }
    }
}
