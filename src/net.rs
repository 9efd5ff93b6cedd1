//! Sockets ready to register: non-blocking, close-on-exec, and std types.
//!
//! Every socket this module returns is already in **non-blocking** mode, so a read, write,
//! accept or connect that cannot finish at once fails with
//! [`WouldBlock`](io::ErrorKind::WouldBlock) (or, for a connect, returns while the connection
//! is under way) instead of stalling the loop. Every one is also **close-on-exec**, so a child
//! process started with `fork`/`exec` does not inherit it and keep a connection open behind the
//! server's back. Where the OS allows, both flags are set by the call that creates the socket
//! (`SOCK_NONBLOCK | SOCK_CLOEXEC` to socket(2), socketpair(2) and accept4(2)), so no other
//! thread can `exec` while the descriptor lacks them; on Apple targets, which have no such
//! flags, two fcntl(2) calls follow at once.
//!
//! The sockets are the **standard library's types** ([`TcpListener`], [`TcpStream`],
//! [`UdpSocket`], [`UnixListener`], [`UnixStream`], [`UnixDatagram`]): `Read`, `Write`,
//! `AsRawFd`, `local_addr`, `set_nodelay` and the rest work as usual, and the reactor takes them
//! as they are. Only their blocking mode differs from what `TcpListener::bind` and friends give.
//!
//! Accepting costs **one system call per connection** where the OS has accept4(2) (Linux,
//! Android, the BSDs, illumos and Solaris): the accepted socket comes back non-blocking and
//! close-on-exec, with its peer's address, from that one call. There is no getpeername(2)
//! and, for TCP, no setsockopt(2): the BSDs and Linux copy `TCP_NODELAY` from the listening
//! socket to the sockets it accepts, so [`listen_tcp`] sets it once on the listener (see
//! [`ListenOptions::nodelay`]). macOS pays for two fcntl(2) calls more.
//!
//! Names and conventions follow Python's `socket` module where they can: [`resolve`] takes `""`
//! for all interfaces and `"<broadcast>"` for the broadcast address, [`ListenOptions`] turns on
//! `SO_REUSEADDR` as servers usually do, and [`UnixListenOptions::remove_stale`] does the
//! `os.unlink` that Unix-socket servers do before binding.
//!
//! ```
//! use std::io::Write;
//! use rawloop::net::{self, ListenOptions};
//!
//! let listener = net::listen_tcp(net::resolve("127.0.0.1", 0)?, &ListenOptions::default())?;
//! // Non-blocking: with no client yet, accepting would block.
//! let e = net::accept_tcp(&listener).unwrap_err();
//! assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
//!
//! // The connect is under way when connect_tcp returns. A reactor waits for the stream to
//! // become writable, then asks take_socket_error how it went.
//! let client = net::connect_tcp(listener.local_addr()?)?;
//! # use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
//! # use std::os::fd::AsFd;
//! # poll(&mut [PollFd::new(client.as_fd(), PollFlags::POLLOUT)], PollTimeout::from(5000u16))?;
//! net::take_socket_error(&client)?;
//!
//! // And accepts once the listener is readable.
//! # poll(&mut [PollFd::new(listener.as_fd(), PollFlags::POLLIN)], PollTimeout::from(5000u16))?;
//! let (mut server_side, peer) = net::accept_tcp(&listener)?;
//! assert_eq!(peer, client.local_addr()?);
//! server_side.write_all(b"hello")?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::io::{self, Read, Write};
use std::mem::{self, MaybeUninit};
use std::net::{
    IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream,
    ToSocketAddrs, UdpSocket,
};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{self as unix, UnixDatagram, UnixListener, UnixStream};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{
    self as sock, sockopt, AddressFamily, SockType, SockaddrIn, SockaddrIn6, SockaddrLike,
    SockaddrStorage, UnixAddr,
};

// ---------------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------------

/// The first address `host` and `port` resolve to, with Python's conventions for `host`:
///
/// * `""` is all interfaces, `0.0.0.0` (`INADDR_ANY`);
/// * `"<broadcast>"` is `255.255.255.255` (`INADDR_BROADCAST`);
/// * an IPv4 or IPv6 literal (`"127.0.0.1"`, `"::1"`, without brackets) is itself;
/// * anything else is a name, looked up through [`ToSocketAddrs`] (getaddrinfo(3)), which
///   blocks while it asks the resolver.
///
/// A name that resolves to no address fails with [`NotFound`](io::ErrorKind::NotFound), and
/// the message names `host:port` and the resolver's reason.
///
/// ```
/// use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
/// use rawloop::net::resolve;
///
/// assert_eq!(resolve("", 8080)?, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8080)));
/// assert_eq!(resolve("<broadcast>", 9)?, SocketAddr::from((Ipv4Addr::BROADCAST, 9)));
/// assert_eq!(resolve("::1", 53)?, SocketAddr::from((Ipv6Addr::LOCALHOST, 53)));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    let literal = match host {
        "" => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        "<broadcast>" => Some(IpAddr::V4(Ipv4Addr::BROADCAST)),
        _ => host.parse().ok(),
    };
    if let Some(ip) = literal {
        return Ok(SocketAddr::new(ip, port));
    }
    let not_found = |why: &dyn fmt::Display| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host}:{port} resolves to no address: {why}"),
        )
    };
    match (host, port).to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| not_found(&"the resolver returned none")),
        // A host that could never be looked up (one with a NUL byte, say) stays InvalidInput.
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Err(e),
        Err(e) => Err(not_found(&e)),
    }
}

/// An IPv4 or IPv6 address as the C `sockaddr` that bind(2) and connect(2) take.
enum InetAddr {
    V4(SockaddrIn),
    V6(SockaddrIn6),
}

impl InetAddr {
    fn new(addr: SocketAddr) -> InetAddr {
        match addr {
            SocketAddr::V4(a) => InetAddr::V4(a.into()),
            SocketAddr::V6(a) => InetAddr::V6(a.into()),
        }
    }

    fn family(addr: SocketAddr) -> AddressFamily {
        match addr {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        }
    }

    fn as_sockaddr(&self) -> &dyn SockaddrLike {
        match self {
            InetAddr::V4(a) => a,
            InetAddr::V6(a) => a,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Creating and accepting sockets: the only place that differs between OSes
// ---------------------------------------------------------------------------------------------

/// Where socket(2), socketpair(2) and accept4(2) take `SOCK_NONBLOCK | SOCK_CLOEXEC`, so that a
/// descriptor is born with both flags in the one call that creates it.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos",
    target_os = "solaris"
))]
mod sys {
    use super::*;
    use nix::sys::socket::SockFlag;

    const FLAGS: SockFlag = SockFlag::SOCK_NONBLOCK.union(SockFlag::SOCK_CLOEXEC);

    pub(super) fn socket(family: AddressFamily, ty: SockType) -> io::Result<OwnedFd> {
        Ok(sock::socket(family, ty, FLAGS, None)?)
    }

    pub(super) fn socketpair(ty: SockType) -> io::Result<(OwnedFd, OwnedFd)> {
        Ok(sock::socketpair(AddressFamily::Unix, ty, None, FLAGS)?)
    }

    /// accept4(2), which nix wraps without the peer's address: that would cost a
    /// getpeername(2) afterwards, so the call is made here.
    pub(super) fn accept(
        listener: BorrowedFd<'_>,
        peer: &mut MaybeUninit<libc::sockaddr_storage>,
        len: &mut libc::socklen_t,
    ) -> io::Result<OwnedFd> {
        let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: `peer` is writable for `*len` bytes (a whole sockaddr_storage), and accept4
        // writes at most `*len` bytes there and the true length into `len`.
        let fd =
            unsafe { libc::accept4(listener.as_raw_fd(), peer.as_mut_ptr().cast(), len, flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: accept4 succeeded, so `fd` is a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// Where the flags must be set after the fact (macOS and the other Apple targets): fcntl(2)
/// right after the call that creates the descriptor. Built on Linux too when testing, so that
/// its unit tests run there.
#[cfg(any(
    test,
    not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "illumos",
        target_os = "solaris"
    ))
))]
mod portable {
    use super::*;
    use nix::fcntl::FdFlag;
    use nix::sys::socket::SockFlag;

    fn finish(fd: OwnedFd) -> io::Result<OwnedFd> {
        fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        // A new socket has no status flag worth keeping (an accepted one may have inherited
        // O_NONBLOCK or O_ASYNC from its listener), so the flags are set rather than merged.
        fcntl(fd.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        Ok(fd)
    }

    pub(super) fn socket(family: AddressFamily, ty: SockType) -> io::Result<OwnedFd> {
        finish(sock::socket(family, ty, SockFlag::empty(), None)?)
    }

    pub(super) fn socketpair(ty: SockType) -> io::Result<(OwnedFd, OwnedFd)> {
        let (a, b) = sock::socketpair(AddressFamily::Unix, ty, None, SockFlag::empty())?;
        Ok((finish(a)?, finish(b)?))
    }

    /// accept(2) with the peer's address (nix's `accept` discards it), then the flags.
    pub(super) fn accept(
        listener: BorrowedFd<'_>,
        peer: &mut MaybeUninit<libc::sockaddr_storage>,
        len: &mut libc::socklen_t,
    ) -> io::Result<OwnedFd> {
        // SAFETY: `peer` is writable for `*len` bytes (a whole sockaddr_storage), and accept
        // writes at most `*len` bytes there and the true length into `len`.
        let fd = unsafe { libc::accept(listener.as_raw_fd(), peer.as_mut_ptr().cast(), len) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: accept succeeded, so `fd` is a new descriptor that nothing else owns.
        finish(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos",
    target_os = "solaris"
)))]
use portable as sys;

/// Accepts one connection: the new socket and its peer's address as the kernel wrote it
/// (`None` if the address is too short to be one: macOS reports a zero length for a
/// connection reset before it was accepted).
fn accept_raw(listener: BorrowedFd<'_>) -> io::Result<(OwnedFd, Option<SockaddrStorage>)> {
    let mut peer = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    loop {
        let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        match sys::accept(listener, &mut peer, &mut len) {
            Ok(fd) => {
                // SAFETY: `peer` is initialised (zeroed, then partly overwritten by accept),
                // and from_raw reads at most `len` bytes of it, refusing a `len` larger than
                // a sockaddr_storage.
                let peer = unsafe { SockaddrStorage::from_raw(peer.as_ptr().cast(), Some(len)) };
                return Ok((fd, peer));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// listen(2), with the backlog as the caller gave it.
fn listen(fd: &OwnedFd, backlog: u32) -> io::Result<()> {
    // nix's `Backlog` refuses anything above the C headers' SOMAXCONN (128 on macOS, FreeBSD
    // and musl), while the kernels cap the backlog at their own limit, which an administrator
    // may have raised (net.core.somaxconn, kern.ipc.somaxconn). listen(2) is called directly so
    // that the requested backlog reaches the kernel.
    let backlog = libc::c_int::try_from(backlog).unwrap_or(libc::c_int::MAX);
    // SAFETY: listen takes a descriptor, open for the whole call, and an integer.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// connect(2) for a new non-blocking socket: EINPROGRESS means the connection is under way.
fn start_connect(fd: &OwnedFd, addr: &dyn SockaddrLike) -> io::Result<()> {
    match sock::connect(fd.as_raw_fd(), addr) {
        // EINTR: POSIX says the connection goes on asynchronously, as after EINPROGRESS.
        Ok(()) | Err(Errno::EINPROGRESS) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn set_reuse_port(fd: &impl AsFd) -> io::Result<()> {
    #[cfg(not(any(target_os = "illumos", target_os = "solaris")))]
    return Ok(sock::setsockopt(fd, sockopt::ReusePort, &true)?);
    #[cfg(any(target_os = "illumos", target_os = "solaris"))]
    {
        let _ = fd;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "SO_REUSEPORT is not available on this OS",
        ))
    }
}

/// The peer of an accepted TCP connection as a std address.
fn inet_peer(peer: Option<SockaddrStorage>) -> io::Result<SocketAddr> {
    let peer = peer.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "the connection was reset before it was accepted (accept returned no peer address)",
        )
    })?;
    if let Some(v4) = peer.as_sockaddr_in() {
        return Ok(SocketAddrV4::from(*v4).into());
    }
    if let Some(v6) = peer.as_sockaddr_in6() {
        return Ok(SocketAddrV6::from(*v6).into());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("accept returned a peer address that is not IPv4 or IPv6: {peer}"),
    ))
}

/// The peer of an accepted Unix-domain connection as a std address.
fn unix_peer(peer: Option<SockaddrStorage>) -> io::Result<unix::SocketAddr> {
    let peer = peer.as_ref().and_then(SockaddrStorage::as_unix_addr);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(name) = peer.and_then(UnixAddr::as_abstract) {
        #[cfg(target_os = "android")]
        use std::os::android::net::SocketAddrExt;
        #[cfg(target_os = "linux")]
        use std::os::linux::net::SocketAddrExt;
        return unix::SocketAddr::from_abstract_name(name);
    }
    // Some kernels hand back the whole `sun_path`, NUL padding included.
    let path = peer.and_then(UnixAddr::path).map_or(&[][..], |p| {
        let bytes = p.as_os_str().as_bytes();
        bytes.split(|&b| b == 0).next().unwrap_or_default()
    });
    // std has no constructor for an unnamed address, but an empty pathname is one: its length
    // is that of the family field alone, which is what "unnamed" means to std (and to the
    // kernel). Should std ever refuse that, an unbound socket's own address is unnamed too.
    unix::SocketAddr::from_pathname(Path::new(std::ffi::OsStr::from_bytes(path)))
        .or_else(|_| UnixDatagram::unbound()?.local_addr())
}

// ---------------------------------------------------------------------------------------------
// TCP
// ---------------------------------------------------------------------------------------------

/// How [`listen_tcp`] sets up a listening socket. Start from [`ListenOptions::default()`] and
/// change what you need:
///
/// ```
/// use rawloop::net::ListenOptions;
///
/// let options = ListenOptions::default().reuse_port(true).backlog(128);
/// assert!(options.reuse_address && options.nodelay);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenOptions {
    /// `SO_REUSEADDR`: bind even while connections from an earlier run of the server linger in
    /// TIME_WAIT. On by default, as nearly every server wants.
    pub reuse_address: bool,
    /// `SO_REUSEPORT`: let several sockets, each with this option, listen on the same address
    /// and port (on Linux the kernel then spreads connections across them; FreeBSD needs
    /// `SO_REUSEPORT_LB` for that). Off by default, so that a second server on a port in use
    /// fails with [`AddrInUse`](io::ErrorKind::AddrInUse). Unsupported on illumos and Solaris.
    pub reuse_port: bool,
    /// The length of the queue of connections not yet accepted, as given to listen(2). 1024
    /// by default; the kernel caps it at its limit (`net.core.somaxconn` on Linux,
    /// `kern.ipc.somaxconn` on macOS and the BSDs).
    pub backlog: u32,
    /// `TCP_NODELAY` on the listening socket: on by default. Linux, macOS and the BSDs copy
    /// it to every socket the listener accepts, so accepted connections send small writes at
    /// once (no Nagle delay) without a setsockopt(2) each.
    pub nodelay: bool,
    /// `IPV6_V6ONLY` for an IPv6 address: `Some(true)` accepts IPv6 connections only,
    /// `Some(false)` IPv4 ones too (as `::ffff:a.b.c.d`); `None`, the default, keeps the OS
    /// default (dual-stack on Linux and macOS, IPv6 only on the BSDs). Ignored for IPv4.
    pub only_v6: Option<bool>,
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions {
            reuse_address: true,
            reuse_port: false,
            backlog: 1024,
            nodelay: true,
            only_v6: None,
        }
    }
}

impl ListenOptions {
    /// Sets [`reuse_address`](ListenOptions#structfield.reuse_address) (`SO_REUSEADDR`).
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.reuse_address = on;
        self
    }

    /// Sets [`reuse_port`](ListenOptions#structfield.reuse_port) (`SO_REUSEPORT`).
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// Sets [`backlog`](ListenOptions#structfield.backlog).
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Sets [`nodelay`](ListenOptions#structfield.nodelay) (`TCP_NODELAY`).
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// Sets [`only_v6`](ListenOptions#structfield.only_v6) (`IPV6_V6ONLY`) to `Some(on)`.
    pub fn only_v6(mut self, on: bool) -> Self {
        self.only_v6 = Some(on);
        self
    }
}

/// A TCP socket listening on `addr` (IPv4 or IPv6), set up as `options` say, non-blocking and
/// close-on-exec. Port 0 picks a free port: ask the listener's `local_addr()` which.
///
/// Like Python's `socket.create_server`: socket, setsockopt for each option, bind, listen.
///
/// ```no_run
/// use rawloop::net::{listen_tcp, resolve, ListenOptions};
///
/// // All interfaces, port 8080, as Python's `sock.bind(('', 8080))`.
/// let listener = listen_tcp(resolve("", 8080)?, &ListenOptions::default())?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn listen_tcp(addr: SocketAddr, options: &ListenOptions) -> io::Result<TcpListener> {
    let fd = sys::socket(InetAddr::family(addr), SockType::Stream)?;
    if options.reuse_address {
        sock::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    }
    if options.reuse_port {
        set_reuse_port(&fd)?;
    }
    if let (SocketAddr::V6(_), Some(only)) = (addr, options.only_v6) {
        sock::setsockopt(&fd, sockopt::Ipv6V6Only, &only)?;
    }
    if options.nodelay {
        sock::setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    }
    sock::bind(fd.as_raw_fd(), InetAddr::new(addr).as_sockaddr())?;
    listen(&fd, options.backlog)?;
    Ok(TcpListener::from(fd))
}

/// Accepts a connection waiting on `listener`: the new stream, non-blocking and close-on-exec,
/// and the client's address. With no connection waiting, fails with
/// [`WouldBlock`](io::ErrorKind::WouldBlock), provided the listener is non-blocking (those
/// from [`listen_tcp`] are); on a blocking one it waits for a connection.
///
/// One system call, accept4(2), where the OS has it (Linux, Android, FreeBSD, DragonFly,
/// NetBSD, OpenBSD, illumos, Solaris); accept(2) and two fcntl(2) calls elsewhere (macOS).
/// The stream has `TCP_NODELAY` if the listener has (see [`ListenOptions::nodelay`]).
///
/// A connection reset before it was accepted may be reported as
/// [`ConnectionAborted`](io::ErrorKind::ConnectionAborted) (macOS gives no address for it):
/// skip it and accept the next one. An interrupted call is retried.
pub fn accept_tcp(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let (fd, peer) = accept_raw(listener.as_fd())?;
    Ok((TcpStream::from(fd), inet_peer(peer)?))
}

/// Starts a TCP connection to `addr` without waiting for it: the returned stream is
/// non-blocking and close-on-exec, and its connect(2) is in progress (as after Python's
/// `sock.connect_ex()` on a non-blocking socket returned `EINPROGRESS`).
///
/// Register the stream for writable readiness. Once it is reported, call
/// [`take_socket_error`] (or std's `TcpStream::take_error`) once: `Ok` means connected, an
/// error (`ConnectionRefused`, `TimedOut`, ...) means the connect failed. Until then reads and
/// writes fail with `WouldBlock` or `NotConnected`. Errors known at once (no route, no free
/// port) are returned by this call.
///
/// ```no_run
/// use rawloop::net::{connect_tcp, resolve};
///
/// let stream = connect_tcp(resolve("example.com", 80)?)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn connect_tcp(addr: SocketAddr) -> io::Result<TcpStream> {
    let fd = sys::socket(InetAddr::family(addr), SockType::Stream)?;
    start_connect(&fd, InetAddr::new(addr).as_sockaddr())?;
    Ok(TcpStream::from(fd))
}

/// Reads and clears the socket's pending error (`SO_ERROR`): `Ok(())` when there is none.
///
/// Call it once when a socket from [`connect_tcp`] or [`connect_unix`] becomes writable:
/// `Ok` means the connection is established, an error is why it failed (for example
/// [`ConnectionRefused`](io::ErrorKind::ConnectionRefused)). It also reports an asynchronous
/// error on a UDP socket (an ICMP "port unreachable" after a send, on Linux).
pub fn take_socket_error(socket: &impl AsFd) -> io::Result<()> {
    match sock::getsockopt(socket, sockopt::SocketError)? {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

// ---------------------------------------------------------------------------------------------
// The Listener trait
// ---------------------------------------------------------------------------------------------

/// A listening socket that accepts connections without blocking: what an acceptor (a
/// registration that accepts every pending connection when its listener is readable) is
/// generic over. Implemented for [`TcpListener`] (with [`accept_tcp`]) and [`UnixListener`]
/// (with [`accept_unix`]).
pub trait Listener: AsRawFd + 'static {
    /// An accepted connection.
    type Stream: Read + Write + AsFd + AsRawFd + 'static;
    /// The peer's address, for log lines.
    type Addr: fmt::Debug + Clone + 'static;

    /// Accepts one pending connection, non-blocking and close-on-exec, or fails with
    /// [`WouldBlock`](io::ErrorKind::WouldBlock) when none is waiting.
    fn accept_nonblocking(&self) -> io::Result<(Self::Stream, Self::Addr)>;
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    type Addr = SocketAddr;

    fn accept_nonblocking(&self) -> io::Result<(TcpStream, SocketAddr)> {
        accept_tcp(self)
    }
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    type Addr = unix::SocketAddr;

    fn accept_nonblocking(&self) -> io::Result<(UnixStream, unix::SocketAddr)> {
        accept_unix(self)
    }
}

// ---------------------------------------------------------------------------------------------
// UDP
// ---------------------------------------------------------------------------------------------

/// How [`bind_udp`] sets up a UDP socket. Everything is off or left to the OS by default;
/// start from [`UdpOptions::default()`] and change what you need:
///
/// ```
/// use rawloop::net::UdpOptions;
///
/// // A multicast sender whose datagrams stay on the local network.
/// let sender = UdpOptions::default().multicast_ttl(1);
/// // A multicast receiver that shares the group's port with other receivers on the host.
/// let receiver = UdpOptions::default().reuse_address(true);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UdpOptions {
    /// `SO_REUSEADDR`: on Linux, lets several sockets with this option bind the same port;
    /// how multicast receivers on one host share a group's port (on macOS and the BSDs, only
    /// when they bind a multicast address; use [`reuse_port`](UdpOptions#structfield.reuse_port)
    /// for a wildcard address there).
    pub reuse_address: bool,
    /// `SO_REUSEPORT`: lets several sockets with this option bind the same address and port.
    /// Unsupported on illumos and Solaris.
    pub reuse_port: bool,
    /// `SO_BROADCAST`: allows sending to a broadcast address such as `255.255.255.255`
    /// (`resolve("<broadcast>", port)`).
    pub broadcast: bool,
    /// The time-to-live of outgoing multicast datagrams (`IP_MULTICAST_TTL`, or
    /// `IPV6_MULTICAST_HOPS` for IPv6): 1, the OS default, keeps them on the local network.
    /// `None` keeps the OS default.
    pub multicast_ttl: Option<u8>,
    /// Whether this host's own members of a group receive the multicast datagrams this socket
    /// sends (`IP_MULTICAST_LOOP` or `IPV6_MULTICAST_LOOP`). `None` keeps the OS default (on).
    pub multicast_loop: Option<bool>,
    /// `IPV6_V6ONLY` for an IPv6 address (see [`ListenOptions::only_v6`]). Ignored for IPv4.
    pub only_v6: Option<bool>,
}

impl UdpOptions {
    /// Sets [`reuse_address`](UdpOptions#structfield.reuse_address) (`SO_REUSEADDR`).
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.reuse_address = on;
        self
    }

    /// Sets [`reuse_port`](UdpOptions#structfield.reuse_port) (`SO_REUSEPORT`).
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// Sets [`broadcast`](UdpOptions#structfield.broadcast) (`SO_BROADCAST`).
    pub fn broadcast(mut self, on: bool) -> Self {
        self.broadcast = on;
        self
    }

    /// Sets [`multicast_ttl`](UdpOptions#structfield.multicast_ttl) to `Some(ttl)`.
    pub fn multicast_ttl(mut self, ttl: u8) -> Self {
        self.multicast_ttl = Some(ttl);
        self
    }

    /// Sets [`multicast_loop`](UdpOptions#structfield.multicast_loop) to `Some(on)`.
    pub fn multicast_loop(mut self, on: bool) -> Self {
        self.multicast_loop = Some(on);
        self
    }

    /// Sets [`only_v6`](UdpOptions#structfield.only_v6) (`IPV6_V6ONLY`) to `Some(on)`.
    pub fn only_v6(mut self, on: bool) -> Self {
        self.only_v6 = Some(on);
        self
    }
}

/// A UDP socket bound to `addr`, set up as `options` say (every option is applied before
/// bind(2)), non-blocking and close-on-exec. Port 0 picks a free port.
///
/// A multicast receiver, after PyMOTW's `socket_multicast_receiver.py`:
///
/// ```no_run
/// use std::net::Ipv4Addr;
/// use rawloop::net::{bind_udp, join_multicast, resolve, MulticastInterface, UdpOptions};
///
/// let socket = bind_udp(resolve("", 10000)?, &UdpOptions::default().reuse_address(true))?;
/// join_multicast(&socket, Ipv4Addr::new(224, 3, 29, 71).into(), MulticastInterface::Any)?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// and its sender, one call:
///
/// ```no_run
/// use rawloop::net::{bind_udp, resolve, UdpOptions};
///
/// let socket = bind_udp(resolve("", 0)?, &UdpOptions::default().multicast_ttl(1))?;
/// socket.send_to(b"very important data", ("224.3.29.71", 10000))?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn bind_udp(addr: SocketAddr, options: &UdpOptions) -> io::Result<UdpSocket> {
    let socket = UdpSocket::from(sys::socket(InetAddr::family(addr), SockType::Datagram)?);
    if options.reuse_address {
        sock::setsockopt(&socket, sockopt::ReuseAddr, &true)?;
    }
    if options.reuse_port {
        set_reuse_port(&socket)?;
    }
    if options.broadcast {
        sock::setsockopt(&socket, sockopt::Broadcast, &true)?;
    }
    match addr {
        SocketAddr::V4(_) => {
            if let Some(ttl) = options.multicast_ttl {
                sock::setsockopt(&socket, sockopt::IpMulticastTtl, &ttl)?;
            }
            if let Some(on) = options.multicast_loop {
                sock::setsockopt(&socket, sockopt::IpMulticastLoop, &on)?;
            }
        }
        SocketAddr::V6(_) => {
            if let Some(only) = options.only_v6 {
                sock::setsockopt(&socket, sockopt::Ipv6V6Only, &only)?;
            }
            if let Some(hops) = options.multicast_ttl {
                sock::setsockopt(&socket, sockopt::Ipv6MulticastHops, &hops.into())?;
            }
            if let Some(on) = options.multicast_loop {
                // nix has no IPV6_MULTICAST_LOOP option; std sets it, with the one setsockopt.
                socket.set_multicast_loop_v6(on)?;
            }
        }
    }
    sock::bind(socket.as_raw_fd(), InetAddr::new(addr).as_sockaddr())?;
    Ok(socket)
}

/// The interface a multicast membership is on, for [`join_multicast`] and [`leave_multicast`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum MulticastInterface {
    /// Whichever interface the OS routes the group to (`INADDR_ANY` for IPv4, index 0 for
    /// IPv6), as Python's `struct.pack('4sL', group, socket.INADDR_ANY)`.
    #[default]
    Any,
    /// IPv4 groups: the interface that has this address.
    Address(Ipv4Addr),
    /// IPv6 groups: the interface with this index (see if_nametoindex(3)).
    Index(u32),
}

impl From<Ipv4Addr> for MulticastInterface {
    fn from(address: Ipv4Addr) -> MulticastInterface {
        MulticastInterface::Address(address)
    }
}

impl From<u32> for MulticastInterface {
    fn from(index: u32) -> MulticastInterface {
        MulticastInterface::Index(index)
    }
}

/// Joins the multicast `group` (IPv4 or IPv6) on `interface`: datagrams sent to the group and
/// the socket's port arrive at `socket` from then on. `IP_ADD_MEMBERSHIP` or
/// `IPV6_JOIN_GROUP`, through std's [`UdpSocket::join_multicast_v4`] and
/// [`UdpSocket::join_multicast_v6`], which this only chooses between.
///
/// An IPv4 group takes [`MulticastInterface::Any`] or [`Address`](MulticastInterface::Address),
/// an IPv6 group `Any` or [`Index`](MulticastInterface::Index); the other combinations fail with
/// [`InvalidInput`](io::ErrorKind::InvalidInput).
pub fn join_multicast(
    socket: &UdpSocket,
    group: IpAddr,
    interface: MulticastInterface,
) -> io::Result<()> {
    match (group, interface) {
        (IpAddr::V4(group), MulticastInterface::Any) => {
            socket.join_multicast_v4(&group, &Ipv4Addr::UNSPECIFIED)
        }
        (IpAddr::V4(group), MulticastInterface::Address(address)) => {
            socket.join_multicast_v4(&group, &address)
        }
        (IpAddr::V6(group), MulticastInterface::Any) => socket.join_multicast_v6(&group, 0),
        (IpAddr::V6(group), MulticastInterface::Index(index)) => {
            socket.join_multicast_v6(&group, index)
        }
        (group, interface) => Err(mismatched_interface(group, interface)),
    }
}

/// Leaves a multicast `group` joined with [`join_multicast`] (with the same `interface`).
/// `IP_DROP_MEMBERSHIP` or `IPV6_LEAVE_GROUP`, through std's [`UdpSocket::leave_multicast_v4`]
/// and [`UdpSocket::leave_multicast_v6`]. Closing the socket leaves all its groups.
pub fn leave_multicast(
    socket: &UdpSocket,
    group: IpAddr,
    interface: MulticastInterface,
) -> io::Result<()> {
    match (group, interface) {
        (IpAddr::V4(group), MulticastInterface::Any) => {
            socket.leave_multicast_v4(&group, &Ipv4Addr::UNSPECIFIED)
        }
        (IpAddr::V4(group), MulticastInterface::Address(address)) => {
            socket.leave_multicast_v4(&group, &address)
        }
        (IpAddr::V6(group), MulticastInterface::Any) => socket.leave_multicast_v6(&group, 0),
        (IpAddr::V6(group), MulticastInterface::Index(index)) => {
            socket.leave_multicast_v6(&group, index)
        }
        (group, interface) => Err(mismatched_interface(group, interface)),
    }
}

fn mismatched_interface(group: IpAddr, interface: MulticastInterface) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{interface:?} cannot name the interface for group {group}: IPv4 groups take an \
             interface address, IPv6 groups an interface index"
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Unix domain
// ---------------------------------------------------------------------------------------------

/// How [`listen_unix`] sets up a listening Unix-domain socket. Start from
/// [`UnixListenOptions::default()`] and change what you need:
///
/// ```
/// use rawloop::net::UnixListenOptions;
///
/// let options = UnixListenOptions::default().remove_stale(true);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnixListenOptions {
    /// Remove a socket file already at the path before binding, as Unix-socket servers do with
    /// `os.unlink(path)`: the file a previous run left behind would make bind(2) fail with
    /// [`AddrInUse`](io::ErrorKind::AddrInUse). Only a socket is removed (a live server's too:
    /// nothing checks whether one still listens there); any other kind of file, a symbolic
    /// link included, is left alone and reported as `AddrInUse`. Off by default.
    pub remove_stale: bool,
    /// The length of the queue of connections not yet accepted (see
    /// [`ListenOptions::backlog`]). 1024 by default.
    pub backlog: u32,
}

impl Default for UnixListenOptions {
    fn default() -> UnixListenOptions {
        UnixListenOptions {
            remove_stale: false,
            backlog: 1024,
        }
    }
}

impl UnixListenOptions {
    /// Sets [`remove_stale`](UnixListenOptions#structfield.remove_stale).
    pub fn remove_stale(mut self, on: bool) -> Self {
        self.remove_stale = on;
        self
    }

    /// Sets [`backlog`](UnixListenOptions#structfield.backlog).
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }
}

/// A Unix-domain stream socket listening at `path`, set up as `options` say, non-blocking and
/// close-on-exec. The socket file stays when the listener is dropped; remove it yourself, or
/// let the next run's [`remove_stale`](UnixListenOptions#structfield.remove_stale) do it.
///
/// ```no_run
/// use rawloop::net::{listen_unix, UnixListenOptions};
///
/// let listener = listen_unix("/tmp/echo.sock", &UnixListenOptions::default().remove_stale(true))?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn listen_unix(
    path: impl AsRef<Path>,
    options: &UnixListenOptions,
) -> io::Result<UnixListener> {
    let path = path.as_ref();
    if options.remove_stale {
        remove_socket_file(path)?;
    }
    let fd = sys::socket(AddressFamily::Unix, SockType::Stream)?;
    sock::bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    listen(&fd, options.backlog)?;
    Ok(UnixListener::from(fd))
}

/// Removes the socket file at `path`, if there is one; refuses to remove anything else.
fn remove_socket_file(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        Ok(meta) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "{} exists and is not a socket ({:?}); not removing it",
                path.display(),
                meta.file_type()
            ),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Accepts a connection waiting on `listener`: the new stream, non-blocking and close-on-exec,
/// and the client's address, which is usually unnamed (clients seldom bind a path). With no
/// connection waiting, fails with [`WouldBlock`](io::ErrorKind::WouldBlock).
///
/// One system call where the OS has accept4(2), accept(2) and two fcntl(2) calls elsewhere,
/// as [`accept_tcp`]. The address is a std [`SocketAddr`](unix::SocketAddr), built from what
/// the kernel wrote without another system call: a pathname, an abstract name (Linux), or
/// unnamed.
pub fn accept_unix(listener: &UnixListener) -> io::Result<(UnixStream, unix::SocketAddr)> {
    let (fd, peer) = accept_raw(listener.as_fd())?;
    Ok((UnixStream::from(fd), unix_peer(peer)?))
}

/// Connects to the Unix-domain stream socket at `path` without blocking; the stream is
/// non-blocking and close-on-exec.
///
/// A Unix-domain connect does not wait for the server to accept: it succeeds at once if the
/// listener's queue has room, and the stream is ready. When the queue is full, Linux fails
/// with [`WouldBlock`](io::ErrorKind::WouldBlock) (EAGAIN: nothing was started, so call
/// again later), macOS and the BSDs with [`ConnectionRefused`](io::ErrorKind::ConnectionRefused).
/// Should an OS answer EINPROGRESS, the connect is under way as with [`connect_tcp`]: wait for
/// writable, then [`take_socket_error`].
pub fn connect_unix(path: impl AsRef<Path>) -> io::Result<UnixStream> {
    let fd = sys::socket(AddressFamily::Unix, SockType::Stream)?;
    start_connect(&fd, &UnixAddr::new(path.as_ref())?)?;
    Ok(UnixStream::from(fd))
}

/// A Unix-domain datagram socket bound to `path` (which must not exist yet), non-blocking and
/// close-on-exec. Peers send to it with `send_to(buf, path)`.
pub fn bind_unix_datagram(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
    let fd = sys::socket(AddressFamily::Unix, SockType::Datagram)?;
    sock::bind(fd.as_raw_fd(), &UnixAddr::new(path.as_ref())?)?;
    Ok(UnixDatagram::from(fd))
}

/// A Unix-domain datagram socket bound to no path, non-blocking and close-on-exec: for
/// sending with `send_to`, or for `connect`ing to one peer. It cannot be answered unless it
/// is bound.
pub fn unbound_unix_datagram() -> io::Result<UnixDatagram> {
    let fd = sys::socket(AddressFamily::Unix, SockType::Datagram)?;
    Ok(UnixDatagram::from(fd))
}

/// A pair of connected Unix-domain stream sockets, both non-blocking and close-on-exec: what
/// one end writes, the other reads. For talking to a thread or a child process, or for
/// waking a loop.
pub fn socketpair() -> io::Result<(UnixStream, UnixStream)> {
    let (a, b) = sys::socketpair(SockType::Stream)?;
    Ok((UnixStream::from(a), UnixStream::from(b)))
}

/// A pair of connected Unix-domain datagram sockets, both non-blocking and close-on-exec:
/// each `send` on one end is one `recv` on the other, message boundaries kept.
pub fn datagram_socketpair() -> io::Result<(UnixDatagram, UnixDatagram)> {
    let (a, b) = sys::socketpair(SockType::Datagram)?;
    Ok((UnixDatagram::from(a), UnixDatagram::from(b)))
}

// ---------------------------------------------------------------------------------------------
// Descriptors made elsewhere
// ---------------------------------------------------------------------------------------------

/// Turns non-blocking mode on or off for `fd` (`O_NONBLOCK`, with fcntl(2)).
///
/// Sockets from this module are non-blocking already. Use this for a descriptor you made
/// yourself, such as standard input or a pipe, before registering it: the reactor never
/// changes a descriptor's blocking mode behind its owner's back. Mind that the mode belongs
/// to the open file, which other processes may share (a terminal on standard input is one),
/// and restore it if they could be surprised.
///
/// ```
/// use rawloop::net::set_nonblocking;
///
/// set_nonblocking(std::io::stdin(), true)?;
/// # set_nonblocking(std::io::stdin(), false)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn set_nonblocking(fd: impl AsFd, on: bool) -> io::Result<()> {
    let fd = fd.as_fd();
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    let wanted = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags - OFlag::O_NONBLOCK
    };
    if wanted != flags {
        fcntl(fd, FcntlArg::F_SETFL(wanted))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::FdFlag;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

    fn is_nonblocking_cloexec(fd: &impl AsFd) -> bool {
        let fl = OFlag::from_bits_retain(fcntl(fd.as_fd(), FcntlArg::F_GETFL).unwrap());
        let fd_flags = FdFlag::from_bits_retain(fcntl(fd.as_fd(), FcntlArg::F_GETFD).unwrap());
        fl.contains(OFlag::O_NONBLOCK) && fd_flags.contains(FdFlag::FD_CLOEXEC)
    }

    /// The fallback that macOS uses, run on the build machine: the same flags, set afterwards.
    #[test]
    fn portable_path_sets_both_flags() -> io::Result<()> {
        let listener = portable::socket(AddressFamily::Inet, SockType::Stream)?;
        assert!(is_nonblocking_cloexec(&listener));
        sock::bind(
            listener.as_raw_fd(),
            InetAddr::new("127.0.0.1:0".parse().unwrap()).as_sockaddr(),
        )?;
        listen(&listener, 8)?;
        let listener = TcpListener::from(listener);

        let mut peer = MaybeUninit::zeroed();
        let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let e = portable::accept(listener.as_fd(), &mut peer, &mut len).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);

        // A blocking client: connected (queued on the listener) when connect returns.
        let client = TcpStream::connect(listener.local_addr()?)?;
        let mut ready = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        assert_eq!(poll(&mut ready, PollTimeout::from(5000u16))?, 1);
        let accepted = portable::accept(listener.as_fd(), &mut peer, &mut len)?;
        assert!(is_nonblocking_cloexec(&accepted));
        // SAFETY: accept wrote `len` bytes of `peer`, which was zeroed before.
        let addr = unsafe { SockaddrStorage::from_raw(peer.as_ptr().cast(), Some(len)) };
        assert_eq!(inet_peer(addr)?, client.local_addr()?);

        let (a, b) = portable::socketpair(SockType::Stream)?;
        assert!(is_nonblocking_cloexec(&a) && is_nonblocking_cloexec(&b));
        Ok(())
    }

    #[test]
    fn short_peer_address_is_an_aborted_connection() {
        let e = inet_peer(None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
        assert!(unix_peer(None).unwrap().is_unnamed());
    }
}
