#!/usr/bin/env python3
"""A Message-protocol peer for rawloop's interop tests, written from docs/protocol.md.

Standard library only. Loopback only. Every socket operation has a timeout.

  peer.py client HOST PORT REQUEST...
      One connection per REQUEST, as the reference app-client makes. A REQUEST is
      `ref:ACTION:VALUE` (what the reference client sends for `ACTION VALUE`: a text/json
      search request when ACTION is `search`, else binary content ACTION+VALUE) or
      `json:ACTION:VALUE` (a text/json request with that action, whatever it is).
      Prints one JSON object per request on stdout (see `report`).

  peer.py server COUNT
      Listens on 127.0.0.1, an ephemeral port, and prints `LISTENING <port>`. Then accepts
      COUNT connections one after another, reads one request from each, answers it as
      docs/protocol.md says, closes it, and prints one JSON object per request (see `report`).
      Gives up if no connection comes within the timeout.

Any framing error ends the program with status 1 and the reason on stderr.
"""

import json
import socket
import struct
import sys

TIMEOUT = 5.0

TEXT_JSON = "text/json"
CLIENT_BINARY = "binary/custom-client-binary-type"
SERVER_BINARY = "binary/custom-server-binary-type"
REQUIRED = ("byteorder", "content-length", "content-type", "content-encoding")
SEARCH = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}
BINARY_PREFIX = b"First 10 bytes of request: "


class FramingError(Exception):
    pass


def to_json(value):
    """JSON text exactly as the reference writes it."""
    return json.dumps(value, ensure_ascii=False)


def encode(content_type, content_encoding, content):
    """One frame: u16 big-endian header length, JSON header, content (bytes)."""
    header = {
        "byteorder": sys.byteorder,
        "content-type": content_type,
        "content-encoding": content_encoding,
        "content-length": len(content),
    }
    header_bytes = to_json(header).encode("utf-8")
    return struct.pack(">H", len(header_bytes)) + header_bytes + content


def encode_json(value):
    return encode(TEXT_JSON, "utf-8", to_json(value).encode("utf-8"))


def recv_exact(sock, n, what):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise FramingError(
                f"peer closed after {len(data)} of {n} bytes of the {what}"
            )
        data += chunk
    return data


def read_frame(sock):
    """Reads one frame. Returns (raw bytes, header dict, content bytes)."""
    prefix = recv_exact(sock, 2, "length prefix")
    (header_len,) = struct.unpack(">H", prefix)
    if header_len == 0:
        raise FramingError("JSON header length is 0")
    header_bytes = recv_exact(sock, header_len, "JSON header")
    header = json.loads(header_bytes.decode("utf-8"))
    if not isinstance(header, dict):
        raise FramingError(f"JSON header is not an object: {header!r}")
    for key in REQUIRED:
        if key not in header:
            raise FramingError(f"Missing required header '{key}'.")
    length = header["content-length"]
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise FramingError(f"bad content-length {length!r}")
    for key in ("content-type", "content-encoding"):
        if not isinstance(header[key], str):
            raise FramingError(f"{key} is not a string: {header[key]!r}")
    content = recv_exact(sock, length, "content")
    return prefix + header_bytes + content, header, content


def decode_json(header, content):
    return json.loads(content.decode(header["content-encoding"]))


def canonical(raw, header, content):
    """Whether the frame is byte for byte what the reference would write for it."""
    if list(header) != ["byteorder", "content-type", "content-encoding", "content-length"]:
        return False
    if header["content-type"] == TEXT_JSON:
        value = decode_json(header, content)
        if to_json(value).encode(header["content-encoding"]) != content:
            return False
    return encode(header["content-type"], header["content-encoding"], content) == raw


def report(request_raw, response_raw, received):
    """One line of output: both frames in hex, and the frame this peer received (the response
    for a client, the request for a server) decoded: its header, whether it is byte for byte
    what the reference writes, and its JSON value or its content in hex."""
    raw, header, content = received
    out = {
        "request_hex": request_raw.hex(),
        "response_hex": response_raw.hex(),
        "header": header,
        "canonical": canonical(raw, header, content),
    }
    if header["content-type"] == TEXT_JSON:
        out["json"] = decode_json(header, content)
    else:
        out["content_hex"] = content.hex()
    print(to_json(out), flush=True)


def make_request(spec):
    kind, sep1, rest = spec.partition(":")
    action, sep2, value = rest.partition(":")
    if not sep1 or not sep2 or kind not in ("ref", "json"):
        raise SystemExit(f"bad request spec {spec!r}: want ref:ACTION:VALUE or json:ACTION:VALUE")
    if kind == "json" or action == "search":
        return encode_json({"action": action, "value": value})
    return encode(CLIENT_BINARY, "binary", (action + value).encode("utf-8"))


def run_client(host, port, specs):
    for spec in specs:
        request = make_request(spec)
        with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
            sock.sendall(request)
            response = read_frame(sock)
            # One response per connection: the server closes right after it.
            extra = sock.recv(65536)
            if extra:
                raise FramingError(f"{len(extra)} bytes after the response: {extra[:40]!r}")
        report(request, response[0], response)


def respond(header, content):
    """The answer docs/protocol.md gives for a request (never waits, never spins)."""
    if header["content-type"] != TEXT_JSON:
        return encode(SERVER_BINARY, "binary", BINARY_PREFIX + content[:10])
    request = decode_json(header, content)
    if not isinstance(request, dict):
        result = f"Error: invalid request: expected a JSON object, got {type(request).__name__}."
    elif request.get("action") == "search":
        query = request.get("value")
        found = SEARCH.get(query) if isinstance(query, str) else None
        result = found or f"No match for '{query}'."
    else:
        result = f"Error: invalid action '{request.get('action')}'."
    return encode_json({"result": result})


def run_server(count):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(TIMEOUT)
        print(f"LISTENING {listener.getsockname()[1]}", flush=True)
        for _ in range(count):
            conn, _addr = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                request = read_frame(conn)
                response = respond(request[1], request[2])
                conn.sendall(response)
            report(request[0], response, request)


def main(argv):
    sys.stdout.reconfigure(encoding="utf-8")
    if len(argv) >= 4 and argv[1] == "client":
        run_client(argv[2], int(argv[3]), argv[4:])
    elif len(argv) == 3 and argv[1] == "server":
        run_server(int(argv[2]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (FramingError, OSError, ValueError, UnicodeError) as err:
        print(f"peer.py: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
