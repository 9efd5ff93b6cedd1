#!/usr/bin/env python3
"""The timestamp programs of Core Python Programming's network chapter, as peers for
rawloop's tests (tests/seeds.rs): tsTserv.py and tsTclnt.py (with the IPv6 client),
tsUserv.py and tsUclnt.py, tsTservSS.py and tsTclntSS.py, in Python 3.

Standard library only. Loopback only. Every socket operation has a timeout, and every
server serves a given number of clients and exits, so that nothing waits for ever.

  ts_peer.py tcp-server HOST COUNT     tsTserv: serves COUNT connections, one after another
  ts_peer.py tcp-client HOST PORT      tsTclnt (the IPv6 one when HOST is an IPv6 address)
  ts_peer.py udp-server HOST COUNT     tsUserv: answers COUNT datagrams
  ts_peer.py udp-client HOST PORT      tsUclnt
  ts_peer.py ss-server HOST COUNT      tsTservSS: handle_request() COUNT times
  ts_peer.py ss-client HOST PORT       tsTclntSS

A server binds HOST on a free port and prints `LISTENING <port>` first. A client reads
lines from standard input until an empty line or the end of the input, as the seeds do
with raw_input('> '), which prompts only here when standard input is a terminal. Then
each prints what its seed prints.
"""

import socket
import socketserver
import sys
from time import ctime

TIMEOUT = 5.0
BUFSIZ = 1024


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listening(sock):
    print(f"LISTENING {sock.getsockname()[1]}", flush=True)


def read_input():
    """raw_input('> '): one line without its line ending; '' at the end of the input."""
    if sys.stdin.isatty():
        print("> ", end="", flush=True)
    return sys.stdin.readline().rstrip("\r\n")


def tcp_server(host, count):
    """tsTserv.py"""
    tcpSerSock = socket.socket(family(host), socket.SOCK_STREAM)
    tcpSerSock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcpSerSock.bind((host, 0))
    tcpSerSock.listen(5)
    tcpSerSock.settimeout(TIMEOUT)
    listening(tcpSerSock)
    for _ in range(count):
        print("waiting for connection...", flush=True)
        tcpCliSock, addr = tcpSerSock.accept()
        tcpCliSock.settimeout(TIMEOUT)
        print("...connected from:", addr, flush=True)
        while True:
            data = tcpCliSock.recv(BUFSIZ)
            if not data:
                break
            tcpCliSock.sendall(bytes("[%s] %s" % (ctime(), data.decode("utf-8")), "utf-8"))
        tcpCliSock.close()
    tcpSerSock.close()


def tcp_client(host, port):
    """tsTclnt.py, and its IPv6 version (AF_INET6 for '::1')."""
    tcpCliSock = socket.socket(family(host), socket.SOCK_STREAM)
    tcpCliSock.settimeout(TIMEOUT)
    tcpCliSock.connect((host, port))
    while True:
        data = read_input()
        if not data:
            break
        tcpCliSock.sendall(bytes(data, "utf-8"))
        data = tcpCliSock.recv(BUFSIZ)
        if not data:
            break
        print(data.decode("utf-8"), flush=True)
    tcpCliSock.close()


def udp_server(host, count):
    """tsUserv.py"""
    udpSerSock = socket.socket(family(host), socket.SOCK_DGRAM)
    udpSerSock.bind((host, 0))
    udpSerSock.settimeout(TIMEOUT)
    listening(udpSerSock)
    for _ in range(count):
        print("waiting for message...", flush=True)
        data, addr = udpSerSock.recvfrom(BUFSIZ)
        udpSerSock.sendto(bytes("[%s] %s" % (ctime(), data.decode("utf-8")), "utf-8"), addr)
        print("...received from and returned to:", addr, flush=True)
    udpSerSock.close()


def udp_client(host, port):
    """tsUclnt.py"""
    ADDR = (host, port)
    udpCliSock = socket.socket(family(host), socket.SOCK_DGRAM)
    udpCliSock.settimeout(TIMEOUT)
    while True:
        data = read_input()
        if not data:
            break
        udpCliSock.sendto(bytes(data, "utf-8"), ADDR)
        data, ADDR = udpCliSock.recvfrom(BUFSIZ)
        if not data:
            break
        print(data.decode("utf-8"), flush=True)
    udpCliSock.close()


class MyRequestHandler(socketserver.StreamRequestHandler):
    """tsTservSS.py's handler: one line in, one stamped line out."""

    timeout = TIMEOUT

    def handle(self):
        print("...connected from:", self.client_address, flush=True)
        self.wfile.write(b"[%s] %s" % (ctime().encode(), self.rfile.readline()))


class TCP(socketserver.TCPServer):
    allow_reuse_address = True
    timeout = TIMEOUT

    def handle_timeout(self):
        raise TimeoutError("no connection within %s s" % TIMEOUT)


def ss_server(host, count):
    """tsTservSS.py, serving COUNT requests instead of serve_forever()."""
    TCP.address_family = family(host)
    tcpServ = TCP((host, 0), MyRequestHandler)
    listening(tcpServ.socket)
    print("waiting for connection...", flush=True)
    for _ in range(count):
        tcpServ.handle_request()
    tcpServ.server_close()


def ss_client(host, port):
    """tsTclntSS.py: a new connection for every line (made before the line is read)."""
    while True:
        tcpCliSock = socket.socket(family(host), socket.SOCK_STREAM)
        tcpCliSock.settimeout(TIMEOUT)
        tcpCliSock.connect((host, port))
        data = read_input()
        if not data:
            tcpCliSock.close()
            break
        tcpCliSock.sendall(bytes("%s\r\n" % data, "utf-8"))
        data = tcpCliSock.recv(BUFSIZ)
        if not data:
            break
        print(data.decode("utf-8").strip(), flush=True)
        tcpCliSock.close()


SERVERS = {"tcp-server": tcp_server, "udp-server": udp_server, "ss-server": ss_server}
CLIENTS = {"tcp-client": tcp_client, "udp-client": udp_client, "ss-client": ss_client}


def main(argv):
    if len(argv) == 4 and argv[1] in SERVERS:
        SERVERS[argv[1]](argv[2], int(argv[3]))
    elif len(argv) == 4 and argv[1] in CLIENTS:
        CLIENTS[argv[1]](argv[2], int(argv[3]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (OSError, ValueError, UnicodeError) as err:
        print(f"ts_peer.py: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
