import Foundation
import PackagePlugin

/// Embeds profiles/*.yaml into the Tuner library, so an installed `cttune`
/// binary finds its built-in profiles without the source tree.
@main
struct EmbedProfiles: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let profilesDirectory = context.package.directoryURL.appendingPathComponent("profiles")
        let profiles = try FileManager.default
            .contentsOfDirectory(at: profilesDirectory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "yaml" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("BuiltinProfiles.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(profiles.count) load profiles",
                executable: try context.tool(named: "embed-profiles").url,
                arguments: [output.path] + profiles.map(\.path),
                inputFiles: profiles,
                outputFiles: [output]
            )
        ]
    }
}
