#!/usr/bin/env python3
"""Sends one flow class's traffic through the kernel-oracle lab and prints
what each side received, as JSON: the oracle of cttune's cures compares
these records with and without cttune's table.

    cure-traffic.py CLIENT ROUTER SERVER PROTOCOL PORT DIRECTION BASE [--flows N] [--wait SECONDS]

The namespaces are wired as the rules oracle builds them: CLIENT 10.0.1.2 --
ROUTER eth1 10.0.1.1, ROUTER eth0 10.0.2.1 -- SERVER 10.0.2.2, the router
forwarding; the router is "the host" whose firewall is judged. DIRECTION
says who sends the requests: inbound (the client to the router), outbound
(the router to the client), forwarded (the client to the server, through
the router) or local (the router to itself). PROTOCOL is tcp or udp.

Every namespace listens on PORT, so a rewritten destination shows as
another receiver. The N requests leave from source ports BASE, BASE+1, …
(a run uses its own BASE so no socket state of an earlier run is met); a
port seen within BASE..BASE+99 is printed as +offset, so runs compare. Every TCP
SYN leaves before any answer is read (a connection limit sees them at
once); each receiver answers with its own name. A run waits
at most --wait seconds in total.
"""
import ctypes
import json
import os
import select
import socket
import sys
import time

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)

SENDERS = {
    "inbound": ("client", "10.0.1.1"),
    "outbound": ("router", "10.0.1.2"),
    "forwarded": ("client", "10.0.2.2"),
    "local": ("router", "10.0.1.1"),
}


def enter(name):
    fd = os.open(os.path.join("/run/netns", name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, "setns %s: %s" % (name, os.strerror(error)))
    finally:
        os.close(fd)


def shown(address, base):
    host, port = address[0], address[1]
    return "%s:+%d" % (host, port - base) if base <= port < base + 100 else "%s:%d" % (host, port)


def main():
    arguments = sys.argv[1:]
    flows, wait = 4, 1.5
    for flag in ("--flows", "--wait"):
        if flag in arguments:
            index = arguments.index(flag)
            value = arguments[index + 1]
            del arguments[index : index + 2]
            if flag == "--flows":
                flows = int(value)
            else:
                wait = float(value)
    if len(arguments) != 7 or arguments[3] not in ("tcp", "udp") or arguments[5] not in SENDERS:
        sys.exit(__doc__)
    roles = dict(zip(("client", "router", "server"), arguments[:3]))
    protocol, port, direction, base = arguments[3], int(arguments[4]), arguments[5], int(arguments[6])
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    original = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    listeners = {}
    for role, namespace in roles.items():
        enter(namespace)
        sock = socket.socket(socket.AF_INET, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        if kind == socket.SOCK_STREAM:
            sock.listen(64)
        sock.setblocking(False)
        listeners[sock.fileno()] = (role, sock)

    sender, target = SENDERS[direction]
    enter(roles[sender])
    senders = {}
    for k in range(flows):
        sock = socket.socket(socket.AF_INET, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", base + k))
        sock.setblocking(False)
        if kind == socket.SOCK_STREAM:
            sock.connect_ex((target, port))
        else:
            try:
                sock.sendto(b"q%d" % k, (target, port))
            except OSError:
                pass
        senders[sock.fileno()] = (k, sock)
    libc.setns(original, CLONE_NEWNET)

    records = {k: {"flow": k, "received_by": None, "seen_from": None, "reply": None, "reply_from": None} for k in range(flows)}
    accepted = {}
    sent = set()
    deadline = time.monotonic() + wait
    poller = select.poll()
    for fd in listeners:
        poller.register(fd, select.POLLIN)
    for fd in senders:
        poller.register(fd, select.POLLIN | (select.POLLOUT if kind == socket.SOCK_STREAM else 0))
    while time.monotonic() < deadline:
        if all(record["reply"] is not None for record in records.values()):
            break
        for fd, events in poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
            if fd in listeners:
                role, sock = listeners[fd]
                if kind == socket.SOCK_DGRAM:
                    try:
                        data, peer = sock.recvfrom(64)
                    except OSError:
                        continue
                    k = int(data[1:]) if data[:1] == b"q" and data[1:].isdigit() else None
                    if k in records:
                        records[k]["received_by"], records[k]["seen_from"] = role, shown(peer, base)
                        sock.sendto(b"r%d:%s" % (k, role.encode()), peer)
                else:
                    try:
                        connection, peer = sock.accept()
                    except OSError:
                        continue
                    connection.setblocking(False)
                    accepted[connection.fileno()] = (role, connection, peer)
                    poller.register(connection, select.POLLIN)
            elif fd in accepted:
                role, connection, peer = accepted.pop(fd)
                poller.unregister(fd)
                try:
                    data = connection.recv(64)
                    k = int(data[1:]) if data[:1] == b"q" and data[1:].isdigit() else None
                    if k in records:
                        records[k]["received_by"], records[k]["seen_from"] = role, shown(peer, base)
                        connection.send(b"r%d:%s" % (k, role.encode()))
                except OSError:
                    pass
                connection.close()
            elif fd in senders:
                k, sock = senders[fd]
                if events & select.POLLOUT and fd not in sent:
                    # Connected, or failed. Every SYN left before the loop,
                    # so a connection limit saw them all at once.
                    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    sent.add(fd)
                    if error:
                        records[k]["reply"] = "error: %s" % os.strerror(error)
                        poller.unregister(fd)
                        continue
                    poller.modify(fd, select.POLLIN)
                    try:
                        sock.send(b"q%d" % k)
                    except OSError as failure:
                        records[k]["reply"] = "error: %s" % failure.strerror
                        poller.unregister(fd)
                    continue
                try:
                    data, peer = sock.recvfrom(64)
                    if kind == socket.SOCK_STREAM:
                        peer = sock.getpeername()
                except OSError as failure:
                    records[k]["reply"] = "error: %s" % failure.strerror
                    poller.unregister(fd)
                    continue
                records[k]["reply"], records[k]["reply_from"] = data.decode(errors="replace"), shown(peer, base)
                poller.unregister(fd)
    for _, sock in list(listeners.values()) + list(senders.values()):
        sock.close()
    for _, connection, _ in accepted.values():
        connection.close()
    # How a request without an answer fails (a timeout, a reset, an ICMP
    # error read as EAGAIN or EHOSTUNREACH) depends on timing: it is "none".
    for record in records.values():
        if record["reply"] is None or record["reply"].startswith("error:"):
            record["reply"] = "none"
    print(json.dumps([records[k] for k in range(flows)], sort_keys=True))


if __name__ == "__main__":
    main()
