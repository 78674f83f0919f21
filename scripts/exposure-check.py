#!/usr/bin/env python3
"""Tries a running demo server as an attacker would, over loopback only.

    target/release/chanmux-server --addr 127.0.0.1:0 [flags] &
    scripts/exposure-check.py 127.0.0.1:PORT --pid PID CHECK...

Checks (each bounded in time and count, stopping by itself):
  origin      evil origin gets 403; same host and no origin get 101
  pings       a client that never answers pings is closed (run the server
              with --ping-interval 1 --pong-timeout 1: within 4 s)
  pongs       a client that answers every ping stays
  slowhead    500 sockets trickling an HTTP head and 200 silent ones are closed
              at the handshake timeout, while a new client is served at once
  limits      opens WebSockets until refused; prints the status; frees one and
              connects again (run with small --max-connections or -per-ip)
  rate        a burst of frames over --max-frame-rate gets rate_limited error
              frames and the socket stays open
  trickle     200 connections each trickle a 7.8 MiB message; each is cut off;
              the server's RSS (--pid) before, at the peak and after
  slowtrickle 200 connections trickle a frame at 500 bytes/s: cut off with
              1008 at the message timeout
  pin         --count clients send 1 MB frames to two streams and never read:
              the server's RSS (--pid) at the peak and after
  utf8        invalid UTF-8 closes with 1007
  burst       500 small frames in one write are all answered (prints the time)

Standard library only: the WebSocket frames are written by hand.
"""

import argparse
import base64
import json
import os
import socket
import sys
import time

KEY = base64.b64encode(b"exposure-check!!").decode()


def rss_mib(pid):
    if pid is None:
        return None
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def host_port(addr):
    """`host:port` or `[v6]:port` as socket.create_connection wants it."""
    host, port = addr.rsplit(":", 1)
    return host.strip("[]"), int(port)


def handshake(addr, origin=None, path="/ws/"):
    """Returns (socket, status line, leftover bytes after the head, whole head)."""
    s = socket.create_connection(host_port(addr), timeout=10)
    head = (f"GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
            "Sec-WebSocket-Version: 13\r\n")
    if origin:
        head += f"Origin: {origin}\r\n"
    s.sendall((head + "\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    status, _, rest = data.partition(b"\r\n\r\n")
    return s, status.split(b"\r\n")[0].decode(), rest, status.decode(errors="replace")


def frame(payload, opcode=0x1, fin=True):
    """A masked client frame (mask key zero, so the payload goes as is)."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        header = bytes([first, 0x80 | n])
    elif n < 65536:
        header = bytes([first, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([first, 0x80 | 127]) + n.to_bytes(8, "big")
    return header + b"\0\0\0\0" + payload


class Reader:
    """Reads server frames from a socket (with bytes left from the head)."""

    def __init__(self, s, rest=b""):
        self.s, self.buf = s, rest

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def next(self):
        self._need(2)
        opcode, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        at = 2
        if n == 126:
            self._need(4)
            n, at = int.from_bytes(self.buf[2:4], "big"), 4
        elif n == 127:
            self._need(10)
            n, at = int.from_bytes(self.buf[2:10], "big"), 10
        self._need(at + n)
        payload, self.buf = self.buf[at:at + n], self.buf[at + n:]
        return opcode, payload


def close_code(reader):
    while True:
        opcode, payload = reader.next()
        if opcode == 0x8:
            return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None, payload[2:]


def check_origin(args):
    for origin, want in [("https://evil.example", "403"), (f"http://{args.addr}", "101"), (None, "101")]:
        s, status, _, _ = handshake(args.addr, origin)
        s.close()
        print(f"origin {origin!r}: {status}")
        assert want in status, status


def check_pings(args):
    s, status, rest, _ = handshake(args.addr)
    assert "101" in status
    start = time.monotonic()
    reader = Reader(s, rest)
    seen = []
    try:
        while True:
            opcode, payload = reader.next()  # read, but never answer
            seen.append((round(time.monotonic() - start, 2), opcode, payload[2:].decode(errors="replace")))
            if opcode == 0x8:
                break
        reader.next()
    except (EOFError, OSError):  # closed, reset, or timed out (pings off)
        pass
    print(f"pings: frames {seen}; closed after {time.monotonic() - start:.2f} s")


def check_pongs(args):
    """A client that answers every ping stays (for 6 s here)."""
    s, status, rest, _ = handshake(args.addr)
    assert "101" in status
    reader = Reader(s, rest)
    s.settimeout(1)
    start, pings = time.monotonic(), 0
    while time.monotonic() - start < 6:
        try:
            opcode, payload = reader.next()
        except socket.timeout:
            continue
        if opcode == 0x9:
            pings += 1
            s.sendall(frame(payload, opcode=0xA))
        elif opcode == 0x8:
            print(f"pongs: closed after {time.monotonic() - start:.1f} s despite answering")
            return
    s.sendall(frame(b'{"stream":"echostream","payload":"alive"}'))
    s.settimeout(5)
    _, payload = reader.next()
    print(f"pongs: answered {pings} pings in 6 s, still open: {payload.decode()}")


def check_slowhead(args):
    slow = [socket.create_connection(host_port(args.addr)) for _ in range(500)]
    silent = [socket.create_connection(host_port(args.addr)) for _ in range(200)]
    start = time.monotonic()
    t = time.monotonic()
    s, status, _, _ = handshake(args.addr)
    print(f"slowhead: a new client got {status} in {1000 * (time.monotonic() - t):.1f} ms with 700 slow sockets open")
    s.close()
    open_slow = list(slow)
    deadline = start + 60
    while time.monotonic() < deadline and (open_slow or silent):
        for sock in list(open_slow):
            try:
                sock.send(b"G")
            except OSError:
                open_slow.remove(sock)
        for sock in list(silent):
            sock.setblocking(False)
            try:
                if sock.recv(1) == b"":
                    silent.remove(sock)
            except BlockingIOError:
                pass
            except OSError:
                silent.remove(sock)
        time.sleep(1)
    print(f"slowhead: after {time.monotonic() - start:.1f} s, {len(open_slow)} trickling and {len(silent)} silent sockets still open")


def check_limits(args):
    held = []
    for i in range(args.count):
        s, status, rest, head = handshake(args.addr)
        if "101" not in status:
            retry = [l for l in head.split("\r\n") if l.lower().startswith("retry-after")]
            print(f"limits: connection {i + 1} refused: {status} {retry}")
            s.close()
            break
        held.append(s)
    else:
        print(f"limits: all {args.count} connections accepted")
        return
    held.pop().close()
    for _ in range(50):
        time.sleep(0.1)
        s, status, _, _ = handshake(args.addr)
        if "101" in status:
            print("limits: admitted again once one closed")
            break
        s.close()
    else:
        print("limits: NOT admitted again")


def check_rate(args):
    s, status, rest, _ = handshake(args.addr)
    n = args.count
    s.sendall(b"".join(frame(json.dumps({"stream": "echostream", "payload": i}).encode()) for i in range(n)))
    reader = Reader(s, rest)
    echoed, errors = 0, {}
    for _ in range(n):
        _, payload = reader.next()
        reply = json.loads(payload)
        if "payload" in reply:
            echoed += 1
        else:
            errors[reply["error"]["code"]] = errors.get(reply["error"]["code"], 0) + 1
    time.sleep(1.1)
    s.sendall(frame(b'{"stream":"echostream","payload":"still open"}'))
    _, payload = reader.next()
    print(f"rate: {n} frames at once: {echoed} echoed, error frames {errors}; then {payload.decode()}")


def check_trickle(args):
    before = rss_mib(args.pid)
    size = int(7.8 * 1024 * 1024)
    conns = []
    for _ in range(200):
        s, status, rest, _ = handshake(args.addr)
        assert "101" in status, status
        # A fragmented text message: first fragment, then 64 KiB continuations.
        s.sendall(frame(b"[", opcode=0x1, fin=False))
        conns.append((s, Reader(s, rest)))
    sent, cut, peak = 0, 0, before or 0
    chunk = frame(b" " * 65536, opcode=0x0, fin=False)
    start = time.monotonic()
    while sent < size and time.monotonic() - start < 60:
        for s, _ in conns:
            try:
                s.sendall(chunk)
            except OSError:
                pass
        sent += 65536
        time.sleep(0.05)
        if args.pid:
            peak = max(peak, rss_mib(args.pid))
    codes = {}
    for s, reader in conns:
        try:
            s.settimeout(15)
            code, _ = close_code(reader)
        except (EOFError, OSError):
            code = "reset"
        codes[code] = codes.get(code, 0) + 1
        s.close()
    time.sleep(2)
    print(f"trickle: sent up to {sent / 2**20:.1f} MiB each over {time.monotonic() - start:.1f} s; close codes {codes}")
    if args.pid:
        print(f"trickle: RSS before {before:.1f} MiB, peak {peak:.1f} MiB, after {rss_mib(args.pid):.1f} MiB")


def check_slowtrickle(args):
    """200 connections trickle one frame at 500 bytes/s: the message timeout."""
    conns = []
    for _ in range(200):
        s, status, rest, _ = handshake(args.addr)
        assert "101" in status, status
        s.sendall(bytes([0x81, 0x80 | 127]) + (1 << 20).to_bytes(8, "big") + b"\0\0\0\0")
        conns.append((s, Reader(s, rest)))
    start = time.monotonic()
    open_conns = list(conns)
    while open_conns and time.monotonic() - start < 30:
        for item in list(open_conns):
            try:
                item[0].sendall(b"x" * 100)
            except OSError:
                open_conns.remove(item)
        time.sleep(0.2)
    codes = {}
    for s, reader in conns:
        try:
            s.settimeout(5)
            code, reason = close_code(reader)
            code = f"{code} {reason.decode()}"
        except (EOFError, OSError):
            code = "reset"
        codes[code] = codes.get(code, 0) + 1
        s.close()
    print(f"slowtrickle: all cut off after {time.monotonic() - start:.1f} s; close codes {codes}; RSS now {rss_mib(args.pid)}")


def check_pin(args):
    """--count clients send 1,000,000-byte frames to two streams and never
    read: what the server holds for them (queues are bounded in bytes)."""
    before = rss_mib(args.pid)
    conns = []
    big = json.dumps("x" * 1_000_000)
    for _ in range(args.count):
        s, status, rest, _ = handshake(args.addr)
        assert "101" in status, status
        s.setblocking(False)
        conns.append(s)
    frames = [frame(f'{{"stream":"{name}","payload":{big}}}'.encode()) for name in ("echostream", "altechostream")]
    start, peak = time.monotonic(), before or 0
    pending = {id(s): b"".join(frames * 40) for s in conns}
    while time.monotonic() - start < 8:
        for s in conns:
            data = pending[id(s)]
            if data:
                try:
                    n = s.send(data[:1 << 20])
                    pending[id(s)] = data[n:]
                except (BlockingIOError, OSError):
                    pass
        time.sleep(0.05)
        if args.pid:
            peak = max(peak, rss_mib(args.pid))
    for s in conns:
        s.close()
    time.sleep(2)
    print(f"pin: {args.count} clients not reading: RSS before {before} MiB, peak {peak:.1f} MiB, after {rss_mib(args.pid)}")


def check_utf8(args):
    s, status, rest, _ = handshake(args.addr)
    s.sendall(frame(b"{\xff\xfe}"))
    print(f"utf8: close {close_code(Reader(s, rest))}")


def check_burst(args):
    s, status, rest, _ = handshake(args.addr)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = Reader(s, rest)
    frames = b"".join(frame(json.dumps({"stream": "echostream", "payload": i}).encode()) for i in range(500))
    times = []
    for _ in range(5):
        t = time.monotonic()
        s.sendall(frames)
        for _ in range(500):
            reader.next()
        times.append(1000 * (time.monotonic() - t))
        time.sleep(1.1)  # the frame rate limit refills
    print(f"burst: 500 frames ({len(frames)} bytes) answered in " + ", ".join(f"{t:.1f}" for t in times) + " ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("addr")
    parser.add_argument("checks", nargs="+")
    parser.add_argument("--pid", type=int)
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    host = args.addr.rsplit(":", 1)[0]
    if not (host.startswith("127.") or host in ("localhost", "[::1]")):
        sys.exit("loopback addresses only")
    for name in args.checks:
        globals()[f"check_{name}"](args)


if __name__ == "__main__":
    main()
