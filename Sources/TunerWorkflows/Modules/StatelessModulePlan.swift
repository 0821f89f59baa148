import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// The module half of `cttune plan --profile stateless`: the order `cttune
/// unload` would take and the file `cttune blacklist` would write, computed
/// without changing anything.
public struct StatelessModulePlan: Equatable, Sendable {
    /// Modules in unload order, holders first.
    public var unloadOrder: [String] = []
    /// Why the unload would be refused (built in, in use, rules, no module support).
    public var refusal: String?
    public var blacklistPath: String?
    public var blacklistContents: String?
    /// The modules outside the family the blacklist would make unloadable, and those in use.
    public var impact: BlacklistImpact?
    /// Why there is no module plan at all (no module tree, unreadable state).
    public var unavailable: String?

    /// Previews the unload and the blacklist for the host under `root`.
    ///
    /// - Parameter blockingRules: firewall rules that need connection tracking.
    public static func preview(root: SystemRoot, blockingRules: [String]) -> StatelessModulePlan {
        var preview = StatelessModulePlan()
        do {
            let host = try ModuleHost(root: root)
            let plan = try host.unloadPlan(blockingRules: blockingRules)
            preview.unloadOrder = plan.order
            preview.refusal = plan.refusal.map(String.init(describing:))
            let impact = try host.blacklistImpact(allKernels: true, includingDefrag: false)
            let modules = impact.modules
            if !modules.isEmpty {
                preview.impact = impact
                preview.blacklistPath = try AtomicFile.checkedPath(KernelPaths.blacklistConf, under: root).string
                preview.blacklistContents = BlacklistFile.contents(for: modules)
            }
        } catch {
            preview.unavailable = String(describing: error)
        }
        return preview
    }
}
