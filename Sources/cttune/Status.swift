import ArgumentParser
import Foundation
import Tuner

extension Cttune {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
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

        func validate() throws {
            if let watch, !(watch > 0 && watch <= 86400) {
                throw ValidationError("--watch must be between 0 and 86400 seconds, got \(watch)")
            }
            if count != nil && watch == nil { throw ValidationError("--count needs --watch SECONDS") }
            if let count, count < 1 { throw ValidationError("--count must be at least 1, got \(count)") }
            if !(window >= 0 && window <= 3600) { throw ValidationError("--window must be between 0 and 3600 seconds, got \(window)") }
            if textfile != nil && watch != nil {
                throw ValidationError("--textfile writes one snapshot and exits: drop --watch (let the collector's schedule repeat it)")
            }
        }

        func run() throws {
            try reportingUnknown(format: format) {
                let probe = StatusProbe()
                StopRequest.install()
                guard let watch else {
                    let report = try probe.report(windowSeconds: window, shouldStop: { StopRequest.isRequested })
                    if let textfile { try PrometheusTextfile.write(PrometheusTextfile.render(report), to: textfile) }
                    // cttune's boot-time files that another file overrides.
                    let overrides = PersistentConfig.overrides(of: PersistentConfig.filesOnDisk(under: .live), under: .live)
                    let writers = ConntrackWriters.find(under: .live, cpus: ProcessInfo.processInfo.activeProcessorCount)
                    if format == .json {
                        printJSON(
                            report.json() + [
                                ("overridden_by", ConfigOverride.json(overrides)),
                                ("writers", .array(writers.map { $0.json(plan: nil) })),
                            ])
                    } else {
                        print(
                            report.text()
                                + (ConfigOverride.text(overrides) + ConntrackWriter.text(writers, plan: nil)).joined(separator: "\n"))
                    }
                    return report.verdict.rawValue
                }
                if format == .text { print(StatusReport.watchLine(StatusReport.watchHeader)) }
                let worst = try probe.watch(intervalSeconds: watch, count: count, shouldStop: { StopRequest.isRequested }) { report in
                    print(format == .json ? JSONValue.object(report.json()).rendered() : StatusReport.watchLine(report.watchRow()))
                    fflush(stdout)
                }
                return worst.rawValue
            }
        }
    }
}
