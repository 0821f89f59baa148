import TunerCore
import TunerModel
import TunerSystem

extension ConntrackWriter {
    /// The writes that differ from the plan: what this writer undoes.
    public func conflicts(with plan: TuningPlan) -> [(write: Write, planned: Int)] {
        writes.compactMap { write in
            guard let setting = ConntrackSetting(rawValue: write.key), let planned = plan.planned(setting), planned != write.value else {
                return nil
            }
            // A raise-only write leaves a larger planned value alone.
            if write.when.hasSuffix("when smaller") && planned >= write.value { return nil }
            return (write, planned)
        }
    }
}
