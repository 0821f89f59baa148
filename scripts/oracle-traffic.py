#!/usr/bin/env python3
"""Sends a few packets through a client / router / server trio of network
namespaces and prints each one's nf_conntrack_count as JSON.

    oracle-traffic.py CLIENT ROUTER SERVER [--wait SECONDS]

The namespaces are names under /run/netns, wired as the kernel-oracle test
builds them: CLIENT 10.0.1.2 fd00:1::2 -- ROUTER eth1 10.0.1.1 fd00:1::1,
ROUTER eth0 10.0.2.1 fd00:2::1 -- SERVER 10.0.2.2 fd00:2::2, with the router
forwarding. Every namespace sends IPv4 and IPv6 TCP (SYN to ports 22 and 80),
UDP (to port 53) and ICMP echo requests: the client to the router (local
input) and to the server (forwarded), the server back to the client
(forwarded), the router to both and to its own loopback (local output).
Port 80 has a listener in every namespace, so those handshakes complete;
elsewhere a SYN, a UDP datagram or an echo request is enough for conntrack
to create an entry, and the RST, port-unreachable or echo reply that
answers it ends the wait early. All probes are sent at once and answered or
abandoned after --wait seconds, so one run is bounded.

One process enters each namespace in turn with setns(2) (a socket stays in
the namespace it was created in), so the whole run costs one interpreter
start.
"""
import ctypes
import json
import os
import select
import socket
import struct
import sys
import time

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)

TARGETS = {
    "client": ["10.0.1.1", "fd00:1::1", "10.0.2.2", "fd00:2::2"],
    "server": ["10.0.1.2", "fd00:1::2", "10.0.2.1", "fd00:2::1"],
    "router": ["10.0.1.2", "fd00:1::2", "10.0.2.2", "fd00:2::2", "127.0.0.1", "::1"],
}
TCP_PORTS = (22, 80)
UDP_PORT = 53


def enter(name):
    fd = os.open(os.path.join("/run/netns", name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, "setns %s: %s" % (name, os.strerror(error)))
    finally:
        os.close(fd)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(family, ident):
    if family == socket.AF_INET6:
        # The kernel fills in the ICMPv6 checksum (it covers the pseudo-header).
        return struct.pack("!BBHHH", 128, 0, 0, ident, 1) + b"cttune"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"cttune"
    return struct.pack("!BBHHH", 8, 0, checksum(header), ident, 1) + b"cttune"


def listen(pending):
    """A TCP listener on port 80 for each family, so those SYNs complete a
    handshake (an entry answered by a RST is removed at once, one answered
    by SYN-ACK stays while the test reads the counts)."""
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        server = socket.socket(family, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        server.bind((address, 80))
        server.listen(64)
        pending.append((server, 0))


def fire(address, pending):
    """Sends TCP, UDP and ICMP probes to address; adds their sockets to pending."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    for port in TCP_PORTS:
        tcp = socket.socket(family, socket.SOCK_STREAM)
        tcp.setblocking(False)
        tcp.connect_ex((address, port))
        pending.append((tcp, select.POLLOUT))
    udp = socket.socket(family, socket.SOCK_DGRAM)
    udp.setblocking(False)
    udp.connect((address, UDP_PORT))
    try:
        udp.send(b"cttune")
    except OSError:
        pass
    pending.append((udp, select.POLLIN))
    protocol = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
    icmp = socket.socket(family, socket.SOCK_RAW, protocol)
    icmp.setblocking(False)
    try:
        icmp.sendto(echo_request(family, os.getpid() & 0xFFFF), (address, 0))
    except OSError:
        pass
    pending.append((icmp, select.POLLIN))


def main():
    arguments = sys.argv[1:]
    wait = 0.6
    if "--wait" in arguments:
        index = arguments.index("--wait")
        wait = float(arguments[index + 1])
        del arguments[index : index + 2]
    if len(arguments) != 3:
        sys.exit("usage: oracle-traffic.py CLIENT ROUTER SERVER [--wait SECONDS]")
    roles = dict(zip(("client", "router", "server"), arguments))
    original = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    pending, listeners = [], []
    for role, namespace in roles.items():
        enter(namespace)
        listen(listeners)
    for role, namespace in roles.items():
        enter(namespace)
        for address in TARGETS[role]:
            fire(address, pending)
    poller = select.poll()
    waiting = {}
    for sock, events in pending:
        poller.register(sock, events | select.POLLERR)
        waiting[sock.fileno()] = sock
    probes = len(waiting)
    deadline = time.monotonic() + wait
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for fd, _ in poller.poll(left * 1000):
            if fd in waiting:
                poller.unregister(fd)
                del waiting[fd]
    counts = {}
    for role, namespace in roles.items():
        enter(namespace)
        with open("/proc/sys/net/netfilter/nf_conntrack_count") as count:
            counts[role] = int(count.read())
    libc.setns(original, CLONE_NEWNET)
    for sock, _ in pending + listeners:
        sock.close()
    print(json.dumps({"counts": counts, "probes": probes, "answered": probes - len(waiting)}))


if __name__ == "__main__":
    main()
