import TunerCore

/// Hosts for the planner's tests: given RAM, CPUs and entry size, the
/// kernel's boot values everywhere else.
package enum FixtureFacts {
    package static func host(memory: Int, cpus: Int = 2, entryBytes: Int = 256, count: Int = 0) -> HostFacts {
        var current: [ConntrackSetting: Int] = [.max: 262_144, .hashsize: 262_144]
        for setting in ConntrackSetting.timeouts { current[setting] = setting.kernelDefaultSeconds }
        return HostFacts(
            memoryBytes: memory, cpus: cpus, kernelRelease: "6.18.0", entryBytes: entryBytes,
            entryBytesSource: .table, count: count, current: current)
    }
}
