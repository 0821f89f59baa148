import Foundation
import TestSupport
import Testing

/// What the fleet tests drive: `make install-files` into a temporary prefix,
/// the Debian package `make deb` built, and the virtualenv's ansible-playbook.
/// `make test` prepares the package, the man page and the virtualenv first
/// (`make fleet-test-deps`); run that before `swift test --filter Fleet`.
enum Fleet {
    static let generated = TestPaths.package.appendingPathComponent(".build/fleet")
    static let manPage = generated.appendingPathComponent("cttune.1").path
    static let ansiblePlaybook = TestPaths.package.appendingPathComponent(".cache/ansible-venv/bin/ansible-playbook").path
    static let collections = TestPaths.package.appendingPathComponent("contrib/ansible").path
    static let preparedBy = "prepared by `make fleet-test-deps` (make test runs it)"

    static func has(_ tool: String) -> Bool { (try? Shell.run(["which", tool]).status) == 0 }

    /// The package `make deb` wrote.
    static func debianPackage() throws -> String {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: generated.path)) ?? []
        let name = try #require(
            names.filter { $0.hasPrefix("cttune_") && $0.hasSuffix(".deb") }.sorted().last,
            "no cttune_*.deb in .build/fleet: \(preparedBy)")
        return generated.appendingPathComponent(name).path
    }
}

/// A `make install-files` into a temporary directory used as PREFIX (so the
/// units' ExecStart and man's MANPATH point at files that exist) or DESTDIR.
final class Installation {
    let url: URL
    let prefix: String
    let destdir: String

    /// - Parameter underDestdir: install with DESTDIR=this directory and PREFIX=/usr
    ///   (what a package build does) instead of PREFIX=this directory.
    init(underDestdir: Bool = false) throws {
        try #require(FileManager.default.fileExists(atPath: Fleet.manPage), "no generated man page: \(Fleet.preparedBy)")
        url = try TestPaths.temporaryDirectory("cttune-install")
        (prefix, destdir) = underDestdir ? ("/usr", url.path) : (url.path, "")
        try make("install-files")
    }

    func remove() { try? FileManager.default.removeItem(at: url) }

    /// `make TARGET PREFIX=… DESTDIR=…` with the test build's binary.
    @discardableResult
    func make(_ target: String) throws -> String {
        try Shell.check([
            "make", "--no-print-directory", "-C", TestPaths.package.path, target,
            "PREFIX=\(prefix)", "DESTDIR=\(destdir)", "INSTALL_FROM=\(TestPaths.products.path)",
        ])
    }

    /// An installed file's path on disk, from its path under PREFIX.
    func path(_ underPrefix: String) -> String { destdir + prefix + "/" + underPrefix }

    /// Every regular file under the installation, relative to it, sorted.
    func files() -> [String] {
        var found: [String] = []
        let enumerator = FileManager.default.enumerator(atPath: url.path)
        while let relative = enumerator?.nextObject() as? String {
            var info = stat()
            if lstat(url.appendingPathComponent(relative).path, &info) == 0, info.st_mode & S_IFMT == S_IFREG { found.append(relative) }
        }
        return found.sorted()
    }
}
