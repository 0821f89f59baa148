#!/usr/bin/env python3
"""Known flow-class traffic for cttune's class census test, bounded in count and time.

  class-traffic.py listen PORT SECONDS            accept TCP connections on PORT and hold them
  class-traffic.py connect HOST PORT N SECONDS    open N TCP connections to HOST:PORT and hold them
  class-traffic.py udp HOST PORT N                send one datagram to HOST:PORT from N sockets
  class-traffic.py noise HOST FIRST N             one datagram to each of N ports from FIRST

Prints "ready" on stdout once its connections are up (listen: once bound).
"""
import socket
import sys
import time


def listen(port, seconds):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(1024)
    server.settimeout(0.2)
    print("ready", flush=True)
    held = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            connection, _ = server.accept()
            held.append(connection)
        except socket.timeout:
            pass


def connect(host, port, count, seconds):
    held = []
    for _ in range(count):
        connection = socket.create_connection((host, port), timeout=5)
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        held.append(connection)
    print("ready", flush=True)
    time.sleep(seconds)


def udp(host, port, count):
    for _ in range(count):
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.sendto(b"q", (host, port))
        sender.close()
    print("ready", flush=True)


def noise(host, first, count):
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for port in range(first, first + count):
        sender.sendto(b"n", (host, port))
    print("ready", flush=True)


if __name__ == "__main__":
    mode, arguments = sys.argv[1], sys.argv[2:]
    if mode == "listen":
        listen(int(arguments[0]), float(arguments[1]))
    elif mode == "connect":
        connect(arguments[0], int(arguments[1]), int(arguments[2]), float(arguments[3]))
    elif mode == "udp":
        udp(arguments[0], int(arguments[1]), int(arguments[2]))
    elif mode == "noise":
        noise(arguments[0], int(arguments[1]), int(arguments[2]))
    else:
        sys.exit("unknown mode " + mode)
