#!/usr/bin/env python3
"""Programs of PyMOTW-3's networking chapter, as peers for rawloop's tests (tests/seeds.rs):
socket_binary_server.py and _client.py, socket_socketpair.py, socketserver_echo_simple.py,
socket_multicast_sender.py and _receiver.py, select_echo_server_timeout.py and
select_echo_slow_client.py.

Standard library only. Loopback only (multicast only inside the tests' private network
namespace). Every socket operation has a timeout, and every server serves a given number of
clients and exits, so that nothing waits for ever.

  pymotw_peer.py binary-server COUNT              prints `LISTENING <port>`, then the seed's lines
  pymotw_peer.py binary-client HOST PORT
  pymotw_peer.py socketpair                       the seed program as it is (it forks)
  pymotw_peer.py socketserver-echo                the seed program as it is (a server thread)
  pymotw_peer.py multicast-sender [GROUP PORT]
  pymotw_peer.py multicast-receiver COUNT         answers COUNT datagrams, then exits
  pymotw_peer.py timeout-server PERIOD            serves until its first client has left
  pymotw_peer.py slow-client HOST PORT START PAUSE

The servers bind 127.0.0.1 on a free port (the multicast receiver the seed's port) and print
`LISTENING <port>` (the multicast receiver: `JOINED`) on standard output once they can be
reached. The rest of the output is the seed's, on the stream the seed uses.
"""

import binascii
import os
import select
import socket
import struct
import sys
import time

TIMEOUT = 5.0


def listening(sock):
    print(f"LISTENING {sock.getsockname()[1]}", flush=True)


def binary_server(count):
    """socket_binary_server.py"""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server_address = ("127.0.0.1", 0)
    sock.bind(server_address)
    sock.listen(1)
    sock.settimeout(TIMEOUT)
    listening(sock)

    unpacker = struct.Struct("I 2s f")

    for _ in range(count):
        print("\nwaiting for a connection", flush=True)
        connection, client_address = sock.accept()
        connection.settimeout(TIMEOUT)
        try:
            data = connection.recv(unpacker.size)
            print("received {!r}".format(binascii.hexlify(data)), flush=True)

            unpacked_data = unpacker.unpack(data)
            print("unpacked:", unpacked_data, flush=True)

        finally:
            connection.close()
    sock.close()


def binary_client(host, port):
    """socket_binary_client.py"""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    server_address = (host, port)
    sock.connect(server_address)

    values = (1, b"ab", 2.7)
    packer = struct.Struct("I 2s f")
    packed_data = packer.pack(*values)

    print("values =", values)

    try:
        # Send data
        print("sending {!r}".format(binascii.hexlify(packed_data)))
        sock.sendall(packed_data)
    finally:
        print("closing socket")
        sock.close()


def socketpair():
    """socket_socketpair.py. Both processes write to one stdout: each line goes out whole
    (under `python3 -u` a print's text and its newline would be two writes, and the two
    processes' lines could interleave mid-line)."""
    sys.stdout.reconfigure(line_buffering=True, write_through=False)
    parent, child = socket.socketpair()
    parent.settimeout(TIMEOUT)
    child.settimeout(TIMEOUT)

    pid = os.fork()

    if pid:
        print("in parent, sending message")
        child.close()
        parent.sendall(b"ping")
        response = parent.recv(1024)
        print("response from child:", response)
        parent.close()
        os.waitpid(pid, 0)

    else:
        print("in child, waiting for message")
        parent.close()
        message = child.recv(1024)
        print("message from parent:", message)
        child.sendall(b"pong")
        child.close()


def socketserver_echo():
    """socketserver_echo_simple.py"""
    import socketserver
    import threading

    class EchoRequestHandler(socketserver.BaseRequestHandler):
        def handle(self):
            # Echo the back to the client
            self.request.settimeout(TIMEOUT)
            data = self.request.recv(1024)
            self.request.send(data)
            return

    address = ("localhost", 0)  # let the kernel assign a port
    server = socketserver.TCPServer(address, EchoRequestHandler)
    ip, port = server.server_address  # what port was assigned?

    t = threading.Thread(target=server.serve_forever)
    t.daemon = True  # don't hang on exit
    t.start()

    # Connect to the server
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect((ip, port))

    # Send the data
    message = "Hello, world".encode()
    print("Sending : {!r}".format(message))
    len_sent = s.send(message)

    # Receive a response
    response = s.recv(len_sent)
    print("Received: {!r}".format(response))

    # Clean up
    server.shutdown()
    s.close()
    server.socket.close()


def multicast_sender(group="224.3.29.71", port=10000):
    """socket_multicast_sender.py"""
    message = b"very important data"
    multicast_group = (group, port)

    # Create the datagram socket
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    # Set a timeout so the socket does not block
    # indefinitely when trying to receive data.
    sock.settimeout(0.2)

    # Set the time-to-live for messages to 1 so they do not
    # go past the local network segment.
    ttl = struct.pack("b", 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)

    try:

        # Send data to the multicast group
        print("sending {!r}".format(message), flush=True)
        sent = sock.sendto(message, multicast_group)

        # Look for responses from all recipients
        while True:
            print("waiting to receive", flush=True)
            try:
                data, server = sock.recvfrom(16)
            except socket.timeout:
                print("timed out, no more responses", flush=True)
                break
            else:
                print("received {!r} from {}".format(data, server), flush=True)

    finally:
        print("closing socket", flush=True)
        sock.close()


def multicast_receiver(count, group="224.3.29.71", port=10000):
    """socket_multicast_receiver.py, answering COUNT datagrams."""
    multicast_group = group
    server_address = ("", port)

    # Create the socket
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)

    # Bind to the server address
    sock.bind(server_address)

    # Tell the operating system to add the socket to
    # the multicast group on all interfaces.
    group = socket.inet_aton(multicast_group)
    mreq = struct.pack("4sL", group, socket.INADDR_ANY)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    print("JOINED", flush=True)

    # Receive/respond loop
    for _ in range(count):
        print("\nwaiting to receive message", flush=True)
        data, address = sock.recvfrom(1024)

        print("received {} bytes from {}".format(len(data), address), flush=True)
        print(data, flush=True)

        print("sending acknowledgement to", address, flush=True)
        sock.sendto(b"ack", address)


def timeout_server(period):
    """select_echo_server.py with select_echo_server_timeout.py's timeout; it stops once its
    first client has gone."""
    import queue

    # Create a TCP/IP socket
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setblocking(0)

    # Bind the socket to the port
    server_address = ("127.0.0.1", 0)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(server_address)
    print("starting up on {} port {}".format(*server.getsockname()), file=sys.stderr)

    # Listen for incoming connections
    server.listen(5)
    listening(server)

    # Sockets from which we expect to read
    inputs = [server]

    # Sockets to which we expect to write
    outputs = []

    # Outgoing message queues (socket:Queue)
    message_queues = {}

    served = 0
    deadline = time.monotonic() + 4 * TIMEOUT
    while inputs and not (served and len(inputs) == 1):
        if time.monotonic() > deadline:
            raise TimeoutError("still serving after %s s" % (4 * TIMEOUT))

        # Wait for at least one of the sockets to be
        # ready for processing
        print("waiting for the next event", file=sys.stderr)
        readable, writable, exceptional = select.select(inputs, outputs, inputs, period)

        if not (readable or writable or exceptional):
            print("  timed out, do some other work here", file=sys.stderr, flush=True)
            continue

        # Handle inputs
        for s in readable:

            if s is server:
                # A "readable" socket is ready to accept a connection
                connection, client_address = s.accept()
                print("  connection from", client_address, file=sys.stderr)
                connection.setblocking(0)
                inputs.append(connection)
                served += 1

                # Give the connection a queue for data
                # we want to send
                message_queues[connection] = queue.Queue()
            else:
                data = s.recv(1024)
                if data:
                    # A readable client socket has data
                    print(
                        "  received {!r} from {}".format(data, s.getpeername()),
                        file=sys.stderr,
                    )
                    message_queues[s].put(data)
                    # Add output channel for response
                    if s not in outputs:
                        outputs.append(s)
                else:
                    # Interpret empty result as closed connection
                    print("  closing", client_address, file=sys.stderr)
                    # Stop listening for input on the connection
                    if s in outputs:
                        outputs.remove(s)
                    inputs.remove(s)
                    s.close()

                    # Remove message queue
                    del message_queues[s]

        # Handle outputs
        for s in writable:
            try:
                next_msg = message_queues[s].get_nowait()
            except queue.Empty:
                # No messages waiting so stop checking
                # for writability.
                print("  ", s.getpeername(), "queue empty", file=sys.stderr)
                outputs.remove(s)
            else:
                print(
                    "  sending {!r} to {}".format(next_msg, s.getpeername()),
                    file=sys.stderr,
                )
                s.send(next_msg)

        # Handle "exceptional conditions"
        for s in exceptional:
            print("exception condition on", s.getpeername(), file=sys.stderr)
            # Stop listening for input on the connection
            inputs.remove(s)
            if s in outputs:
                outputs.remove(s)
            s.close()

            # Remove message queue
            del message_queues[s]
    server.close()


def slow_client(host, port, start, pause):
    """select_echo_slow_client.py, with its sleeps given (the seed's: 1 and 1.5)."""
    # Create a TCP/IP socket
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)

    # Connect the socket to the port where the server is listening
    server_address = (host, port)
    print("connecting to {} port {}".format(*server_address), file=sys.stderr)
    sock.connect(server_address)

    time.sleep(start)

    messages = [
        "Part one of the message.",
        "Part two of the message.",
    ]
    amount_expected = len("".join(messages))

    try:

        # Send data
        for message in messages:
            data = message.encode()
            print("sending {!r}".format(data), file=sys.stderr)
            sock.sendall(data)
            time.sleep(pause)

        # Look for the response
        amount_received = 0

        while amount_received < amount_expected:
            data = sock.recv(16)
            if not data:
                raise ConnectionError("the server closed after %d bytes" % amount_received)
            amount_received += len(data)
            print("received {!r}".format(data), file=sys.stderr)

    finally:
        print("closing socket", file=sys.stderr)
        sock.close()


def main(argv):
    mode, args = (argv[1], argv[2:]) if len(argv) > 1 else ("", [])
    if mode == "binary-server" and len(args) == 1:
        binary_server(int(args[0]))
    elif mode == "binary-client" and len(args) == 2:
        binary_client(args[0], int(args[1]))
    elif mode == "socketpair" and not args:
        socketpair()
    elif mode == "socketserver-echo" and not args:
        socketserver_echo()
    elif mode == "multicast-sender" and len(args) in (0, 2):
        multicast_sender(*(args[:1] + [int(a) for a in args[1:]]))
    elif mode == "multicast-receiver" and len(args) == 1:
        multicast_receiver(int(args[0]))
    elif mode == "timeout-server" and len(args) == 1:
        timeout_server(float(args[0]))
    elif mode == "slow-client" and len(args) == 4:
        slow_client(args[0], int(args[1]), float(args[2]), float(args[3]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (OSError, ValueError, struct.error) as err:
        print(f"pymotw_peer.py: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
