import Foundation
import TestSupport
import Testing

@testable import TunerCore
@testable import TunerModel
@testable import TunerRender
@testable import TunerSystem
@testable import TunerWorkflows

@Suite("Running a tool leaves the process's signal dispositions alone")
struct ExternalToolPipeTests {
    static func sigpipeHandler() -> UInt {
        var action = sigaction()
        sigaction(SIGPIPE, nil, &action)
        return unsafeBitCast(action.__sigaction_handler.sa_handler, to: UInt.self)
    }

    @Test("a tool that exits without reading its input fails the write with EPIPE; SIGPIPE's disposition is unchanged")
    func closedStdinIsNotProcessWide() throws {
        // Shell.run sets the test process's own disposition: settle it first,
        // so tests running beside this one cannot change it in between.
        try Shell.run(["true"])
        let before = Self.sigpipeHandler()
        var blocked = sigset_t()
        pthread_sigmask(SIG_SETMASK, nil, &blocked)
        let tool = try #require(ExternalTool.locate("true"))
        for _ in 0..<5 {
            // 4 MiB: more than a pipe holds, so the write meets the closed end.
            let output = try tool.run([], input: String(repeating: "x", count: 4 << 20))
            #expect(output.succeeded)
        }
        #expect(Self.sigpipeHandler() == before)
        var after = sigset_t()
        pthread_sigmask(SIG_SETMASK, nil, &after)
        #expect(sigismember(&after, SIGPIPE) == sigismember(&blocked, SIGPIPE))
        var pending = sigset_t()
        sigpending(&pending)
        #expect(sigismember(&pending, SIGPIPE) == 0, "the SIGPIPE the write raised was taken back")
    }

    @Test("a tool starts with no signal blocked, even when the thread starting it blocks them all (SIGTERM stops it)")
    func toolStartsWithEmptySignalMask() throws {
        let tool = try #require(ExternalTool.locate("sh"))
        let outcome = Locked<Result<ExternalTool.Output, Error>?>(nil)
        // A thread of its own: blocking every signal on a test runner thread
        // would leak into the tests that run on it next.
        let thread = Thread {
            var all = sigset_t()
            sigfillset(&all)
            pthread_sigmask(SIG_SETMASK, &all, nil)
            outcome.set(Result { try tool.run(["-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status"]) })
        }
        thread.start()
        let deadline = Date().addingTimeInterval(60)
        while outcome.get() == nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        let output = try #require(try outcome.get()?.get())
        // A daemon a test script started from such a thread once ignored
        // SIGTERM and outlived the run, holding its caller's pipes.
        #expect(output.stdout.contains("SigBlk:\t0000000000000000"), "\(output.stdout)")
        let ignored = output.stdout.split(separator: "\n").first { $0.hasPrefix("SigIgn:") }
            .flatMap { UInt64($0.dropFirst("SigIgn:".count).trimmingCharacters(in: .whitespaces), radix: 16) }
        // glibc's own real-time signals (32, 33) stay ignored; the test
        // process ignores SIGPIPE, and the tool must not inherit that.
        for signal in [SIGINT, SIGTERM, SIGPIPE] {
            #expect(ignored.map { $0 & (1 << UInt64(signal - 1)) == 0 } == true, "signal \(signal): \(output.stdout)")
        }
    }

    @Test("the library sets no signal handler: grep finds no signal( in the library's targets")
    func noSignalCallsInLibrary() throws {
        let targets = ["TunerCore", "TunerSystem", "TunerModel", "TunerWorkflows", "TunerRender"].map {
            TestPaths.package.appendingPathComponent("Sources/\($0)").path
        }
        // signal(2) and sigaction(2), not a method such as DispatchSemaphore.signal().
        let hits = try Shell.run(["grep", "-rnE", "(^|[^.[:alnum:]_])(signal|sigaction)\\("] + targets)
        // grep exits 1 when it read every directory and found nothing; 2 when one is missing.
        #expect(hits.status == 1, "\(hits.stdout)\(hits.stderr)")
    }
}

/// A value one thread sets and another reads.
private final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func get() -> Value { lock.withLock { value } }
    func set(_ newValue: Value) { lock.withLock { value = newValue } }
}
