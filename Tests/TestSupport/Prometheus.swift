import Foundation

/// prometheus_client's text-format parser, run from the venv that
/// scripts/test-python.sh creates (`make test` does), through
/// scripts/parse-prometheus.py.
package enum PrometheusParser {
    package static let python = TestPaths.package.appendingPathComponent(".cache/python-venv/bin/python").path
    package static let script = TestPaths.package.appendingPathComponent("scripts/parse-prometheus.py").path

    /// For `.enabled(if:)`: the venv with prometheus_client exists.
    package static let isAvailable = (try? Shell.run([python, "-c", "import prometheus_client"]).status) == 0

    package struct Sample: Decodable {
        var name: String
        package var labels: [String: String]
        var value: Double
    }

    package struct Family: Decodable {
        package var type: String
        package var help: String
        package var samples: [Sample]
    }

    /// The families of a textfile, as the real parser sees them; throws with
    /// the parser's message when the file is not valid exposition format.
    package static func parse(_ path: String) throws -> [String: Family] {
        let output = try Shell.check([python, script, path])
        return try JSONDecoder().decode([String: Family].self, from: Data(output.utf8))
    }

    /// The value of the one sample of `family` whose labels include `labels`.
    package static func value(_ families: [String: Family], _ family: String, _ labels: [String: String] = [:]) -> Double? {
        families[family]?.samples.first { sample in labels.allSatisfy { sample.labels[$0.key] == $0.value } }?.value
    }
}
