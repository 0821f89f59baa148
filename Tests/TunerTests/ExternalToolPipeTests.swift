import Foundation
import Testing

@testable import Tuner

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

    @Test("the library sets no signal handler: grep finds no signal( in Sources/Tuner")
    func noSignalCallsInLibrary() throws {
        // signal(2) and sigaction(2), not a method such as DispatchSemaphore.signal().
        let hits = try Shell.run([
            "grep", "-rnE", "(^|[^.[:alnum:]_])(signal|sigaction)\\(", TestPaths.package.appendingPathComponent("Sources/Tuner").path,
        ])
        #expect(hits.stdout.isEmpty, "\(hits.stdout)")
    }
}
