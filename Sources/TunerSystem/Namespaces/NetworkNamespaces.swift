import FoundationEssentials
import Glibc
import SystemPackage
import TunerCore

/// A network namespace as the host names it, in output and as input: a name
/// under /run/netns (`ip netns add NAME`), an absolute path to a netns file
/// (Docker's /var/run/docker/netns/…, a bind mount), or `pid:N` (the
/// namespace process N is in, /proc/N/ns/net).
public enum NamespaceIdentifier: Hashable, Sendable, CustomStringConvertible {
    case named(String)
    case path(String)
    case process(Int32)

    /// Parses an identifier as `description` prints it.
    /// - Throws: `TunerError.malformed` naming the accepted forms.
    public static func parse(_ text: String) throws -> NamespaceIdentifier {
        if text.hasPrefix("pid:") {
            guard let pid = Int32(text.dropFirst(4)), pid > 0 else {
                throw TunerError.malformed(path: "namespace \"\(text)\"", detail: "pid:N needs a process id above 0, e.g. pid:1")
            }
            return .process(pid)
        }
        if text.hasPrefix("/") { return .path(text) }
        guard PathName.isOneComponent(text) else {
            throw TunerError.malformed(
                path: "namespace \(Echo.quoted(text, limit: 80))",
                detail: "expected a name under /run/netns (ip netns list), an absolute path to a netns file, or pid:N")
        }
        return .named(text)
    }

    public var description: String {
        switch self {
        case .named(let name): return name
        case .path(let path): return path
        case .process(let pid): return "pid:\(pid)"
        }
    }

    /// The identifier for a one-line message or a report row: a name or path
    /// can hold any byte but `/` and NUL, so control characters are escaped.
    public var shown: String { Echo.escaped(description, limit: 200) }

    /// The namespace file to open for setns(2).
    package func file(under root: SystemRoot) throws -> FilePath {
        switch self {
        case .named(let name): return try root.path(KernelPaths.namedNetworkNamespaces.appending(name))
        case .path(let path): return try root.path(FilePath(path))
        case .process(let pid): return try root.path(KernelPaths.proc.appending("\(pid)/ns/net"))
        }
    }
}

/// The network namespaces a host can see, each once.
public enum NamespaceDirectory {
    /// A namespace and the nsfs inode that identifies it (as in `net:[INODE]`
    /// and the kernel's "table full in netns INODE" lines).
    public struct Entry: Sendable, Equatable {
        public var identifier: NamespaceIdentifier
        public var inode: UInt64

        package init(identifier: NamespaceIdentifier, inode: UInt64) {
            self.identifier = identifier
            self.inode = inode
        }
    }

    /// Names under /run/netns, Docker's /var/run/docker/netns, then every
    /// process's /proc/N/ns/net; a namespace reachable several ways is listed
    /// once, by the first of these (so the initial namespace is `pid:1`).
    /// Files that are not namespaces (a stale /run/netns entry) are skipped.
    public static func all(under root: SystemRoot) -> [Entry] {
        guard let nsfs = device(of: try? root.path(KernelPaths.ownNetworkNamespace)) else { return [] }
        var seen = Set<UInt64>()
        var found: [Entry] = []
        func add(_ identifier: NamespaceIdentifier) {
            guard let file = try? identifier.file(under: root) else { return }
            var info = stat()
            guard stat(file.string, &info) == 0, info.st_dev == nsfs, seen.insert(UInt64(info.st_ino)).inserted else { return }
            found.append(Entry(identifier: identifier, inode: UInt64(info.st_ino)))
        }
        for name in root.entries(of: KernelPaths.namedNetworkNamespaces) { add(.named(name)) }
        for name in root.entries(of: KernelPaths.dockerNetworkNamespaces) {
            add(.path(KernelPaths.dockerNetworkNamespaces.appending(name).string))
        }
        for pid in root.entries(of: KernelPaths.proc).compactMap(Int32.init).sorted() { add(.process(pid)) }
        return found
    }

    /// The nsfs inode of one identifier's namespace; `nil` when it is gone.
    public static func inode(of identifier: NamespaceIdentifier, under root: SystemRoot) -> UInt64? {
        try? check(identifier, under: root).get()
    }

    /// The nsfs inode of one identifier's namespace, or why it cannot be
    /// read: absent, not permitted, or not a namespace file at all.
    public static func check(_ identifier: NamespaceIdentifier, under root: SystemRoot) -> Result<UInt64, NamespaceVisitError> {
        switch open(identifier, under: root) {
        case .success(let opened):
            close(opened.descriptor)
            return .success(opened.inode)
        case .failure(let failure): return .failure(failure)
        }
    }

    /// Opens a namespace file for setns(2), bounded: the type is checked
    /// with stat(2) before the open (a FIFO would block open(2) forever, a
    /// device's open can act), the open never blocks (O_NONBLOCK), and the
    /// descriptor must be a file of the nsfs file system, the one every
    /// /proc/N/ns/net lives on.
    ///
    /// - Returns: the descriptor (close-on-exec; the caller closes it) and the inode.
    package static func open(
        _ identifier: NamespaceIdentifier, under root: SystemRoot
    ) -> Result<(descriptor: Int32, inode: UInt64), NamespaceVisitError> {
        func failed(_ reason: String) -> Result<(descriptor: Int32, inode: UInt64), NamespaceVisitError> {
            .failure(NamespaceVisitError(identifier: identifier, reason: reason))
        }
        guard let file = try? identifier.file(under: root) else { return failed("its path leads outside \(root)") }
        let shown = Echo.escaped(file.string, limit: 200)
        guard let nsfs = device(of: try? root.path(KernelPaths.ownNetworkNamespace)) else {
            return failed("cannot tell namespace files from others: \(KernelPaths.ownNetworkNamespace) is unreadable")
        }
        var info = stat()
        guard stat(file.string, &info) == 0 else { return failed(reason(Errno(rawValue: errno), file: shown)) }
        guard info.st_mode & S_IFMT == S_IFREG, info.st_dev == nsfs else { return failed(notANamespace(info, file: shown)) }
        let descriptor = Glibc.open(file.string, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard descriptor >= 0 else { return failed(reason(Errno(rawValue: errno), file: shown)) }
        // Replaced between the stat and the open: check what was opened.
        guard fstat(descriptor, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_dev == nsfs else {
            close(descriptor)
            return failed(notANamespace(info, file: shown))
        }
        return .success((descriptor, UInt64(info.st_ino)))
    }

    static func reason(_ code: Errno, file: String) -> String {
        switch code {
        case .noSuchFileOrDirectory, .notDirectory: return "no such namespace (\(file) does not exist)"
        case .permissionDenied, .notPermitted: return "cannot open \(file): \(errnoText(code)) (namespace files need root)"
        default: return "cannot open \(file): \(errnoText(code))"
        }
    }

    static func notANamespace(_ info: stat, file: String) -> String {
        let kind = info.st_mode & S_IFMT == S_IFREG ? "a regular file" : FileIO.kind(info.st_mode)
        return "\(file) is \(kind), not a network namespace file"
    }

    static func device(of path: FilePath?) -> dev_t? {
        guard let path else { return nil }
        var info = stat()
        return stat(path.string, &info) == 0 ? info.st_dev : nil
    }
}

/// One thread that enters network namespaces in turn.
///
/// setns(2) moves only the calling thread, and Swift tasks (and dispatch
/// work) hop between threads, so the entering, the reads and the netlink
/// socket all happen on this one dedicated thread, which returns to its
/// original namespace after each visit. Reads inside go through
/// /proc/thread-self/… and /proc/sys (resolved for the calling thread), never
/// /proc/self/net, which shows the process's namespace.
public enum NamespaceVisitor {
    /// Runs `visit` inside each namespace, on a new thread, and waits for it.
    /// A namespace that cannot be entered (gone, EPERM) gets the error instead.
    public static func visit<T>(
        _ namespaces: [NamespaceDirectory.Entry], under root: SystemRoot,
        _ visit: @escaping (NamespaceDirectory.Entry) throws -> T
    ) -> [Result<T, NamespaceVisitError>] {
        let outcome = VisitOutcome<T>()
        let body = ThreadBody { outcome.results = visitAll(namespaces, under: root, visit) }
        let context = Unmanaged.passRetained(body).toOpaque()
        var thread = pthread_t()
        let started = pthread_create(
            &thread, nil,
            { context in
                Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue().run()
                return nil
            }, context)
        guard started == 0 else {
            Unmanaged<ThreadBody>.fromOpaque(context).release()
            let reason = "cannot start a thread: \(errnoText(Errno(rawValue: started)))"
            return namespaces.map { .failure(NamespaceVisitError(identifier: $0.identifier, reason: reason)) }
        }
        pthread_join(thread, nil)
        return outcome.results
    }

    private static func visitAll<T>(
        _ namespaces: [NamespaceDirectory.Entry], under root: SystemRoot,
        _ visit: (NamespaceDirectory.Entry) throws -> T
    ) -> [Result<T, NamespaceVisitError>] {
        guard let homePath = try? root.path(KernelPaths.threadNetworkNamespace) else {
            return namespaces.map { .failure(NamespaceVisitError(identifier: $0.identifier, reason: "no /proc/thread-self under \(root)")) }
        }
        let home = open(homePath.string, O_RDONLY | O_CLOEXEC)
        guard home >= 0 else {
            let reason = "cannot open \(homePath): \(errnoText(Errno(rawValue: errno)))"
            return namespaces.map { .failure(NamespaceVisitError(identifier: $0.identifier, reason: reason)) }
        }
        defer { close(home) }
        var results: [Result<T, NamespaceVisitError>] = []
        for (index, namespace) in namespaces.enumerated() {
            func failed(_ reason: String) -> Result<T, NamespaceVisitError> {
                .failure(NamespaceVisitError(identifier: namespace.identifier, reason: reason))
            }
            let fd: Int32
            switch NamespaceDirectory.open(namespace.identifier, under: root) {
            case .failure(let failure):
                // Listed by the scan, gone now: say so rather than "no such namespace".
                let gone = NamespaceDirectory.inode(of: namespace.identifier, under: root) == nil
                results.append(gone ? failed("vanished during the scan") : .failure(failure))
                continue
            case .success(let opened):
                fd = opened.descriptor
                // The open file keeps the namespace alive; a different inode
                // means the name now points to another namespace.
                if opened.inode != namespace.inode {
                    close(fd)
                    results.append(failed("vanished during the scan (it now names another namespace)"))
                    continue
                }
            }
            if let code = NetworkNamespaceSwitch.enter(fd) {
                close(fd)
                results.append(failed("cannot enter it: setns failed: \(errnoText(code))"))
                continue
            }
            close(fd)
            do { results.append(.success(try visit(namespace))) } catch { results.append(failed("\(error)")) }
            if let code = NetworkNamespaceSwitch.enter(home) {
                // The thread is stranded in another namespace: read nothing more with it.
                let reason = "not read: could not return to the original namespace (setns: \(errnoText(code)))"
                results += namespaces[(index + 1)...].map { .failure(NamespaceVisitError(identifier: $0.identifier, reason: reason)) }
                break
            }
        }
        return results
    }
}

/// The visiting thread's results: written before it signals, read after the wait.
/// The closure a pthread runs (pthread_create takes one C pointer).
private final class ThreadBody {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

private final class VisitOutcome<T>: @unchecked Sendable {
    var results: [Result<T, NamespaceVisitError>] = []
}

/// A namespace that could not be read: gone, or not enterable.
public struct NamespaceVisitError: Error, Equatable, Sendable, CustomStringConvertible, TunerErrorConvertible {
    public var identifier: NamespaceIdentifier
    public var reason: String
    public var description: String { "namespace \(identifier.shown): \(reason)" }
    public var tunerError: TunerError { .namespaceUnreadable(namespace: identifier.shown, reason: reason) }

    package init(identifier: NamespaceIdentifier, reason: String) {
        self.identifier = identifier
        self.reason = reason
    }
}
