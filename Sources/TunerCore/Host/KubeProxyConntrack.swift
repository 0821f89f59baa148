/// kube-proxy's conntrack sizing: the one definition that the plan's
/// kube-proxy anchor and the detection of kube-proxy as a writer both use.
///
/// Source: kubernetes `pkg/proxy/conntrack/sysctls.go` at 008b3652959c (and
/// `cmd/kube-proxy/app/conntrack.go` at 03c60748bb30 before the move): with
/// `maxPerCore > 0`, max = max(min, maxPerCore × CPUs), never above
/// `maxLimit`; the hashsize parameter is raised to max / 4 when smaller.
public enum KubeProxyConntrack {
    /// `conntrack.maxPerCore` when the configuration leaves it out.
    public static let defaultMaxPerCore = 32_768
    /// `conntrack.min` when the configuration leaves it out.
    public static let defaultMin = 131_072
    /// `maxLimit`: kube-proxy never sizes the table above this, whatever the CPU count.
    public static let maxLimit = 1_048_576
    /// `conntrack.tcpEstablishedTimeout` default (24h).
    public static let establishedTimeoutSeconds = 86_400
    /// `conntrack.tcpCloseWaitTimeout` default (1h).
    public static let closeWaitTimeoutSeconds = 3_600

    /// The nf_conntrack_max kube-proxy writes; `nil` when `maxPerCore` ≤ 0
    /// (kube-proxy then leaves the max alone).
    public static func max(maxPerCore: Int = defaultMaxPerCore, min floor: Int = defaultMin, cpus: Int) -> Int? {
        guard maxPerCore > 0 else { return nil }
        let (scaled, overflow) = maxPerCore.multipliedReportingOverflow(by: Swift.max(cpus, 0))
        return Swift.min(Swift.max(overflow ? Int.max : scaled, floor), maxLimit)
    }

    /// The hash size kube-proxy raises the table to for `max`.
    public static func hashsize(forMax max: Int) -> Int { max / 4 }
}
