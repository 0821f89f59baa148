import TunerCore
import TunerModel
import TunerSystem

extension ConntrackWriter {
    /// The writes that differ from the plan: what this writer undoes.
    public func conflicts(with plan: TuningPlan) -> [(write: Write, planned: Int)] {
        var planned: [ConntrackSetting: Int] = [:]
        for setting in ConntrackSetting.allCases { planned[setting] = plan.planned(setting) }
        return conflicts(withPlanned: planned)
    }

    /// The writes that differ from planned values (a plan's, or those of
    /// cttune's boot-time files for status).
    public func conflicts(withPlanned plannedValues: [ConntrackSetting: Int]) -> [(write: Write, planned: Int)] {
        writes.compactMap { write in
            guard let setting = ConntrackSetting(rawValue: write.key), let planned = plannedValues[setting], planned != write.value else {
                return nil
            }
            // A raise-only write leaves a larger planned value alone.
            if write.when.hasSuffix("when smaller") && planned >= write.value { return nil }
            return (write, planned)
        }
    }
}
