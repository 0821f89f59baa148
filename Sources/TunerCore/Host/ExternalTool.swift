import FoundationEssentials
import Glibc
import SystemPackage

/// A program cttune runs and reads (nft, iptables-save, ip), found in PATH.
public struct ExternalTool: Sendable, Equatable {
    /// What the program printed and how it ended.
    public struct Output: Sendable, Equatable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var succeeded: Bool { status == 0 }
    }

    /// The name it is looked up by, e.g. `iptables-save`.
    public let name: String
    /// The executable found in PATH.
    public let path: String

    /// A tool at a known path (a built binary, a script).
    public init(name: String, path: String) {
        self.name = name
        self.path = path
    }

    /// Finds `name` in `$PATH` (and the sbin directories, which a non-root
    /// PATH often lacks); `nil` when it is not installed.
    public static func locate(_ name: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> ExternalTool? {
        if name.contains("/") { return access(name, X_OK) == 0 ? ExternalTool(name: name, path: name) : nil }
        let directories = (environment["PATH"] ?? "").split(separator: ":").map(String.init) + KernelPaths.sbinDirectories
        for directory in directories where !directory.isEmpty {
            let candidate = directory + "/" + name
            if access(candidate, X_OK) == 0 { return ExternalTool(name: name, path: candidate) }
        }
        return nil
    }

    /// The command line as a person would type it, for messages.
    public func commandLine(_ arguments: [String]) -> String {
        ([name] + arguments).joined(separator: " ")
    }

    /// Runs the tool to completion, feeding `input` on stdin.
    ///
    /// Uses posix_spawn, poll and waitpid rather than Foundation's Process:
    /// Process waits through a run-loop wakeup socket bound to 127.0.0.1, so
    /// in a network namespace whose loopback is down it never returns.
    ///
    /// - Throws: `TunerError.toolFailed` only when the program cannot be
    ///   started; a non-zero exit is returned for the caller to judge.
    /// - Parameters:
    ///   - environment: the tool's whole environment; `nil` passes cttune's own.
    ///   - silenceTimeoutSeconds: how long the tool may neither print nor
    ///     exit before it is killed and `toolFailed` is thrown.
    public func run(
        _ arguments: [String], input: String? = nil, environment: [String: String]? = nil,
        silenceTimeoutSeconds: Int32 = ExternalTool.silenceTimeoutSeconds
    ) throws -> Output {
        var stdinPipe: [Int32] = [0, 0], stdoutPipe: [Int32] = [0, 0], stderrPipe: [Int32] = [0, 0]
        guard Self.makePipe(&stdinPipe), Self.makePipe(&stdoutPipe), Self.makePipe(&stderrPipe) else {
            throw TunerError.toolFailed(
                command: commandLine(arguments), reason: "cannot create pipes: \(errnoText(Errno(rawValue: errno)))")
        }
        let spawned = Result {
            try start(arguments, stdin: stdinPipe[0], stdout: stdoutPipe[1], stderr: stderrPipe[1], environment: environment)
        }
        [stdinPipe[0], stdoutPipe[1], stderrPipe[1]].forEach { close($0) }
        let pid: pid_t
        do {
            pid = try spawned.get()
        } catch {
            [stdinPipe[1], stdoutPipe[0], stderrPipe[0]].forEach { close($0) }
            throw error
        }
        let exchanged = Result {
            try Self.exchange(
                input: Array((input ?? "").utf8), stdin: stdinPipe[1],
                stdout: stdoutPipe[0], stderr: stderrPipe[0], silenceTimeoutSeconds: silenceTimeoutSeconds)
        }
        if case .failure = exchanged { kill(pid, SIGKILL) }
        let status = Self.wait(pid)
        let (stdout, stderr): ([UInt8], [UInt8])
        do {
            (stdout, stderr) = try exchanged.get()
        } catch let failure as ReadFailure {
            throw TunerError.toolFailed(command: commandLine(arguments), reason: Self.reason(failure))
        }
        return Output(
            status: status, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// Runs the tool and hands `consume` the read end of its stdout, so a
    /// large output (a conntrack dump of a full table is over 100 MB) is
    /// parsed as it streams. stdin and stderr are /dev/null.
    ///
    /// - Returns: what `consume` returned, or `nil` when the tool exits non-zero.
    /// - Throws: what `consume` throws (the tool is then killed, as it would
    ///   block on a full pipe, and reaped), or `toolFailed` when it cannot start.
    public func streaming<T>(_ arguments: [String], _ consume: (Int32) throws -> T) throws -> T? {
        var stdoutPipe: [Int32] = [0, 0]
        guard Self.makePipe(&stdoutPipe) else {
            throw TunerError.toolFailed(
                command: commandLine(arguments), reason: "cannot create a pipe: \(errnoText(Errno(rawValue: errno)))")
        }
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer {
            close(null)
            close(stdoutPipe[0])
        }
        let pid: pid_t
        do {
            pid = try start(arguments, stdin: null, stdout: stdoutPipe[1], stderr: null)
        } catch {
            close(stdoutPipe[1])
            throw error
        }
        close(stdoutPipe[1])
        let result = Result { try consume(stdoutPipe[0]) }
        if case .failure = result { kill(pid, SIGKILL) }
        let status = Self.wait(pid)
        let value = try result.get()
        return status == 0 ? value : nil
    }

    /// The stdout of `arguments[0]` (a name in PATH or a path), or `nil` when
    /// it is not installed, cannot start or exits non-zero.
    public static func output(_ arguments: [String]) -> String? {
        guard let name = arguments.first, let tool = locate(name),
            let output = try? tool.run(Array(arguments.dropFirst())), output.succeeded
        else { return nil }
        return output.stdout
    }

    /// Starts the tool with the given descriptors as its 0, 1 and 2 and
    /// returns its pid; the caller reaps it (`wait`).
    ///
    /// Uses posix_spawn, poll and waitpid rather than Foundation's Process:
    /// Process waits through a run-loop wakeup socket bound to 127.0.0.1, so
    /// in a network namespace whose loopback is down it never returns.
    /// The tool starts with no signal blocked and every handler at its
    /// default, whatever the calling thread blocks (a thread waiting for
    /// SIGINT blocks it; a tool that inherited that could not be interrupted).
    func start(
        _ arguments: [String], stdin: Int32, stdout: Int32, stderr: Int32, environment: [String: String]? = nil
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var signals = sigset_t()
        sigemptyset(&signals)
        posix_spawnattr_setsigmask(&attributes, &signals)
        sigfillset(&signals)
        posix_spawnattr_setsigdefault(&attributes, &signals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // "NAME=value" lines; nil passes this process's own environment.
        var environmentLines = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { environmentLines?.forEach { free($0) } }
        var pid: pid_t = 0
        Self.spawnLock.lock()
        let spawned =
            environmentLines == nil
            ? posix_spawn(&pid, path, &actions, &attributes, argv, environ)
            : posix_spawn(&pid, path, &actions, &attributes, argv, &environmentLines!)
        Self.spawnLock.unlock()
        guard spawned == 0 else {
            throw TunerError.toolFailed(
                command: commandLine(arguments), reason: "could not start \(path): \(errnoText(Errno(rawValue: spawned)))")
        }
        return pid
    }

    /// Reaps the tool: its exit status, or 128 + the signal that ended it.
    static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return exitStatus(status)
    }

    /// A waitpid(2) status as a shell shows it: the exit code, or 128 + signal.
    static func exitStatus(_ waitStatus: Int32) -> Int32 {
        (waitStatus & 0x7f) == 0 ? (waitStatus >> 8) & 0xff : 128 + (waitStatus & 0x7f)
    }

    /// A pipe whose ends are not inherited by other children (close-on-exec);
    /// posix_spawn's dup2 clears the flag on the tool's 0, 1 and 2. Glibc's
    /// pipe2(O_CLOEXEC) is not visible to Swift, so pipe(2) and fcntl(2) run
    /// under `spawnLock`: a tool another thread started in between would
    /// inherit an end and keep it open, and its reader would wait forever.
    private static func makePipe(_ ends: inout [Int32]) -> Bool {
        spawnLock.lock()
        defer { spawnLock.unlock() }
        guard pipe(&ends) == 0 else { return false }
        ends.forEach { _ = fcntl($0, F_SETFD, FD_CLOEXEC) }
        return true
    }

    /// Held while a pipe is made close-on-exec and while a tool starts.
    private static let spawnLock = PthreadLock()

    /// The most a tool's stdout or stderr may print through `run` (a large
    /// iptables-save is tens of MiB; `streaming` has no such bound).
    static let outputLimit = 256 << 20
    /// How long `run` waits for a tool that neither prints nor exits.
    public static let silenceTimeoutSeconds: Int32 = 120

    static func reason(_ failure: ReadFailure) -> String {
        switch failure {
        case .errno(let errno): return "reading its output failed: \(errnoText(errno))"
        case .tooLarge(let limit): return "it printed more than \(limit >> 20) MiB — stopped"
        case .timedOut(let seconds): return "it printed nothing and did not exit for \(seconds) s — stopped"
        case .notRegular(let kind): return "its output is \(kind)"
        }
    }

    /// Writes `input` and reads both outputs at the same time, so a tool
    /// printing a large ruleset never blocks on a full pipe; closes all three,
    /// whatever happens.
    ///
    /// - Throws: `ReadFailure` when an output passes `outputLimit`, the tool
    ///   stays silent for `silenceTimeoutSeconds`, or poll fails.
    private static func exchange(
        input: [UInt8], stdin: Int32, stdout: Int32, stderr: Int32, silenceTimeoutSeconds: Int32
    ) throws -> ([UInt8], [UInt8]) {
        var written = 0
        var inputFD: Int32 = stdin
        if input.isEmpty {
            close(stdin)
            inputFD = -1
        }
        var open: [Int32: [UInt8]] = [stdout: [], stderr: []]
        var finished: [Int32: [UInt8]] = [:]
        defer {
            open.keys.forEach { close($0) }
            if inputFD >= 0 { close(inputFD) }
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while !open.isEmpty || inputFD >= 0 {
            var fds = open.keys.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if inputFD >= 0 { fds.append(pollfd(fd: inputFD, events: Int16(POLLOUT), revents: 0)) }
            let ready = poll(&fds, nfds_t(fds.count), silenceTimeoutSeconds * 1000)
            if ready < 0 && errno == EINTR { continue }
            if ready < 0 { throw ReadFailure.errno(Errno(rawValue: errno)) }
            if ready == 0 { throw ReadFailure.timedOut(seconds: Int(silenceTimeoutSeconds)) }
            for entry in fds where entry.revents != 0 {
                if entry.fd == inputFD {
                    let count = input[written...].withUnsafeBytes { writeIgnoringSIGPIPE(inputFD, $0) }
                    if count > 0 { written += count }
                    if count < 0 && errno != EINTR && errno != EAGAIN || written == input.count {
                        close(inputFD)
                        inputFD = -1
                    }
                    continue
                }
                let count: Int
                do {
                    count = try buffer.withUnsafeMutableBytes {
                        try FileDescriptor(rawValue: entry.fd).read(into: $0, retryOnInterrupt: true)
                    }
                } catch {
                    count = 0  // a read error ends that output like end of file
                }
                if count > 0 {
                    guard open[entry.fd]!.count + count <= outputLimit else { throw ReadFailure.tooLarge(limit: outputLimit) }
                    open[entry.fd]!.append(contentsOf: buffer[0..<count])
                } else {
                    close(entry.fd)
                    finished[entry.fd] = open.removeValue(forKey: entry.fd)
                }
            }
        }
        return (finished[stdout] ?? [], finished[stderr] ?? [])
    }

    /// write(2) to the tool's stdin, which it may have closed: SIGPIPE is
    /// blocked on this thread for the call and a SIGPIPE the write raised is
    /// taken back, so the write fails with EPIPE and the process-wide
    /// disposition (the caller's business, not a library's) stays as it was.
    private static func writeIgnoringSIGPIPE(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        var pending = sigset_t()
        sigpending(&pending)
        let alreadyPending = sigismember(&pending, SIGPIPE) == 1
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &pipeSignal, &previous)
        let count = write(fd, bytes.baseAddress, bytes.count)
        let writeErrno = errno
        if count < 0 && writeErrno == EPIPE && !alreadyPending {
            var noWait = timespec(tv_sec: 0, tv_nsec: 0)
            while sigtimedwait(&pipeSignal, nil, &noWait) < 0 && errno == EINTR {}
        }
        pthread_sigmask(SIG_SETMASK, &previous, nil)
        errno = writeErrno
        return count
    }
}
