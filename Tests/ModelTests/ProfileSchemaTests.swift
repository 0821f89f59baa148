import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel

/// The profile schema's numbers are defined once (`ProfileField`): these
/// tests pin the list and check the reader and the resolver against it.
@Suite("profile schema: each number defined once")
struct ProfileSchemaTests {
    /// The contract's numeric keys (DESIGN.md "Profile schema"), as YAML paths.
    static let contractPaths = [
        "load.tcp.new_per_second", "load.tcp.established_seconds", "load.tcp.rst_close_ratio", "load.tcp.orphan_ratio",
        "load.tcp.half_open_ratio", "load.udp.new_per_second", "load.udp.stream_ratio", "load.other_per_second", "burst_factor",
        "headroom", "memory_budget_percent", "chain_length", "gc_latency_seconds", "namespaces",
    ]

    @Test("the schema's numbers are the contract's keys, in its order")
    func pinned() {
        #expect(ProfileField.allCases.map(\.rawValue) == Self.contractPaths)
        for field in ProfileField.allCases {
            #expect((field.section.isEmpty ? field.key : field.section + "." + field.key) == field.rawValue)
        }
    }

    /// A profile file setting one field, nested under its sections.
    static func yaml(_ field: ProfileField, _ value: String) -> String {
        var lines: [String] = []
        for (depth, part) in field.section.split(separator: ".").enumerated() {
            lines.append(String(repeating: "  ", count: depth) + "\(part):")
        }
        let depth = field.section.isEmpty ? 0 : field.section.split(separator: ".").count
        return (lines + [String(repeating: "  ", count: depth) + "\(field.key): \(value)"]).joined(separator: "\n") + "\n"
    }

    static func text(_ value: Double, whole: Bool) -> String {
        whole || value == value.rounded() ? String(Int(value)) : String(value)
    }

    @Test("the reader takes each field at both limits and refuses it just outside, naming its path", arguments: ProfileField.allCases)
    func readerLimits(field: ProfileField) throws {
        let limits = field.limits
        for inside in [limits.lowerBound, limits.upperBound] {
            let document = try ProfileDocument.parse(yaml: Self.yaml(field, Self.text(inside, whole: field.isWhole)), file: "t.yaml")
            #expect(document.numbers == [field: inside])
        }
        let step = field.isWhole || limits.lowerBound >= 1 ? 1.0 : 0.001
        for outside in [limits.lowerBound - step, limits.upperBound + step] {
            #expect {
                _ = try ProfileDocument.parse(yaml: Self.yaml(field, Self.text(outside, whole: field.isWhole)), file: "t.yaml")
            } throws: { error in
                guard case .invalidProfile(_, _, let path, let problem)? = error as? TunerError else { return false }
                return path == field.rawValue && problem.contains("must be between")
            }
        }
    }

    @Test("the resolver sets each field where the planner reads it", arguments: ProfileField.allCases)
    func resolver(field: ProfileField) throws {
        let limits = field.limits
        let value = field.clamped((limits.lowerBound + limits.upperBound) / 2)
        var document = ProfileDocument()
        document.numbers[field] = value
        let profile = try ProfileCatalog.resolve(name: "t", chain: [document], sources: ["t.yaml"])
        #expect(field.value(in: profile) == value)
        // Nothing else moved from the defaults.
        let defaults = LoadProfile(name: "t")
        for other in ProfileField.allCases where other != field {
            #expect(other.value(in: profile) == other.value(in: defaults), "\(other.rawValue)")
        }
    }

    @Test("a clamped value is always one the reader takes", arguments: ProfileField.allCases)
    func clampedIsReadable(field: ProfileField) throws {
        for raw in [-1e12, -0.5, 0, 0.4, 1.5, 1e12, field.limits.upperBound * 1.0001] {
            let value = field.clamped(raw)
            #expect(field.limits.contains(value))
            let document = try ProfileDocument.parse(yaml: Self.yaml(field, Self.text(value, whole: field.isWhole)), file: "t.yaml")
            #expect(document.numbers[field] == value)
        }
    }
}
