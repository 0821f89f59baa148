import ArgumentParser
import FoundationEssentials
import Glibc
import TunerCore
import TunerModel
import TunerRender
import TunerSystem
import TunerWorkflows

extension Cttune {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Say whether conntrack is hurting this network namespace now: fill, drops, log evidence, orphans, and the fix.",
            discussion: "Exit codes follow the monitoring-plugin convention: 0 ok, 1 warning, 2 critical, 3 unknown.")

        @Option(help: "How to print the status (json with --watch: one object per line).") var format: OutputFormat = .text
        @Option(help: ArgumentHelp("Refresh every N seconds, showing rates, until Ctrl-C or --count samples.", valueName: "seconds"))
        var watch: Double?
        @Option(help: ArgumentHelp("With --watch: stop after N samples.", valueName: "n")) var count: Int?
        @Option(help: ArgumentHelp("Seconds between the two samples of a single check (0: one sample, no rates).", valueName: "seconds"))
        var window: Double = 1
        @Option(
            help: ArgumentHelp(
                "Write Prometheus text metrics atomically to this file (node_exporter textfile collector) and exit.", valueName: "path"))
        var textfile: String?
        @Flag(
            help:
                """
                Count the entries by protocol, TCP state and status bits on every run (by default only when the table is 75 \
                % full or dropping).
                """
        )
        var census = false
        @Option(
            help: ArgumentHelp(
                "Count only the first N entries of the dump and scale to the live count (the output says so).", valueName: "n"))
        var censusSample: Int?
        @Option(help: ArgumentHelp("Also count the entries on every Nth run (counted in /run/cttune/status-runs).", valueName: "n"))
        var censusEvery: Int?
        @Option(
            help: ArgumentHelp(
                "With a census: list this many flow classes (direction protocol/service) before one 'other' row; 0: no classes.",
                valueName: "n"))
        var top: Int = EntryCensus.defaultTopClasses
        @Flag(help: "Read every network namespace the host can see (/run/netns, Docker's, each process's), one row each, with totals.")
        var allNamespaces = false
        @Option(
            help: ArgumentHelp(
                "Read this namespace (repeatable): a name under /run/netns, an absolute path to a netns file, or pid:N.",
                valueName: "id"))
        var namespace: [String] = []
        @Flag(help: "Print nothing when the verdict is ok, only the summary line otherwise (errors still go to stderr).")
        var quiet = false

        func validate() throws {
            if let watch, !(watch > 0 && watch <= 86400) {
                throw ValidationError("--watch must be between 0 and 86400 seconds, got \(watch)")
            }
            if count != nil && watch == nil { throw ValidationError("--count needs --watch SECONDS") }
            if let count, count < 1 { throw ValidationError("--count must be at least 1, got \(count)") }
            if !(window >= 0 && window <= 3600) { throw ValidationError("--window must be between 0 and 3600 seconds, got \(window)") }
            if let censusSample, censusSample < 1 { throw ValidationError("--census-sample must be at least 1 entry, got \(censusSample)") }
            if let censusEvery, censusEvery < 1 { throw ValidationError("--census-every must be at least 1 run, got \(censusEvery)") }
            if !(0...1000).contains(top) { throw ValidationError("--top must be between 0 and 1000 classes, got \(top)") }
            if quiet && watch != nil {
                throw ValidationError("--quiet is for single checks: drop --watch, or drop --quiet to see the rows")
            }
            if (allNamespaces || !namespace.isEmpty) && watch != nil {
                throw ValidationError("--all-namespaces and --namespace take one reading: drop --watch")
            }
            if allNamespaces && !namespace.isEmpty {
                throw ValidationError("--all-namespaces reads them all: drop --namespace, or list only those")
            }
            for id in namespace {
                do { _ = try NamespaceIdentifier.parse(CommandLinePath.namespace(id)) } catch {
                    throw ValidationError("--namespace: \(error)")
                }
            }
            if textfile != nil && watch != nil {
                throw ValidationError("--textfile writes one snapshot and exits: drop --watch (let the collector's schedule repeat it)")
            }
        }

        func run() throws {
            try reportingUnknown(format: format) {
                let probe = StatusProbe(
                    census: CensusPolicy(always: census, sampleLimit: censusSample, everyNthRun: censusEvery, topClasses: top))
                StopRequest.install()
                if allNamespaces || !namespace.isEmpty {
                    let requested = allNamespaces ? nil : try namespace.map { try NamespaceIdentifier.parse(CommandLinePath.namespace($0)) }
                    let host = try probe.hostReport(windowSeconds: window, namespaces: requested, shouldStop: { StopRequest.isRequested })
                    if let textfile {
                        // Drift is judged where cttune's boot-time files apply: the initial namespace.
                        let drift = host.members.first { $0.report.readings.namespace.kind == .initial }.flatMap {
                            PlanDrift.read(under: .live, running: $0.report.readings, cpus: ProcessInfo.processInfo.activeProcessorCount)
                        }
                        try PrometheusTextfile.write(PrometheusTextfile.render(host, drift: drift), to: CommandLinePath.absolute(textfile))
                    }
                    for reason in host.partialReasons { Diagnostics.partial(reason) }
                    if quiet {
                        if host.verdict != .ok { print(host.summary) }
                    } else {
                        try emit(host, format: format)
                    }
                    return host.verdict.exitCode
                }
                guard let watch else {
                    let report = try probe.report(windowSeconds: window, shouldStop: { StopRequest.isRequested })
                    if let textfile {
                        let drift = PlanDrift.read(
                            under: .live, running: report.readings, cpus: ProcessInfo.processInfo.activeProcessorCount)
                        try PrometheusTextfile.write(
                            PrometheusTextfile.render(report, drift: drift), to: CommandLinePath.absolute(textfile))
                    }
                    if let problem = report.partialReason { Diagnostics.partial(problem) }
                    // cttune's boot-time files that another file overrides.
                    let overrides = try PersistentConfig.overrides(of: PersistentConfig.filesOnDisk(under: .live), under: .live)
                    let writers = ConntrackWriters.find(under: .live, cpus: ProcessInfo.processInfo.activeProcessorCount)
                    if quiet {
                        if report.verdict != .ok { print(report.summary) }
                    } else {
                        try emit(StatusOutput(report, overrides: overrides, writers: writers), format: format)
                    }
                    return report.verdict.exitCode
                }
                if format == .text { print(StatusReport.watchLine(StatusReport.watchHeader)) }
                let worst = try probe.watch(intervalSeconds: watch, count: count, shouldStop: { StopRequest.isRequested }) { report in
                    if format == .json { printJSON(report.json(), pretty: false) } else { print(StatusReport.watchLine(report.watchRow())) }
                    fflush(stdout)
                }
                return worst.exitCode
            }
        }
    }
}
