//! rawloop::net on loopback: every socket comes back non-blocking and close-on-exec, accepts
//! name their peers, options reach the kernel, and connects report through SO_ERROR.

mod common;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self as sock, sockopt, AddressFamily, SockFlag, SockType, UnixAddr};

use common::TempDir;
use rawloop::net::{
    self, ListenOptions, Listener, MulticastInterface, UdpOptions, UnixListenOptions,
};

/// How long a test waits for loopback traffic that should arrive at once.
const PATIENCE_MS: u16 = 2000;

/// Whether `fd` becomes ready for `flags` within `ms` milliseconds (errors and hang-ups
/// count as ready).
fn wait(fd: &impl AsFd, flags: PollFlags, ms: u16) -> bool {
    let mut fds = [PollFd::new(fd.as_fd(), flags)];
    poll(&mut fds, PollTimeout::from(ms)).expect("poll") > 0
}

fn readable(fd: &impl AsFd) -> bool {
    wait(fd, PollFlags::POLLIN, PATIENCE_MS)
}

fn writable(fd: &impl AsFd) -> bool {
    wait(fd, PollFlags::POLLOUT, PATIENCE_MS)
}

#[track_caller]
fn assert_nonblocking_cloexec(fd: &impl AsFd) {
    let status = OFlag::from_bits_retain(fcntl(fd.as_fd(), FcntlArg::F_GETFL).unwrap());
    let fd_flags = FdFlag::from_bits_retain(fcntl(fd.as_fd(), FcntlArg::F_GETFD).unwrap());
    assert!(
        status.contains(OFlag::O_NONBLOCK),
        "O_NONBLOCK is off: {status:?}"
    );
    assert!(
        fd_flags.contains(FdFlag::FD_CLOEXEC),
        "FD_CLOEXEC is off: {fd_flags:?}"
    );
}

#[track_caller]
fn assert_would_block<T>(result: io::Result<T>) {
    match result {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}"),
        Ok(_) => panic!("expected WouldBlock, got a result"),
    }
}

/// Accepts through the trait the library's acceptor is generic over.
fn accept_one<L: Listener + AsFd>(listener: &L) -> (L::Stream, L::Addr) {
    assert!(readable(listener), "no connection to accept");
    listener.accept_nonblocking().expect("accept")
}

/// Sends `msg` one way and back over two connected non-blocking streams.
fn ping_pong(a: &mut (impl Read + Write + AsFd), b: &mut (impl Read + Write + AsFd)) {
    let mut buf = [0u8; 16];
    a.write_all(b"ping").unwrap();
    assert!(readable(b));
    let n = b.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    assert_would_block(b.read(&mut buf));
    b.write_all(b"pong").unwrap();
    assert!(readable(a));
    let n = a.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"pong");
}

/// Connects a client to `listener` at `to` the non-blocking way and checks both ends.
fn connect_and_accept(listener: &TcpListener, to: SocketAddr) -> (TcpStream, TcpStream) {
    assert_nonblocking_cloexec(listener);
    assert_would_block(net::accept_tcp(listener));

    let mut client = net::connect_tcp(to).unwrap();
    assert_nonblocking_cloexec(&client);
    assert!(writable(&client), "the connect did not finish");
    net::take_socket_error(&client).expect("the connect failed");

    let (mut server, peer) = accept_one(listener);
    assert_eq!(
        peer,
        client.local_addr().unwrap(),
        "accept names the client"
    );
    assert_eq!(server.peer_addr().unwrap(), peer);
    assert_nonblocking_cloexec(&server);
    assert_would_block(net::accept_tcp(listener));

    ping_pong(&mut client, &mut server);
    (client, server)
}

/// `[::1]:0`, or None (and a note) where this machine has no IPv6 loopback.
fn ipv6_loopback() -> Option<SocketAddr> {
    let addr = SocketAddr::from((Ipv6Addr::LOCALHOST, 0));
    match UdpSocket::bind(addr) {
        Ok(_) => Some(addr),
        Err(e) => {
            eprintln!("skipping the IPv6 part: cannot bind {addr}: {e}");
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn resolve_follows_pythons_conventions() {
    assert_eq!(
        net::resolve("", 8080).unwrap(),
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8080))
    );
    assert_eq!(
        net::resolve("<broadcast>", 9).unwrap(),
        SocketAddr::from((Ipv4Addr::BROADCAST, 9))
    );
    assert_eq!(
        net::resolve("::1", 53).unwrap(),
        SocketAddr::from((Ipv6Addr::LOCALHOST, 53))
    );
    assert_eq!(
        net::resolve("127.0.0.1", 1).unwrap(),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 1))
    );
    let localhost = net::resolve("localhost", 7).unwrap();
    assert!(
        localhost.ip().is_loopback() && localhost.port() == 7,
        "{localhost}"
    );
}

#[test]
fn option_defaults() {
    let listen = ListenOptions::default();
    assert!(listen.reuse_address && !listen.reuse_port && listen.nodelay);
    assert_eq!((listen.backlog, listen.only_v6), (1024, None));
    let changed = ListenOptions::default()
        .reuse_address(false)
        .reuse_port(true)
        .backlog(7)
        .nodelay(false)
        .only_v6(true);
    assert!(!changed.reuse_address && changed.reuse_port && !changed.nodelay);
    assert_eq!((changed.backlog, changed.only_v6), (7, Some(true)));

    let udp = UdpOptions::default();
    assert!(!udp.reuse_address && !udp.reuse_port && !udp.broadcast);
    assert_eq!(
        (udp.multicast_ttl, udp.multicast_loop, udp.only_v6),
        (None, None, None)
    );

    let unix = UnixListenOptions::default();
    assert!(!unix.remove_stale);
    assert_eq!(unix.backlog, 1024);
}

#[test]
fn tcp_over_ipv4() {
    let listener = net::listen_tcp(
        net::resolve("127.0.0.1", 0).unwrap(),
        &ListenOptions::default(),
    )
    .unwrap();
    assert!(sock::getsockopt(&listener, sockopt::ReuseAddr).unwrap());
    assert!(!sock::getsockopt(&listener, sockopt::ReusePort).unwrap());
    assert!(sock::getsockopt(&listener, sockopt::TcpNoDelay).unwrap());
    connect_and_accept(&listener, listener.local_addr().unwrap());
}

#[test]
fn tcp_over_ipv6() {
    let Some(any_port) = ipv6_loopback() else {
        return;
    };
    let listener = net::listen_tcp(any_port, &ListenOptions::default().only_v6(true)).unwrap();
    assert!(sock::getsockopt(&listener, sockopt::Ipv6V6Only).unwrap());
    let to = listener.local_addr().unwrap();
    assert!(to.is_ipv6());
    connect_and_accept(&listener, to);

    // Dual stack: IPv4 clients reach an IPv6 wildcard listener as ::ffff:a.b.c.d. (Linux
    // turns IPV6_V6ONLY on when a socket binds a specific IPv6 address such as ::1.)
    let wildcard = SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0));
    let dual = net::listen_tcp(wildcard, &ListenOptions::default().only_v6(false)).unwrap();
    assert!(!sock::getsockopt(&dual, sockopt::Ipv6V6Only).unwrap());
    let port = dual.local_addr().unwrap().port();
    let client = net::connect_tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).unwrap();
    assert!(writable(&client));
    net::take_socket_error(&client).unwrap();
    let (_server, peer) = accept_one(&dual);
    assert_eq!(
        peer,
        SocketAddr::from((
            Ipv4Addr::LOCALHOST.to_ipv6_mapped(),
            client.local_addr().unwrap().port()
        ))
    );
}

#[test]
fn tcp_on_all_interfaces() {
    let listener =
        net::listen_tcp(net::resolve("", 0).unwrap(), &ListenOptions::default()).unwrap();
    let local = listener.local_addr().unwrap();
    assert_eq!(local.ip(), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    connect_and_accept(
        &listener,
        SocketAddr::from((Ipv4Addr::LOCALHOST, local.port())),
    );
}

/// Linux copies TCP_NODELAY from the listener to the sockets it accepts (as the BSDs do), so
/// ListenOptions::nodelay is all an accepted socket needs.
#[test]
fn accepted_sockets_inherit_tcp_nodelay() {
    for nodelay in [true, false] {
        let options = ListenOptions::default().nodelay(nodelay);
        let listener = net::listen_tcp(net::resolve("127.0.0.1", 0).unwrap(), &options).unwrap();
        assert_eq!(
            sock::getsockopt(&listener, sockopt::TcpNoDelay).unwrap(),
            nodelay
        );
        let (client, server) = connect_and_accept(&listener, listener.local_addr().unwrap());
        let inherited = sock::getsockopt(&server, sockopt::TcpNoDelay).unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(
                inherited, nodelay,
                "listener TCP_NODELAY {nodelay}, accepted {inherited}"
            );
        } else {
            eprintln!("listener TCP_NODELAY {nodelay}: accepted socket has {inherited}");
        }
        // Connecting sockets are not touched: TCP_NODELAY is the OS default (off) there.
        assert!(!sock::getsockopt(&client, sockopt::TcpNoDelay).unwrap());
    }
}

#[test]
fn reuse_port_shares_a_port_only_when_asked() {
    let shared = ListenOptions::default().reuse_port(true);
    let first = net::listen_tcp(net::resolve("127.0.0.1", 0).unwrap(), &shared).unwrap();
    let addr = first.local_addr().unwrap();
    assert!(sock::getsockopt(&first, sockopt::ReusePort).unwrap());
    let second = net::listen_tcp(addr, &shared).expect("a second SO_REUSEPORT listener");
    assert_eq!(second.local_addr().unwrap(), addr);
    let e = net::listen_tcp(addr, &ListenOptions::default()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");

    let alone = net::listen_tcp(
        net::resolve("127.0.0.1", 0).unwrap(),
        &ListenOptions::default(),
    )
    .unwrap();
    let e = net::listen_tcp(alone.local_addr().unwrap(), &ListenOptions::default()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
    let e = net::listen_tcp(alone.local_addr().unwrap(), &shared).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
}

#[test]
fn refused_connect_is_reported_by_take_socket_error() {
    // A port that is bound but not listening: the kernel answers a SYN with RST, and nothing
    // else can take the port while the test runs.
    let bound = sock::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    sock::bind(bound.as_raw_fd(), &sock::SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
    let port = sock::getsockname::<sock::SockaddrIn>(bound.as_raw_fd())
        .unwrap()
        .port();
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));

    match net::connect_tcp(to) {
        // Loopback may refuse before connect(2) returns.
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(stream) => {
            assert_nonblocking_cloexec(&stream);
            assert!(writable(&stream), "the failed connect was not reported");
            let e = net::take_socket_error(&stream).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
            // Read and cleared.
            net::take_socket_error(&stream).unwrap();
        }
    }
}

#[test]
fn udp_send_and_receive() {
    let a = net::bind_udp(
        net::resolve("127.0.0.1", 0).unwrap(),
        &UdpOptions::default(),
    )
    .unwrap();
    let b = net::bind_udp(
        net::resolve("127.0.0.1", 0).unwrap(),
        &UdpOptions::default(),
    )
    .unwrap();
    assert_nonblocking_cloexec(&a);
    assert_nonblocking_cloexec(&b);
    let mut buf = [0u8; 64];
    assert_would_block(a.recv_from(&mut buf));

    b.send_to(b"ping", a.local_addr().unwrap()).unwrap();
    assert!(readable(&a));
    let (n, from) = a.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"ping"[..], b.local_addr().unwrap()));
    assert_would_block(a.recv_from(&mut buf));

    // Two sockets may share a port when both ask.
    let shared = UdpOptions::default().reuse_port(true);
    let first = net::bind_udp(net::resolve("127.0.0.1", 0).unwrap(), &shared).unwrap();
    net::bind_udp(first.local_addr().unwrap(), &shared).expect("a second SO_REUSEPORT socket");
    let e = net::bind_udp(a.local_addr().unwrap(), &UdpOptions::default()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
}

#[test]
fn udp_options_reach_the_kernel() {
    let plain = net::bind_udp(
        net::resolve("127.0.0.1", 0).unwrap(),
        &UdpOptions::default(),
    )
    .unwrap();
    assert!(!sock::getsockopt(&plain, sockopt::ReuseAddr).unwrap());
    assert!(!sock::getsockopt(&plain, sockopt::Broadcast).unwrap());
    assert_eq!(
        sock::getsockopt(&plain, sockopt::IpMulticastTtl).unwrap(),
        1
    );
    assert!(sock::getsockopt(&plain, sockopt::IpMulticastLoop).unwrap());

    let options = UdpOptions::default()
        .reuse_address(true)
        .reuse_port(true)
        .broadcast(true)
        .multicast_ttl(5)
        .multicast_loop(false);
    let socket = net::bind_udp(net::resolve("127.0.0.1", 0).unwrap(), &options).unwrap();
    assert!(sock::getsockopt(&socket, sockopt::ReuseAddr).unwrap());
    assert!(sock::getsockopt(&socket, sockopt::ReusePort).unwrap());
    assert!(sock::getsockopt(&socket, sockopt::Broadcast).unwrap());
    assert_eq!(
        sock::getsockopt(&socket, sockopt::IpMulticastTtl).unwrap(),
        5
    );
    assert!(!sock::getsockopt(&socket, sockopt::IpMulticastLoop).unwrap());
    assert_eq!(socket.multicast_ttl_v4().unwrap(), 5);

    let Some(any_port) = ipv6_loopback() else {
        return;
    };
    let options = UdpOptions::default()
        .only_v6(true)
        .multicast_ttl(7)
        .multicast_loop(false);
    let v6 = net::bind_udp(any_port, &options).unwrap();
    assert_nonblocking_cloexec(&v6);
    assert!(sock::getsockopt(&v6, sockopt::Ipv6V6Only).unwrap());
    assert_eq!(
        sock::getsockopt(&v6, sockopt::Ipv6MulticastHops).unwrap(),
        7
    );
    assert!(!v6.multicast_loop_v6().unwrap());
}

#[test]
fn multicast_interface_must_fit_the_group() {
    let socket = net::bind_udp(
        net::resolve("127.0.0.1", 0).unwrap(),
        &UdpOptions::default(),
    )
    .unwrap();
    let v4_group = IpAddr::V4(Ipv4Addr::new(224, 3, 29, 71));
    let v6_group = IpAddr::V6("ff02::1:3".parse().unwrap());
    for (group, interface) in [
        (v4_group, MulticastInterface::Index(1)),
        (v6_group, MulticastInterface::Address(Ipv4Addr::LOCALHOST)),
    ] {
        let e = net::join_multicast(&socket, group, interface).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        let e = net::leave_multicast(&socket, group, interface).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    }
    assert_eq!(MulticastInterface::from(7), MulticastInterface::Index(7));
    assert_eq!(
        MulticastInterface::from(Ipv4Addr::LOCALHOST),
        MulticastInterface::Address(Ipv4Addr::LOCALHOST)
    );
}

#[test]
fn unix_listener_replaces_a_stale_socket_file() {
    let dir = TempDir::new("net");
    let path = dir.join("stale.sock");
    // What a server that did not clean up leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&*path).unwrap());
    assert!(path.exists());

    let e = net::listen_unix(&*path, &UnixListenOptions::default()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");

    let listener =
        net::listen_unix(&*path, &UnixListenOptions::default().remove_stale(true)).unwrap();
    assert_nonblocking_cloexec(&listener);
    assert_would_block(net::accept_unix(&listener));

    let mut client = net::connect_unix(&*path).unwrap();
    assert_nonblocking_cloexec(&client);
    let (mut server, peer) = accept_one(&listener);
    assert!(peer.is_unnamed(), "{peer:?}");
    assert_nonblocking_cloexec(&server);
    ping_pong(&mut client, &mut server);

    // With no file at all, remove_stale has nothing to do.
    drop(listener);
    std::fs::remove_file(&*path).unwrap();
    net::listen_unix(&*path, &UnixListenOptions::default().remove_stale(true)).unwrap();
}

#[test]
fn unix_listener_leaves_other_files_alone() {
    let dir = TempDir::new("net");
    let path = dir.join("regular-file");
    std::fs::write(&*path, b"precious").unwrap();
    let e = net::listen_unix(&*path, &UnixListenOptions::default().remove_stale(true)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
    assert!(e.to_string().contains("not a socket"), "{e}");
    assert_eq!(std::fs::read(&*path).unwrap(), b"precious");

    let missing = dir.join("nobody-listens.sock");
    let e = net::connect_unix(&*missing).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
}

/// A client bound to a path (or, on Linux, an abstract name) is named by accept_unix.
#[test]
fn accept_unix_names_bound_clients() {
    let dir = TempDir::new("net");
    let path = dir.join("named-server.sock");
    let listener = net::listen_unix(&*path, &UnixListenOptions::default()).unwrap();

    let client_path = dir.join("named-client.sock");
    let client = sock::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    sock::bind(client.as_raw_fd(), &UnixAddr::new(&*client_path).unwrap()).unwrap();
    sock::connect(client.as_raw_fd(), &UnixAddr::new(&*path).unwrap()).unwrap();
    let (_server, peer) = accept_one(&listener);
    assert_eq!(peer.as_pathname(), Some(&*client_path));

    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("rawloop-net-{}", std::process::id());
        let client = sock::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .unwrap();
        sock::bind(
            client.as_raw_fd(),
            &UnixAddr::new_abstract(name.as_bytes()).unwrap(),
        )
        .unwrap();
        sock::connect(client.as_raw_fd(), &UnixAddr::new(&*path).unwrap()).unwrap();
        let (_server, peer) = accept_one(&listener);
        assert_eq!(peer.as_abstract_name(), Some(name.as_bytes()));
    }
}

#[test]
fn socketpair_ping_pong() {
    let (mut a, mut b) = net::socketpair().unwrap();
    assert_nonblocking_cloexec(&a);
    assert_nonblocking_cloexec(&b);
    let mut buf = [0u8; 8];
    assert_would_block(a.read(&mut buf));
    ping_pong(&mut a, &mut b);
    drop(b);
    assert_eq!(
        a.read(&mut buf).unwrap(),
        0,
        "end of stream once the peer is gone"
    );
}

#[test]
fn datagram_socketpair_keeps_message_boundaries() {
    let (a, b) = net::datagram_socketpair().unwrap();
    assert_nonblocking_cloexec(&a);
    assert_nonblocking_cloexec(&b);
    let mut buf = [0u8; 16];
    assert_would_block(b.recv(&mut buf));
    a.send(b"one").unwrap();
    a.send(b"three").unwrap();
    assert!(readable(&b));
    let n = b.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"one");
    let n = b.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"three");
    assert_would_block(b.recv(&mut buf));
}

#[test]
fn unix_datagrams_bound_and_unbound() {
    let dir = TempDir::new("net");
    let path = dir.join("datagram.sock");
    let server = net::bind_unix_datagram(&*path).unwrap();
    let client = net::unbound_unix_datagram().unwrap();
    assert_nonblocking_cloexec(&server);
    assert_nonblocking_cloexec(&client);
    let mut buf = [0u8; 16];
    assert_would_block(server.recv_from(&mut buf));

    client.send_to(b"hello", &*path).unwrap();
    assert!(readable(&server));
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello");
    assert!(from.is_unnamed(), "{from:?}");

    let e = net::bind_unix_datagram(&*path).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
}

#[test]
fn set_nonblocking_on_a_pipe() {
    let (read_end, _write_end) = nix::unistd::pipe().unwrap();
    let nonblocking = |fd: &std::os::fd::OwnedFd| {
        OFlag::from_bits_retain(fcntl(fd.as_fd(), FcntlArg::F_GETFL).unwrap())
            .contains(OFlag::O_NONBLOCK)
    };
    assert!(!nonblocking(&read_end));
    net::set_nonblocking(&read_end, true).unwrap();
    assert!(nonblocking(&read_end));
    net::set_nonblocking(&read_end, true).unwrap();
    assert!(nonblocking(&read_end));
    let mut pipe = std::fs::File::from(read_end.try_clone().unwrap());
    assert_would_block(pipe.read(&mut [0u8; 4]));
    net::set_nonblocking(&read_end, false).unwrap();
    assert!(!nonblocking(&read_end));
}

// ---------------------------------------------------------------------------------------------
// Multicast, in a network namespace of its own
// ---------------------------------------------------------------------------------------------

/// Set in the environment of this test binary when it runs again inside a network namespace.
const IN_NAMESPACE: &str = "RAWLOOP_NET_TEST_IN_NAMESPACE";

/// Multicast needs an interface that carries it; loopback does only once told to, which needs
/// a network namespace of our own. So the test runs this binary again under
/// `unshare --net`, with multicast on and routed to `lo`, and the inner run does the exchange.
/// Skipped, with a note, where namespaces are refused or `unshare` is missing.
#[test]
fn multicast_join_and_leave() {
    const NAME: &str = "multicast_join_and_leave";
    if std::env::var_os(IN_NAMESPACE).is_some() {
        multicast_exchange();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let script =
        r#"ip link set lo up multicast on && ip route add 224.0.0.0/4 dev lo && exec "$0" "$@""#;
    let mut refusals = Vec::new();
    for unshare in [&["--net"][..], &["--user", "--map-root-user", "--net"]] {
        let output = Command::new("unshare")
            .args(unshare)
            .args(["sh", "-c", script])
            .arg(&exe)
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(IN_NAMESPACE, "1")
            .output();
        let output = match output {
            Ok(output) => output,
            Err(e) => {
                eprintln!("skipping {NAME}: cannot run unshare: {e}");
                return;
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stdout.contains("running 1 test") {
            assert!(
                output.status.success() && stdout.contains("1 passed"),
                "the test failed in its network namespace:\n{stdout}\n{stderr}"
            );
            eprintln!("ran under unshare {}:\n{stderr}", unshare.join(" "));
            return;
        }
        refusals.push(format!("unshare {}: {}", unshare.join(" "), stderr.trim()));
    }
    eprintln!(
        "skipping {NAME}: no network namespace: {}",
        refusals.join("; ")
    );
}

/// After PyMOTW's socket_multicast_sender.py and socket_multicast_receiver.py, in one process.
fn multicast_exchange() {
    let group = Ipv4Addr::new(224, 3, 29, 71);
    let to = SocketAddr::from((group, 10000));
    let mut buf = [0u8; 64];

    let receiver = net::bind_udp(
        net::resolve("", 10000).unwrap(),
        &UdpOptions::default().reuse_address(true),
    )
    .unwrap();
    net::join_multicast(&receiver, group.into(), MulticastInterface::Any).unwrap();

    let sender = net::bind_udp(
        net::resolve("", 0).unwrap(),
        &UdpOptions::default().multicast_ttl(1),
    )
    .unwrap();
    sender.send_to(b"very important data", to).unwrap();
    assert!(readable(&receiver), "the group's datagram did not arrive");
    let (n, from) = receiver.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"very important data");
    assert_eq!(from.port(), sender.local_addr().unwrap().port());
    // Loopback may deliver a copy twice (once looped back, once through `lo`).
    while wait(&receiver, PollFlags::POLLIN, 50) {
        let (n, _) = receiver.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"very important data");
    }

    net::leave_multicast(&receiver, group.into(), MulticastInterface::Any).unwrap();
    sender.send_to(b"after leaving", to).unwrap();
    assert!(
        !wait(&receiver, PollFlags::POLLIN, 200),
        "a datagram arrived after leaving the group"
    );
    let e = net::leave_multicast(&receiver, group.into(), MulticastInterface::Any).unwrap_err();
    assert_eq!(
        e.kind(),
        io::ErrorKind::AddrNotAvailable,
        "leaving twice: {e}"
    );
}
