import FoundationEssentials
import Glibc
import TunerCore
import TunerModel
import TunerRender
import TunerSystem
import TunerWorkflows

/// Ctrl-C (SIGINT) and SIGTERM end `--watch` after the current step instead of
/// killing it mid-line, so the last row and the exit code still come out.
enum StopRequest {
    nonisolated(unsafe) private static var received: sig_atomic_t = 0

    /// Installs the handlers; the first signal asks to stop, a second one kills.
    ///
    /// Also unblocks both signals: a parent that spawns from a thread with
    /// them blocked (dispatch worker threads block them) hands that mask to
    /// the child, which would then never see Ctrl-C.
    static func install() {
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        sigaddset(&unblocked, SIGINT)
        sigaddset(&unblocked, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &unblocked, nil)
        for signalNumber in [SIGINT, SIGTERM] {
            signal(signalNumber) { number in
                StopRequest.received = 1
                signal(number, SIG_DFL)
            }
        }
    }

    static var isRequested: Bool { received != 0 }
}
