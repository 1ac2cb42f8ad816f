#!/usr/bin/env python3
"""Minimal `midclt call` for the VM tests: one JSON-RPC 2.0 call over the middleware's
unix socket (WebSocket at /api/current), result printed as JSON. Standard library only
(the test VM has no network to install a websocket package).

    mw_call.py [--socket PATH] METHOD [JSON_PARAM ...]
"""
import base64
import json
import os
import socket
import struct
import sys


def send_frame(sock, payload: bytes) -> None:
    header = bytearray([0x81])  # FIN + text
    n = len(payload)
    if n < 126:
        header.append(0x80 | n)
    elif n < 65536:
        header.append(0x80 | 126)
        header += struct.pack("!H", n)
    else:
        header.append(0x80 | 127)
        header += struct.pack("!Q", n)
    mask = os.urandom(4)
    header += mask
    sock.sendall(bytes(header) + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def recv_exact(sock, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("socket closed")
        buf += chunk
    return buf


def recv_frame(sock) -> bytes:
    payload = b""
    while True:
        b0, b1 = recv_exact(sock, 2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", recv_exact(sock, 2))[0]
        elif n == 127:
            n = struct.unpack("!Q", recv_exact(sock, 8))[0]
        data = recv_exact(sock, n)
        opcode = b0 & 0x0F
        if opcode in (0x9, 0xA):  # ping/pong: ignore
            continue
        payload += data
        if b0 & 0x80:
            return payload


def main() -> int:
    args = sys.argv[1:]
    path = "/var/run/middleware/middlewared.sock"
    if args[:1] == ["--socket"]:
        path, args = args[1], args[2:]
    method, params = args[0], [json.loads(a) for a in args[1:]]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(path)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /api/current HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    if b" 101 " not in head.split(b"\r\n")[0]:
        print(head.decode(errors="replace"), file=sys.stderr)
        return 2
    send_frame(sock, json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode())
    while True:
        msg = json.loads(recv_frame(sock))
        if msg.get("id") == 1:
            break
    if "error" in msg:
        print(json.dumps(msg["error"]), file=sys.stderr)
        return 1
    print(json.dumps(msg["result"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
