import Foundation
import SystemPackage

/// Runs installed tools (nft, iptables-save, conntrack, lsinitramfs) for their output.
///
/// Uses posix_spawn and waitpid directly: Foundation's `Process` was seen
/// to hang in `waitUntilExit` after its child had exited.
public enum ExternalTool {
    /// The tool's stdout, or `nil` when it is not installed, cannot start or
    /// exits non-zero. stdin and stderr are /dev/null.
    public static func output(_ arguments: [String]) -> String? {
        guard let output = try? reading(arguments, { FileIO.readAll($0) }), case .success(let text) = output else { return nil }
        return text
    }

    /// Runs the tool and hands `consume` the read end of its stdout, so a
    /// large output (a conntrack dump) is parsed as it streams.
    ///
    /// - Returns: what `consume` returned, or `nil` when the tool is not
    ///   installed, cannot start or exits non-zero.
    /// - Throws: what `consume` throws; the tool is then killed (it would
    ///   block on a full pipe) and reaped.
    public static func reading<T>(_ arguments: [String], _ consume: (Int32) throws -> T) throws -> T? {
        guard let name = arguments.first, let executable = locate(name) else { return nil }
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { return nil }
        // Only the dup2'ed copy (fd 1) may reach the child.
        ends.forEach { _ = fcntl($0, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, ends[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        close(ends[1])
        defer { close(ends[0]) }
        guard spawned == 0 else { return nil }
        let result = Result { try consume(ends[0]) }
        if case .failure = result { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let value = try result.get()
        let exitedCleanly = status & 0x7f == 0 && (status >> 8) & 0xff == 0
        return exitedCleanly ? value : nil
    }

    /// The first executable named `name` in $PATH, then /usr/sbin and /sbin
    /// (root's tools when PATH lacks them).
    static func locate(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin"]
        return directories.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
