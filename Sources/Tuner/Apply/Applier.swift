import Foundation
import SystemPackage

/// What `cttune apply` should do besides computing the plan.
public struct ApplyRequest: Sendable {
    /// Write the kernel settings now.
    public var runtime = true
    /// Write the boot-time files.
    public var persistent = true
    /// Report what would change; write nothing (not even the lock or the journal).
    public var check = false
    /// The command line printed in each generated file's header.
    public var regenerateCommand = "cttune apply --persist-only"
    public var lockWaitSeconds = ApplyLock.defaultWaitSeconds

    public init() {}
}

/// The result of one setting in an apply.
public enum SettingResult: Equatable, Sendable {
    case applied
    case unchanged
    /// Not applied; the reason says why and what to do.
    case skipped(String)
    case failed(String)
    /// Applied, then undone because a later step failed.
    case rolledBack
    /// `--check`: would be applied.
    case pending
}

/// What happens to one generated file.
public struct FileResult: Equatable, Sendable {
    public enum Action: String, Sendable {
        case created, updated, unchanged, removed
    }

    /// The path as written (under the root).
    public var path: String
    public var action: Action
    /// Unified diff from the old content to the new; empty when unchanged.
    public var diff: String
}

/// The outcome of `cttune apply`: the plan plus what happened to each
/// setting and file.
public struct ApplyOutcome {
    public var plan: TuningPlan
    public var results: [ConntrackSetting: SettingResult]
    public var files: [FileResult]
    public var notes: [String]
    public var journalID: String?
    /// Something was changed (or, with `--check`, would be).
    public var changed: Bool
    /// The failed step, everything done before it undone.
    public var error: TunerError?
    public var check: Bool

    /// Whether kernel settings were to be written (not `--persist-only`).
    public var runtime: Bool

    /// Settings that should change now but could not be applied from here.
    public var skippedForGood: [ConntrackSetting] {
        guard runtime else { return [] }
        return plan.settings.compactMap { setting in
            if case .skipped = results[setting.setting], setting.blocker != nil { return setting.setting }
            return nil
        }
    }
}

/// Computes the plan's runtime writes and file changes, and applies them in
/// one journaled transaction.
public enum Applier {
    /// Applies the plan made from `load()` (facts and profile are read while
    /// the lock is held, so the old values recorded are the values replaced).
    public static func apply(under root: SystemRoot, request: ApplyRequest,
                             load: () throws -> (HostFacts, LoadProfile)) throws -> ApplyOutcome {
        let lock = request.check ? nil : try ApplyLock(root: root, waitSeconds: request.lockWaitSeconds)
        defer { withExtendedLifetime(lock) {} }
        let (facts, profile) = try load()
        let plan = Planner.plan(for: facts, profile: profile)
        guard plan.fitsBudget else {
            throw TunerError.planDoesNotFit(neededBytes: plan.estimate.memoryBytes, budgetBytes: plan.estimate.budgetBytes,
                                            profile: profile.name)
        }

        let (results, sysctlActions) = try runtimeActions(plan, request: request, under: root)
        let (files, fileActions, notes) = try request.persistent ? fileActions(plan, request: request, under: root) : ([], [], [])
        let actions = sysctlActions + fileActions

        var outcome = ApplyOutcome(plan: plan, results: results, files: files, notes: notes, journalID: nil,
                                   changed: !actions.isEmpty, error: nil, check: request.check,
                                   runtime: request.runtime)
        guard !request.check, !actions.isEmpty else { return outcome }

        let entry = JournalEntry(id: Journal.newIdentifier(), command: "apply", created: Journal.timestamp(),
                                 profile: profile.name, status: .inProgress, actions: actions)
        let run = try Transaction(root: root).run(entry)
        outcome.journalID = entry.id
        for (index, action) in actions.enumerated() {
            guard case .sysctl(let change) = action, let setting = ConntrackSetting(rawValue: change.key) else { continue }
            switch run.failedStep {
            case nil: outcome.results[setting] = .applied
            case let (failedIndex, error)? where index == failedIndex: outcome.results[setting] = .failed(error.description)
            case let (failedIndex, _)? where index < failedIndex: outcome.results[setting] = .rolledBack
            default: outcome.results[setting] = .skipped("not attempted: an earlier step failed")
            }
        }
        if run.failedStep != nil {
            // Every file is back as it was.
            outcome.files = outcome.files.map { FileResult(path: $0.path, action: .unchanged, diff: "") }
            outcome.changed = false
            outcome.error = run.error
        }
        return outcome
    }

    /// The kernel writes the plan needs: each setting's result so far, and
    /// the actions for the settings that change and can be written here.
    static func runtimeActions(_ plan: TuningPlan, request: ApplyRequest,
                               under root: SystemRoot) throws -> ([ConntrackSetting: SettingResult], [JournalAction]) {
        var results: [ConntrackSetting: SettingResult] = [:]
        var actions: [JournalAction] = []
        for setting in plan.settings {
            if !setting.changes {
                results[setting.setting] = .unchanged
            } else if !request.runtime {
                results[setting.setting] = .skipped("--persist-only: written to the boot-time files, not applied now")
            } else if let blocker = setting.blocker {
                results[setting.setting] = .skipped(blocker)
            } else if let current = setting.current {
                let path = try SettingWriter.path(for: setting.setting, under: root)
                actions.append(.sysctl(.init(key: setting.key, path: path.string, old: current, new: setting.planned)))
                results[setting.setting] = .pending
            } else {
                results[setting.setting] = .skipped("current value unreadable, so it could not be restored — check \(setting.key)")
            }
        }
        return (results, actions)
    }

    /// The boot-time files compared with what is on disk: what happens to
    /// each, the actions for those that change, and the notes to print.
    static func fileActions(_ plan: TuningPlan, request: ApplyRequest,
                            under root: SystemRoot) throws -> ([FileResult], [JournalAction], [String]) {
        let config = PersistentConfig.make(for: plan, regenerateCommand: request.regenerateCommand,
                                           bucketsSysctlWritable: PersistentConfig.bucketsSysctlWritable(under: root))
        var files: [FileResult] = []
        var actions: [JournalAction] = []
        for file in config.files {
            let old = try AtomicFile.contents(of: file.path, under: root)
            let shown = try root.path(file.path).string
            let action: FileResult.Action
            switch (old, file.content) {
            case (nil, nil): continue
            case let (old?, nil):
                guard old.hasPrefix(PersistentConfig.headerMarker) else { continue } // not ours: leave it
                action = .removed
            case (nil, _): action = .created
            case let (old?, new?): action = old == new ? .unchanged : .updated
            }
            if action != .unchanged {
                actions.append(.file(.init(path: file.path.string, oldContent: old, newContent: file.content)))
            }
            files.append(FileResult(path: shown, action: action,
                                    diff: action == .unchanged ? "" : TextDiff.unified(old: old, new: file.content, path: shown)))
        }
        return (files, actions, config.notes)
    }
}
