import FoundationEssentials
import SystemPackage
import TunerCore
import TunerModel
import TunerSystem

/// Whether modprobe.d changes need an initramfs rebuild to apply at early
/// boot, and the command for the distribution. cttune never runs it.
public struct InitramfsAdvice: Equatable, Sendable {
    /// `true` rebuild, `false` not needed, `nil` cannot tell (rebuild to be safe).
    public var rebuildNeeded: Bool?
    public var reason: String
    /// The distribution's rebuild command, `nil` when no initramfs exists.
    public var command: String?

    /// Looks for initramfs images under ROOT/boot and for family modules in
    /// them (listed with `lsinitramfs` or `lsinitrd` when installed) or
    /// forced into them by initramfs-tools or dracut configuration.
    public static func check(root: SystemRoot, modules: [String]) -> InitramfsAdvice {
        let images = root.entries(of: KernelPaths.boot).filter {
            $0.hasPrefix("initrd.img-") || ($0.hasPrefix("initramfs-") && $0.hasSuffix(".img"))
        }
        guard !images.isEmpty else {
            return InitramfsAdvice(rebuildNeeded: false, reason: "no initramfs image under /boot", command: nil)
        }
        let command = rebuildCommand(root: root)
        let wanted = Set(modules)
        let forced = forcedModules(root: root).filter(wanted.contains)
        if !forced.isEmpty {
            return InitramfsAdvice(
                rebuildNeeded: true, reason: "initramfs configuration adds \(forced.sorted().joined(separator: ", "))", command: command)
        }
        var uninspected: [String] = []
        for image in images {
            guard let path = try? root.path(KernelPaths.boot.appending(image)), let listing = listImage(path.string) else {
                uninspected.append(image)
                continue
            }
            let inImage = Set(listing.split(separator: "\n").filter { $0.contains(".ko") }.map(ModuleTree.moduleName(fromPath:)))
                .intersection(wanted)
            if !inImage.isEmpty {
                return InitramfsAdvice(
                    rebuildNeeded: true, reason: "/boot/\(image) contains \(inImage.sorted().joined(separator: ", "))", command: command)
            }
        }
        if !uninspected.isEmpty {
            return InitramfsAdvice(
                rebuildNeeded: nil,
                reason:
                    """
                    cannot list \(uninspected.joined(separator: ", ")) (install initramfs-tools-core or dracut to check) — \
                    rebuild to be safe
                    """,
                command: command)
        }
        return InitramfsAdvice(rebuildNeeded: false, reason: "no initramfs image contains these modules", command: command)
    }

    /// The rebuild command from /etc/os-release's ID and ID_LIKE.
    static func rebuildCommand(root: SystemRoot) -> String {
        let release = (try? root.contents(of: KernelPaths.osReleaseFile)) ?? nil
        var ids: [String] = []
        for line in (release ?? "").split(separator: "\n") where line.hasPrefix("ID=") || line.hasPrefix("ID_LIKE=") {
            let value = line.split(separator: "=", maxSplits: 1).last ?? ""
            ids += value.trimming(ScalarSet(charactersIn: "\"'")).split(separator: " ").map(String.init)
        }
        if ids.contains(where: { ["debian", "ubuntu"].contains($0) }) { return "update-initramfs -u -k all" }
        if ids.contains(where: { ["fedora", "rhel", "centos", "suse", "opensuse"].contains($0) }) { return "dracut -f --regenerate-all" }
        if ids.contains("arch") { return "mkinitcpio -P" }
        if ids.contains("alpine") { return "mkinitfs" }
        return "rebuild the initramfs with your distribution's tool (update-initramfs -u, dracut -f or mkinitcpio -P)"
    }

    /// Modules named in /etc/initramfs-tools/modules (one per line) and in
    /// dracut's `add_drivers`/`force_drivers` lines.
    static func forcedModules(root: SystemRoot) -> Set<String> {
        var names = Set<String>()
        if let text = try? root.contents(of: KernelPaths.initramfsToolsModules) {
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                if let first = line.split(separator: " ").first { names.insert(ModuleFamily.normalized(first)) }
            }
        }
        let dracutFiles =
            [KernelPaths.dracutConf]
            + root.entries(of: KernelPaths.dracutConfD).filter { $0.hasSuffix(".conf") }.map { KernelPaths.dracutConfD.appending($0) }
        for file in dracutFiles {
            guard let text = try? root.contents(of: file) else { continue }
            for line in text.split(separator: "\n") where line.contains("add_drivers") || line.contains("force_drivers") {
                let value = line.split(separator: "=", maxSplits: 1).last ?? ""
                value.trimming(ScalarSet(charactersIn: "\"' ")).split(separator: " ").forEach {
                    names.insert(ModuleFamily.normalized($0))
                }
            }
        }
        return names
    }

    /// The file list of an initramfs image from the first installed lister.
    static func listImage(_ path: String) -> String? {
        for lister in [["lsinitramfs"], ["lsinitrd"]] {
            if let output = ExternalTool.output(lister + [path]) { return output }
        }
        return nil
    }
}
