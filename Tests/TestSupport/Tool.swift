import Foundation

/// Runs tools through `Shell`, in a namespace when one is given.
package enum Tool {
    private static func command(_ arguments: [String], in namespace: TestNamespace?) -> [String] {
        (namespace.map { ["ip", "netns", "exec", $0.name] } ?? []) + arguments
    }

    @discardableResult
    package static func run(_ arguments: [String], in namespace: TestNamespace? = nil, input: String? = nil) throws -> Shell.Result {
        try Shell.run(command(arguments, in: namespace), input: input)
    }

    /// Runs and throws with the tool's stderr when it fails.
    @discardableResult
    package static func check(_ arguments: [String], in namespace: TestNamespace? = nil, input: String? = nil) throws -> String {
        try Shell.check(command(arguments, in: namespace), input: input)
    }

    @discardableResult
    package static func check(in namespace: TestNamespace, _ arguments: [String], input: String? = nil) throws -> String {
        try check(arguments, in: namespace, input: input)
    }
}
