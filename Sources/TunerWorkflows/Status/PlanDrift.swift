import FoundationEssentials
import TunerCore
import TunerModel
import TunerSystem

/// The values cttune's boot-time files set (the plan the last `cttune apply`
/// persisted) against the values running now, and the other writers that
/// undo them: what the textfile exports for the drift and writer alerts.
public struct PlanDrift: Sendable, Equatable {
    /// Per setting, the value of cttune's sysctl.d file (the hash size also
    /// from its modprobe.d options line).
    public var planned: [ConntrackSetting: Int]
    /// The running values of the same settings, where they could be read.
    public var running: [ConntrackSetting: Int]
    /// Per writer name, how many of the planned values it sets to another value.
    public var undoneByWriter: [String: Int]

    public init(planned: [ConntrackSetting: Int], running: [ConntrackSetting: Int], undoneByWriter: [String: Int] = [:]) {
        self.planned = planned
        self.running = running
        self.undoneByWriter = undoneByWriter
    }

    /// Whether the running value differs from the planned one; `nil` when
    /// either is unknown.
    public func drifted(_ setting: ConntrackSetting) -> Bool? {
        guard let planned = planned[setting], let running = running[setting] else { return nil }
        return planned != running
    }

    /// The planned values in cttune's files under `root`; empty when cttune
    /// has persisted nothing.
    public static func plannedValues(under root: SystemRoot) -> [ConntrackSetting: Int] {
        let persisted = PersistentConfig.persistedValues(under: root)
        var planned: [ConntrackSetting: Int] = [:]
        for setting in ConntrackSetting.allCases {
            let key = EffectiveSysctl.normalize(setting == .hashsize ? HashSizeNames.sysctl : setting.key)
            if let value = persisted[key].flatMap({ Int($0) }) { planned[setting] = value }
        }
        return planned
    }

    /// The running values of a namespace's readings: its timeouts, and the
    /// global max and hash size.
    public static func runningValues(_ readings: StatusReadings) -> [ConntrackSetting: Int] {
        var running = readings.timeouts
        running[.max] = readings.current.max
        if let buckets = readings.current.buckets { running[.hashsize] = buckets }
        return running
    }

    /// The drift of the namespace `readings` describe against cttune's files
    /// under `root`, with the conntrack writers found there; `nil` when cttune
    /// has persisted no plan.
    public static func read(under root: SystemRoot, running readings: StatusReadings, cpus: Int) -> PlanDrift? {
        let planned = plannedValues(under: root)
        guard !planned.isEmpty else { return nil }
        var undone: [String: Int] = [:]
        for writer in ConntrackWriters.find(under: root, cpus: cpus) {
            undone[writer.name, default: 0] += writer.conflicts(withPlanned: planned).count
        }
        return PlanDrift(planned: planned, running: runningValues(readings), undoneByWriter: undone)
    }
}
