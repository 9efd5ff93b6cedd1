//! Running servers: on this thread, on N threads (one reactor each), or in N pre-forked
//! worker processes supervised by this one.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::datagram::DatagramServe;
use super::stream::StreamConn;
use super::{serve, DatagramHandler, Limits, Peer, StreamHandler};
use crate::net::{self, ListenOptions, UdpOptions, UnixListenOptions};
use crate::{
    AcceptOptions, Acceptor, AnySelector, Backend, Context, Handler, Interest, Reactor, Remote,
};

/// Decides whether a connection from a peer is served (Python's `verify_request`).
type Verify = Arc<dyn Fn(&Peer) -> bool + Send + Sync>;

/// What every kind of server is configured with.
#[derive(Clone)]
struct Options {
    backend: Backend,
    limits: Limits,
    threads: usize,
    processes: usize,
    grace: Duration,
    signals: bool,
    verify: Option<Verify>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            backend: Backend::default(),
            limits: Limits::default(),
            threads: 1,
            processes: 0,
            grace: Duration::from_secs(10),
            signals: true,
            verify: None,
        }
    }
}

impl Options {
    /// How many reactors serve: the worker processes, or else the threads.
    fn workers(&self) -> usize {
        if self.processes > 0 {
            self.processes
        } else {
            self.threads
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("backend", &self.backend)
            .field("limits", &self.limits)
            .field("threads", &self.threads)
            .field("processes", &self.processes)
            .field("grace", &self.grace)
            .field("signals", &self.signals)
            .field("verify", &self.verify.is_some())
            .finish()
    }
}

macro_rules! common_options {
    ($server:ty) => {
        impl $server {
            /// The backend every reactor of the server runs on (default: the build's).
            pub fn backend(mut self, backend: Backend) -> Self {
                self.options.backend = backend;
                self
            }

            /// Serves on `n` threads, each with its own reactor (Python's `ThreadingMixIn`, done
            /// as an event loop does it). A TCP or UDP server gives each thread a socket of its
            /// own on the same port (`SO_REUSEPORT`), so the kernel spreads the connections and
            /// nothing is shared between the threads on the hot path; a Unix-domain server
            /// shares one socket. The calling thread watches the signals and waits.
            pub fn threads(mut self, n: usize) -> Self {
                self.options.threads = n.max(1);
                self
            }

            /// Serves in `n` worker processes forked from this one (Python's `ForkingMixIn`,
            /// pre-forked), each with its own reactor and a listening socket of its own that
            /// this process bound (TCP and UDP: `SO_REUSEPORT`, so the kernel spreads the
            /// connections; Unix: one shared socket). This process supervises them: a worker
            /// that dies is replaced by one serving the same socket; SIGTERM
            /// or SIGINT (or [`ServerHandle::shutdown`]) shuts every worker down gracefully and
            /// waits for them. On Linux a worker also gets SIGTERM if this process dies.
            ///
            /// Call it from a program that has not started threads of its own yet: a forked
            /// child has only the thread that forked.
            pub fn processes(mut self, n: usize) -> Self {
                self.options.processes = n;
                self
            }

            /// After SIGINT, SIGTERM or [`ServerHandle::shutdown`], how long open connections may
            /// take to finish (default 10 s). A second signal stops at once.
            pub fn grace(mut self, grace: Duration) -> Self {
                self.options.grace = grace;
                self
            }

            /// Whether the server handles SIGINT and SIGTERM itself (default: yes). A program
            /// that embeds the server among other work turns this off and calls
            /// [`ServerHandle::shutdown`].
            pub fn handle_signals(mut self, on: bool) -> Self {
                self.options.signals = on;
                self
            }
        }
    };
}

/// Where a stream server listens.
#[derive(Clone, Debug)]
enum StreamAddress {
    Tcp(SocketAddr, ListenOptions),
    Unix(PathBuf),
}

/// A TCP or Unix-domain stream server (Python's `TCPServer` and `UnixStreamServer`), whose
/// connections each get a [`StreamHandler`]. Configure, [`bind`](StreamServer::bind), then
/// serve:
///
/// ```no_run
/// use std::io;
/// use rawloop::server::{Stream, StreamHandler, StreamServer};
///
/// struct Echo;
///
/// impl StreamHandler for Echo {
///     fn handle(&mut self, stream: &mut Stream<'_, '_>) -> io::Result<()> {
///         let data = stream.take();
///         stream.write(&data)
///     }
/// }
///
/// let server = StreamServer::tcp(rawloop::net::resolve("", 9999)?).threads(4).bind()?;
/// server.serve_forever(|| Echo)?; // until SIGINT or SIGTERM
/// # Ok::<(), io::Error>(())
/// ```
#[derive(Debug)]
pub struct StreamServer {
    address: StreamAddress,
    options: Options,
}

common_options!(StreamServer);

impl StreamServer {
    /// A TCP server on `addr` (port 0 picks a free one).
    pub fn tcp(addr: SocketAddr) -> StreamServer {
        StreamServer {
            address: StreamAddress::Tcp(addr, ListenOptions::default()),
            options: Options::default(),
        }
    }

    /// A Unix-domain stream server at `path`; a stale socket file left there is replaced.
    pub fn unix(path: impl Into<PathBuf>) -> StreamServer {
        StreamServer {
            address: StreamAddress::Unix(path.into()),
            options: Options::default(),
        }
    }

    /// The idle timeout, connection cap and line limit of every connection.
    pub fn limits(mut self, limits: Limits) -> StreamServer {
        self.options.limits = limits;
        self
    }

    /// Serves only the peers `verify` accepts; the others are refused at once (Python's
    /// `verify_request`).
    pub fn verify_request(
        mut self,
        verify: impl Fn(&Peer) -> bool + Send + Sync + 'static,
    ) -> StreamServer {
        self.options.verify = Some(Arc::new(verify));
        self
    }

    /// Binds the listening socket(s) now, so that an address in use is reported here and
    /// port 0 has its number before serving starts.
    pub fn bind(self) -> io::Result<BoundStreamServer> {
        let StreamServer { address, options } = self;
        let listeners = match &address {
            StreamAddress::Tcp(addr, listen) => {
                // A socket of its own for every thread or worker process (SO_REUSEPORT): the
                // kernel spreads the connections, nothing is shared, and a worker process that
                // dies leaves its socket (and its queue) to its replacement.
                bind_tcp(*addr, listen, options.workers())?
                    .into_iter()
                    .map(StreamListener::Tcp)
                    .collect()
            }
            StreamAddress::Unix(path) => {
                let unix = UnixListenOptions::default().remove_stale(true);
                let listener = net::listen_unix(path, &unix)
                    .map_err(|e| context(e, &format!("cannot listen on {}", path.display())))?;
                // One socket shared by every thread or worker (Unix sockets have no
                // SO_REUSEPORT).
                let copies = options.workers();
                let mut all = Vec::with_capacity(copies);
                for _ in 1..copies {
                    all.push(StreamListener::Unix(listener.try_clone()?));
                }
                all.push(StreamListener::Unix(listener));
                all
            }
        };
        Ok(BoundStreamServer {
            address,
            handle: ServerHandle::new(options.grace),
            options,
            listeners,
        })
    }
}

/// `copies` TCP listeners on `addr`, sharing the port with `SO_REUSEPORT` when more than one.
fn bind_tcp(
    addr: SocketAddr,
    listen: &ListenOptions,
    copies: usize,
) -> io::Result<Vec<TcpListener>> {
    let listen = listen.clone().reuse_port(copies > 1);
    let first = net::listen_tcp(addr, &listen)
        .map_err(|e| context(e, &format!("cannot listen on {addr}")))?;
    let bound = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..copies {
        all.push(net::listen_tcp(bound, &listen)?);
    }
    Ok(all)
}

fn context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

enum StreamListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl StreamListener {
    fn try_clone(&self) -> io::Result<StreamListener> {
        Ok(match self {
            StreamListener::Tcp(l) => StreamListener::Tcp(l.try_clone()?),
            StreamListener::Unix(l) => StreamListener::Unix(l.try_clone()?),
        })
    }
}

/// A [`StreamServer`] whose socket is bound, ready to serve.
pub struct BoundStreamServer {
    address: StreamAddress,
    options: Options,
    listeners: Vec<StreamListener>,
    handle: ServerHandle,
}

impl fmt::Debug for BoundStreamServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundStreamServer")
            .field("address", &self.address)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl BoundStreamServer {
    /// The TCP address it listens on (`None` for a Unix-domain server).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self.listeners.first()? {
            StreamListener::Tcp(l) => l.local_addr().ok(),
            StreamListener::Unix(_) => None,
        }
    }

    /// A handle that shuts the server down from another thread.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Serves until SIGINT or SIGTERM (unless [`handle_signals`](StreamServer::handle_signals)
    /// is off) or [`ServerHandle::shutdown`], each connection with a new handler from `make`,
    /// then returns once every connection has finished or the grace period has ended.
    pub fn serve_forever<H, F>(self, make: F) -> io::Result<()>
    where
        H: StreamHandler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        let max_line = self.options.limits.max_line;
        self.serve_connections(move |peer: &Peer| {
            Ok(StreamConn::new(make(), peer.clone(), max_line))
        })
    }

    /// Serves as [`serve_forever`](BoundStreamServer::serve_forever) does, each connection
    /// with a reactor [`Handler`] from `make` instead of a [`StreamHandler`]: for a protocol
    /// written as a state machine on the socket itself (no input buffering by the server),
    /// on the server's threads or processes. An error from `make` refuses the connection.
    pub fn serve_connections<H, F>(self, make: F) -> io::Result<()>
    where
        H: Handler<TcpStream> + Handler<UnixStream>,
        F: Fn(&Peer) -> io::Result<H> + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        let BoundStreamServer {
            address,
            options,
            listeners,
            handle,
        } = self;
        let result = if options.processes > 0 {
            supervise_processes(&options, &handle, move |worker| {
                let listener = listeners[worker].try_clone()?;
                let make = make.clone();
                Ok(
                    move |reactor: &mut Reactor<AnySelector>, options: &Options| {
                        serve_stream(reactor, listener, options, make)
                    },
                )
            })
        } else {
            run_threads(&options, &handle, listeners, move |listener| {
                let make = make.clone();
                move |reactor: &mut Reactor<AnySelector>, options: &Options| {
                    serve_stream(reactor, listener, options, make)
                }
            })
        };
        if let StreamAddress::Unix(path) = &address {
            remove_socket_file(path);
        }
        result
    }

    /// Serves one connection, on this thread, with `handler`, and returns once it has
    /// closed (Python's `handle_request`). The server stays bound: call it again for the next.
    pub fn handle_request<H: StreamHandler>(&mut self, handler: H) -> io::Result<()> {
        let mut reactor = Reactor::with_backend(self.options.backend)?;
        let max_line = self.options.limits.max_line;
        let mut handler = Some(handler);
        let listener = self.listeners[0].try_clone()?;
        let verify = self.options.verify.clone();
        macro_rules! one {
            ($listener:expr, $kind:ty, $peer:expr) => {{
                let on_accept = move |stream, peer, cx: &mut Context<'_>| {
                    let peer = $peer(peer);
                    if let Some(verify) = &verify {
                        if !verify(&peer) {
                            return Ok(());
                        }
                    }
                    if let Some(handler) = handler.take() {
                        let conn = StreamConn::new(handler, peer, max_line);
                        cx.register(stream, Interest::READABLE, conn)?;
                        // One connection only: stop accepting.
                        if let Some(me) = cx.token() {
                            cx.close_token(me);
                        }
                    }
                    Ok(())
                };
                let options = AcceptOptions::default().batch(1);
                let accept = Acceptor::<$kind, _>::with_options(on_accept, options);
                reactor.register($listener, Interest::READABLE, accept)?;
            }};
        }
        match listener {
            StreamListener::Tcp(l) => one!(l, TcpListener, Peer::Inet),
            StreamListener::Unix(l) => one!(l, UnixListener, Peer::Unix),
        }
        while !reactor.is_empty() && !reactor.stop_requested() {
            reactor.run_once(None)?;
        }
        Ok(())
    }
}

/// Registers a stream listener whose connections get `make`'s handlers, after
/// `verify_request`.
fn serve_stream<H, F>(
    reactor: &mut Reactor<AnySelector>,
    listener: StreamListener,
    options: &Options,
    make: Arc<F>,
) -> io::Result<()>
where
    H: Handler<TcpStream> + Handler<UnixStream>,
    F: Fn(&Peer) -> io::Result<H> + Send + Sync + 'static,
{
    let verify = options.verify.clone();
    let factory = move |peer: Peer| -> io::Result<H> {
        if let Some(verify) = &verify {
            if !verify(&peer) {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "verify_request refused the peer",
                ));
            }
        }
        make(&peer)
    };
    let mut cx = reactor.context();
    match listener {
        StreamListener::Tcp(l) => serve(&mut cx, l, options.limits, move |peer| {
            factory(Peer::Inet(*peer))
        })?,
        StreamListener::Unix(l) => serve(&mut cx, l, options.limits, move |peer| {
            factory(Peer::Unix(peer.clone()))
        })?,
    };
    Ok(())
}

fn remove_socket_file(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            log::warn!("removing {}: {e}", path.display());
        }
    }
}

/// Where a datagram server listens.
#[derive(Clone, Debug)]
enum DatagramAddress {
    Udp(SocketAddr),
    Unix(PathBuf),
}

/// A UDP or Unix-domain datagram server (Python's `UDPServer` and `UnixDatagramServer`),
/// each datagram handled by a new [`DatagramHandler`].
#[derive(Debug)]
pub struct DatagramServer {
    address: DatagramAddress,
    options: Options,
}

common_options!(DatagramServer);

impl DatagramServer {
    /// A UDP server on `addr`.
    pub fn udp(addr: SocketAddr) -> DatagramServer {
        DatagramServer {
            address: DatagramAddress::Udp(addr),
            options: Options::default(),
        }
    }

    /// A Unix-domain datagram server at `path`; a stale socket file there is replaced.
    pub fn unix(path: impl Into<PathBuf>) -> DatagramServer {
        DatagramServer {
            address: DatagramAddress::Unix(path.into()),
            options: Options::default(),
        }
    }

    /// Binds the socket(s) now.
    pub fn bind(self) -> io::Result<BoundDatagramServer> {
        let DatagramServer { address, options } = self;
        let copies = options.workers();
        let sockets = match &address {
            DatagramAddress::Udp(addr) => {
                let udp = UdpOptions::default().reuse_port(copies > 1);
                let first = net::bind_udp(*addr, &udp)
                    .map_err(|e| context(e, &format!("cannot bind {addr}")))?;
                let bound = first.local_addr()?;
                let mut all = vec![DatagramSocketKind::Udp(first)];
                for _ in 1..copies {
                    all.push(DatagramSocketKind::Udp(net::bind_udp(bound, &udp)?));
                }
                all
            }
            DatagramAddress::Unix(path) => {
                if std::fs::symlink_metadata(path)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                {
                    remove_socket_file(path);
                }
                let socket = net::bind_unix_datagram(path)
                    .map_err(|e| context(e, &format!("cannot bind {}", path.display())))?;
                let mut all = Vec::with_capacity(copies);
                for _ in 1..copies {
                    all.push(DatagramSocketKind::Unix(socket.try_clone()?));
                }
                all.push(DatagramSocketKind::Unix(socket));
                all
            }
        };
        Ok(BoundDatagramServer {
            address,
            handle: ServerHandle::new(options.grace),
            options,
            sockets,
        })
    }
}

enum DatagramSocketKind {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl DatagramSocketKind {
    fn try_clone(&self) -> io::Result<DatagramSocketKind> {
        Ok(match self {
            DatagramSocketKind::Udp(s) => DatagramSocketKind::Udp(s.try_clone()?),
            DatagramSocketKind::Unix(s) => DatagramSocketKind::Unix(s.try_clone()?),
        })
    }
}

/// A [`DatagramServer`] whose socket is bound, ready to serve.
pub struct BoundDatagramServer {
    address: DatagramAddress,
    options: Options,
    sockets: Vec<DatagramSocketKind>,
    handle: ServerHandle,
}

impl fmt::Debug for BoundDatagramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundDatagramServer")
            .field("address", &self.address)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl BoundDatagramServer {
    /// The UDP address it is bound to (`None` for a Unix-domain server).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self.sockets.first()? {
            DatagramSocketKind::Udp(s) => s.local_addr().ok(),
            DatagramSocketKind::Unix(_) => None,
        }
    }

    /// A handle that shuts the server down from another thread.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Serves every datagram with a new handler from `make` until SIGINT or SIGTERM (unless
    /// turned off) or [`ServerHandle::shutdown`].
    pub fn serve_forever<H, F>(self, make: F) -> io::Result<()>
    where
        H: DatagramHandler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        let BoundDatagramServer {
            address,
            options,
            sockets,
            handle,
        } = self;
        let result = if options.processes > 0 {
            supervise_processes(&options, &handle, move |worker| {
                let socket = sockets[worker].try_clone()?;
                let make = make.clone();
                Ok(move |reactor: &mut Reactor<AnySelector>, _: &Options| {
                    serve_datagrams(reactor, socket, make)
                })
            })
        } else {
            run_threads(&options, &handle, sockets, move |socket| {
                let make = make.clone();
                move |reactor: &mut Reactor<AnySelector>, _: &Options| {
                    serve_datagrams(reactor, socket, make)
                }
            })
        };
        if let DatagramAddress::Unix(path) = &address {
            remove_socket_file(path);
        }
        result
    }
}

fn serve_datagrams<H, F>(
    reactor: &mut Reactor<AnySelector>,
    socket: DatagramSocketKind,
    make: Arc<F>,
) -> io::Result<()>
where
    H: DatagramHandler,
    F: Fn() -> H + Send + Sync + 'static,
{
    let each = move || make();
    match socket {
        DatagramSocketKind::Udp(s) => {
            reactor.register(s, Interest::READABLE, DatagramServe::new(each))?
        }
        DatagramSocketKind::Unix(s) => {
            reactor.register(s, Interest::READABLE, DatagramServe::new(each))?
        }
    };
    Ok(())
}

/// Shuts a running server down from any thread (Python's `server.shutdown()`, without
/// waiting: `serve_forever` returns when the server has finished).
#[derive(Clone)]
pub struct ServerHandle {
    inner: Arc<Mutex<HandleState>>,
    grace: Duration,
}

#[derive(Default)]
struct HandleState {
    /// The reactors to tell: the workers' (threads), or the supervisor's (processes).
    targets: Vec<Target>,
    /// Asked before the server started: it shuts down as soon as it starts.
    requested: bool,
}

/// A reactor a [`ServerHandle`] tells to shut down.
enum Target {
    /// A worker: it shuts down gracefully.
    Worker(Remote),
    /// The supervisor of worker processes: it passes SIGTERM on to them.
    Supervisor(Remote),
}

impl Target {
    fn shutdown(&self, grace: Duration) {
        match self {
            Target::Worker(remote) => {
                remote.shutdown(grace);
            }
            Target::Supervisor(remote) => {
                let _ = remote.post(|cx| {
                    stop_workers(cx, Signal::SIGTERM);
                    Ok(())
                });
            }
        }
    }

    fn stop(&self) {
        match self {
            Target::Worker(remote) => {
                let _ = remote.stop();
            }
            Target::Supervisor(remote) => {
                let _ = remote.post(|cx| {
                    stop_workers(cx, Signal::SIGTERM);
                    Ok(())
                });
            }
        }
    }
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    fn new(grace: Duration) -> ServerHandle {
        ServerHandle {
            inner: Arc::new(Mutex::new(HandleState::default())),
            grace,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HandleState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Begins a graceful shutdown: the server stops accepting, lets open connections finish
    /// within its grace period, and `serve_forever` returns.
    pub fn shutdown(&self) {
        let mut state = self.lock();
        state.requested = true;
        for target in &state.targets {
            target.shutdown(self.grace);
        }
    }

    /// Adds a reactor to tell; shuts it down at once if a shutdown was already asked for.
    fn add(&self, target: Target) {
        let mut state = self.lock();
        if state.requested {
            target.shutdown(self.grace);
        }
        state.targets.push(target);
    }
}

/// What a worker runs on its reactor to serve: registers the server's socket.
trait Work: FnOnce(&mut Reactor<AnySelector>, &Options) -> io::Result<()> {}
impl<F: FnOnce(&mut Reactor<AnySelector>, &Options) -> io::Result<()>> Work for F {}

/// Runs one reactor per socket (one per thread): on this thread when there is one, else on
/// threads of their own while this thread watches the signals and waits.
fn run_threads<T, W>(
    options: &Options,
    handle: &ServerHandle,
    sockets: Vec<T>,
    work_for: impl Fn(T) -> W,
) -> io::Result<()>
where
    T: Send + 'static,
    W: Work + Send + 'static,
{
    if sockets.len() == 1 && options.threads == 1 {
        let socket = sockets.into_iter().next().expect("one socket");
        return run_worker(options, handle, work_for(socket), options.signals);
    }
    // The supervisor watches the signals first, so that the workers' threads inherit the
    // blocked mask; it stops once every worker has posted that it is done.
    let mut supervisor = Reactor::with_backend(options.backend)?;
    let workers = options.threads.max(sockets.len());
    supervisor.set_data(workers);
    if options.signals {
        let grace = options.grace;
        let to_tell = handle.clone();
        for signal in [Signal::SIGINT, Signal::SIGTERM] {
            let to_tell = to_tell.clone();
            supervisor.on_signal(signal, move |_, signal| {
                let mut state = to_tell.lock();
                if state.requested {
                    log::warn!("{signal} again: stopping every worker now");
                    for target in &state.targets {
                        target.stop();
                    }
                } else {
                    log::info!("{signal}: shutting down, connections have {grace:?} to finish");
                    state.requested = true;
                    for target in &state.targets {
                        target.shutdown(grace);
                    }
                }
                Ok(())
            })?;
        }
    }
    let sockets: Vec<T> = if sockets.len() == workers {
        sockets
    } else {
        return Err(io::Error::other("one socket per worker thread expected"));
    };
    let mut threads = Vec::with_capacity(workers);
    for (i, socket) in sockets.into_iter().enumerate() {
        let work = work_for(socket);
        let options = options.clone();
        let handle = handle.clone();
        let done = supervisor.remote();
        let thread = thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || {
                let result = run_worker(&options, &handle, work, false);
                let _ = done.post(|cx| {
                    if let Some(left) = cx.data::<usize>() {
                        *left -= 1;
                        if *left == 0 {
                            cx.stop();
                        }
                    }
                    Ok(())
                });
                result
            })?;
        threads.push(thread);
    }
    supervisor.run()?;
    let mut first_error = None;
    for thread in threads {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert(io::Error::other("a worker thread panicked"));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// One worker: a reactor with the server's socket, run until shut down.
fn run_worker(
    options: &Options,
    handle: &ServerHandle,
    work: impl Work,
    signals: bool,
) -> io::Result<()> {
    let mut reactor = Reactor::with_backend(options.backend)?;
    work(&mut reactor, options)?;
    if signals {
        reactor.shutdown_on_signals(options.grace)?;
    }
    handle.add(Target::Worker(reactor.remote()));
    reactor.run()
}

/// What the supervisor of worker processes keeps: the process serving each worker's socket.
struct Workers {
    pids: Vec<Option<Pid>>,
    stopping: bool,
}

impl Workers {
    fn running(&self) -> impl Iterator<Item = Pid> + '_ {
        self.pids.iter().flatten().copied()
    }
}

/// Forks `options.processes` workers, worker `i` serving what `prepare(i)` gives it, and
/// supervises them until a shutdown: replaces a worker that dies (the replacement serves the
/// same socket), and on SIGINT/SIGTERM (or the handle) passes SIGTERM on to every worker and
/// waits for all of them.
fn supervise_processes<W: Work>(
    options: &Options,
    handle: &ServerHandle,
    prepare: impl Fn(usize) -> io::Result<W> + 'static,
) -> io::Result<()> {
    let mut supervisor = Reactor::with_backend(options.backend)?;
    let supervisor_pid = Pid::this();
    let fork_worker = move |options: &Options, worker: usize| -> io::Result<Pid> {
        let work = prepare(worker)?;
        // SAFETY: the supervisor is single-threaded by the contract of `processes` (it says
        // so), so the child can run on; it never returns into the parent's code (it exits).
        match unsafe { nix::unistd::fork() }? {
            nix::unistd::ForkResult::Parent { child } => Ok(child),
            nix::unistd::ForkResult::Child => {
                let status = match worker_process(options, supervisor_pid, work) {
                    Ok(()) => 0,
                    Err(e) => {
                        log::error!("worker {}: {e}", std::process::id());
                        1
                    }
                };
                std::process::exit(status)
            }
        }
    };
    let fork_worker = Arc::new(fork_worker);
    let mut pids = Vec::with_capacity(options.processes);
    for worker in 0..options.processes {
        pids.push(Some(fork_worker(options, worker)?));
    }
    supervisor.set_data(Workers {
        pids,
        stopping: false,
    });
    let replace_options = options.clone();
    let fork_again = fork_worker.clone();
    supervisor.on_signal(Signal::SIGCHLD, move |cx, _| {
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                Ok(status) => status,
                Err(e) => return Err(e.into()),
            };
            let Some(pid) = status.pid() else { continue };
            let workers = cx.data::<Workers>().expect("the supervisor's state");
            let Some(worker) = workers.pids.iter().position(|p| *p == Some(pid)) else {
                continue;
            };
            workers.pids[worker] = None;
            if workers.stopping {
                if workers.running().next().is_none() {
                    cx.stop();
                }
                continue;
            }
            log::warn!("worker {pid} ended ({status:?}); starting another");
            let new = fork_again(&replace_options, worker)?;
            cx.data::<Workers>().expect("the supervisor's state").pids[worker] = Some(new);
        }
        Ok(())
    })?;
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        supervisor.on_signal(signal, move |cx, signal| {
            log::info!("{signal}: passing it on to the workers");
            stop_workers(cx, signal);
            Ok(())
        })?;
    }
    handle.add(Target::Supervisor(supervisor.remote()));
    supervisor.run()
}

/// Passes `signal` on to every worker process; the supervisor stops once they have all
/// ended.
fn stop_workers(cx: &mut Context<'_>, signal: Signal) {
    let Some(workers) = cx.data::<Workers>() else {
        return;
    };
    workers.stopping = true;
    for pid in workers.running() {
        let _ = kill(pid, signal);
    }
    if workers.running().next().is_none() {
        cx.stop();
    }
}

/// The body of a worker process: a fresh start for signals, then a reactor of its own.
fn worker_process(options: &Options, supervisor: Pid, work: impl Work) -> io::Result<()> {
    crate::signals::reset_after_fork();
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // If the supervisor dies without telling, the worker is told by the kernel.
        // SAFETY: PR_SET_PDEATHSIG takes a signal number.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
        // It may have died between the fork and the prctl: then nobody will tell.
        if nix::unistd::getppid() != supervisor {
            return Ok(());
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = supervisor;
    let mut reactor = Reactor::with_backend(options.backend)?;
    work(&mut reactor, options)?;
    reactor.shutdown_on_signals(options.grace)?;
    reactor.run()
}
