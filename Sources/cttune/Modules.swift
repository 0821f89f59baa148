import ArgumentParser
import Tuner

extension Cttune {
    struct Modules: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the conntrack/NAT kernel modules: state, holders, dependencies, softdeps and modprobe.d config. Changes nothing.")

        @OptionGroup var root: RootOption
        @Option(help: ArgumentHelp("Read the module tree of this kernel release instead of the running one's.", valueName: "version"))
        var kernel: String?
        @Option(help: "How to print the modules.") var format: OutputFormat = .text

        func run() throws {
            try reportingErrors {
                let inventory = try ModuleHost(root: try root.systemRoot(), release: kernel).inventory()
                switch format {
                case .json: printJSON(ModuleReports.json(inventory))
                case .text: print(ModuleReports.text(inventory))
                }
                return 0
            }
        }
    }
}
