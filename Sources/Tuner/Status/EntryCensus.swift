import Foundation

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// The live entries of one network namespace, counted by protocol and TCP
/// state, with the ESTABLISHED entries that have been idle for hours (orphans:
/// flows whose close was never seen, kept for the whole established timeout).
public struct EntryCensus: Sendable, Equatable {
    /// Where the entries were read: `conntrack -L -o xml` or /proc/net/nf_conntrack.
    public var source: String
    public var total = 0
    /// Layer-4 protocol name (`tcp`, `udp`, `icmp`, …) → entries.
    public var byProtocol: [String: Int] = [:]
    /// TCP state as the kernel names it (`ESTABLISHED`, `TIME_WAIT`, …) → entries.
    public var tcpStates: [String: Int] = [:]
    /// ESTABLISHED entries idle at least `EntryCensus.orphanIdleSeconds`.
    public var orphans = 0
    /// The longest idle time among ESTABLISHED entries, seconds.
    public var oldestIdleSeconds: Int?

    public init(source: String) {
        self.source = source
    }

    /// An ESTABLISHED entry idle this long is counted as an orphan. Every
    /// packet re-arms the established timeout, so idle = timeout − remaining;
    /// an hour without a packet is far past any keep-alive that would keep a
    /// live session (Linux tcp_keepalive_time is 7200 s, but applications that
    /// care send keep-alives in minutes).
    public static let orphanIdleSeconds = 3600

    /// Counts one entry.
    /// - Parameters:
    ///   - remainingSeconds: the entry's remaining timeout.
    ///   - establishedTimeout: nf_conntrack_tcp_timeout_established in force.
    mutating func add(protocolName: String, tcpState: String?, remainingSeconds: Int?, establishedTimeout: Int?) {
        total += 1
        byProtocol[protocolName, default: 0] += 1
        guard protocolName == "tcp", let tcpState else { return }
        tcpStates[tcpState, default: 0] += 1
        if tcpState == "ESTABLISHED", let remainingSeconds, let establishedTimeout {
            let idle = Swift.max(0, establishedTimeout - remainingSeconds)
            oldestIdleSeconds = Swift.max(oldestIdleSeconds ?? 0, idle)
            if idle >= Self.orphanIdleSeconds { orphans += 1 }
        }
    }
}

extension EntryCensus {
    /// Counts this network namespace's entries.
    ///
    /// Reads the netlink dump through `conntrack -L -o xml` (conntrack-tools)
    /// and parses it with Foundation's XMLParser: a structured format from the
    /// kernel's own netlink interface, present even on kernels built without
    /// CONFIG_NF_CONNTRACK_PROCFS. libnetfilter_conntrack directly would avoid
    /// the process, but it adds a C target and a -dev package to every build
    /// for one read-only dump, and conntrack-tools is what admins already run.
    /// Without the tool (or with `--root`), falls back to /proc/net/nf_conntrack.
    ///
    /// - Returns: `nil` when neither source is available.
    public static func read(from root: SystemRoot, establishedTimeout: Int?) throws -> EntryCensus? {
        if root.isLive, let census = try ConntrackTool.census(establishedTimeout: establishedTimeout) {
            return census
        }
        guard let table = try root.contents(of: KernelPaths.conntrackTable) else { return nil }
        return parseProcTable(table, establishedTimeout: establishedTimeout)
    }

    /// Parses `conntrack -L -o xml`: each `<flow>` has a `<meta
    /// direction="original">` with `<layer4 protoname=…>` and a `<meta
    /// direction="independent">` with `<state>` (TCP only) and `<timeout>`.
    static func parseXML(_ data: Data, establishedTimeout: Int?) throws -> EntryCensus {
        try parseXML(InputStream(data: data), establishedTimeout: establishedTimeout)
    }

    /// Parses the dump as it streams in. XMLParser(stream:) feeds libxml2 in
    /// chunks: XMLParser(data:) hands it the whole dump at once, and libxml2
    /// refuses a chunk over 10 MB (about 18000 entries), while a full default
    /// table (262144 entries) prints about 150 MB.
    static func parseXML(_ stream: InputStream, establishedTimeout: Int?) throws -> EntryCensus {
        let delegate = FlowCollector(establishedTimeout: establishedTimeout)
        let parser = XMLParser(stream: stream)
        parser.delegate = delegate
        let parsed = parser.parse()
        // An empty table prints no XML document at all.
        if !delegate.sawStart { return delegate.census }
        // libxml2 accepts a document cut short; a dump without its closing
        // tag lost entries, so it is not counted as complete.
        guard parsed, delegate.sawEnd else {
            throw TunerError.malformed(
                path: "conntrack -L -o xml output",
                detail: parsed ? "the dump ends before </conntrack>" : parser.parserError.map { "\($0.localizedDescription)" } ?? "not XML")
        }
        return delegate.census
    }

    /// Parses /proc/net/nf_conntrack lines: `ipv4 2 tcp 6 117 TIME_WAIT src=…`
    /// (layer-3 name and number, layer-4 name and number, remaining timeout,
    /// then the state for TCP only).
    static func parseProcTable(_ text: String, establishedTimeout: Int?) -> EntryCensus {
        var census = EntryCensus(source: KernelPaths.conntrackTable.string)
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 6, omittingEmptySubsequences: true)
            guard fields.count >= 5 else { continue }
            let protocolName = String(fields[2])
            let state = protocolName == "tcp" && fields.count > 5 ? String(fields[5]) : nil
            census.add(
                protocolName: protocolName, tcpState: state, remainingSeconds: Int(fields[4]),
                establishedTimeout: establishedTimeout)
        }
        return census
    }
}

/// XMLParser delegate that turns `<flow>` elements into census counts.
private final class FlowCollector: NSObject, XMLParserDelegate {
    var census = EntryCensus(source: ConntrackTool.listCommand.joined(separator: " "))
    let establishedTimeout: Int?
    private(set) var sawStart = false
    private(set) var sawEnd = false
    private var direction: String?
    private var protocolName: String?
    private var state: String?
    private var remaining: Int?
    private var text = ""

    init(establishedTimeout: Int?) {
        self.establishedTimeout = establishedTimeout
    }

    func parser(
        _ parser: XMLParser, didStartElement name: String, namespaceURI: String?,
        qualifiedName: String?, attributes: [String: String] = [:]
    ) {
        text = ""
        sawStart = true
        switch name {
        case "flow":
            protocolName = nil
            state = nil
            remaining = nil
        case "meta": direction = attributes["direction"]
        case "layer4" where direction == "original": protocolName = attributes["protoname"]
        default: break
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        text += string
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        switch name {
        case "state" where direction == "independent": state = text
        case "timeout" where direction == "independent": remaining = Int(text)
        case "conntrack": sawEnd = true
        case "flow":
            census.add(
                protocolName: protocolName ?? "unknown", tcpState: state, remainingSeconds: remaining,
                establishedTimeout: establishedTimeout)
        default: break
        }
    }
}

/// conntrack-tools' `conntrack`, run only to list this namespace's entries.
enum ConntrackTool {
    static let listCommand = ["conntrack", "-L", "-o", "xml"]

    /// Counts the entries as `conntrack -L -o xml` prints them, without
    /// holding the whole dump in memory.
    ///
    /// - Returns: `nil` when the tool is missing or fails (then the caller
    ///   falls back to /proc/net/nf_conntrack).
    static func census(establishedTimeout: Int?) throws -> EntryCensus? {
        guard let tool = ExternalTool.locate(listCommand[0]) else { return nil }
        return try tool.streaming(Array(listCommand.dropFirst())) { fd in
            guard let stream = InputStream(fileAtPath: "/dev/fd/\(fd)") else {
                throw TunerError.malformed(path: "conntrack -L -o xml output", detail: "cannot read the tool's output")
            }
            return try EntryCensus.parseXML(stream, establishedTimeout: establishedTimeout)
        }
    }
}
