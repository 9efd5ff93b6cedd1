//! Servers in the shape of Python's `socketserver`, on the reactor.
//!
//! `socketserver` splits a server in two: a server class that does the communication
//! (`TCPServer`, `UDPServer`, `UnixStreamServer`, `UnixDatagramServer`) and a request-handler
//! class that does the protocol (`BaseRequestHandler` with `setup`/`handle`/`finish`,
//! `StreamRequestHandler` with `rfile.readline()` and `wfile.write()`), and mix-ins make it
//! serve each request on a thread or a process. Here:
//!
//! | `socketserver` | rawloop |
//! |---|---|
//! | `TCPServer`, `UnixStreamServer` | [`StreamServer::tcp`], [`StreamServer::unix`] |
//! | `UDPServer`, `UnixDatagramServer` | [`DatagramServer::udp`], [`DatagramServer::unix`] |
//! | `StreamRequestHandler` (`setup`, `handle`, `finish`, `rfile.readline()`, `wfile.write()`) | [`StreamHandler`] and its [`Stream`] ([`Stream::read_line`], [`Stream::write`]) |
//! | `DatagramRequestHandler` | [`DatagramHandler`] and its [`Datagram`] |
//! | `verify_request` | [`StreamServer::verify_request`] |
//! | `serve_forever()`, `handle_request()`, `shutdown()` | [`BoundStreamServer::serve_forever`], [`BoundStreamServer::handle_request`], [`ServerHandle::shutdown`] |
//! | `ThreadingMixIn` | [`StreamServer::threads`]: N reactors on N threads, each with its own listener on the same port (`SO_REUSEPORT`) |
//! | `ForkingMixIn` | [`StreamServer::processes`]: N pre-forked worker processes sharing the listener, supervised by the parent |
//!
//! The handlers run on the reactor and must not block it: `handle` is called each time data
//! has arrived (with what has arrived so far), not once per connection to read at will.
//! What Python's handler does with a blocking `readline()` loop, a rawloop handler does with
//! `while let Some(line) = stream.read_line()? { … }`, and returns when no whole line is
//! left; it is called again when more arrives, and once more at the end of the stream.
//!
//! Every server here also has what a production server needs and `socketserver` lacks: an
//! idle timeout, a cap on open connections with a clear refusal ([`Limits`]), a graceful
//! shutdown on SIGINT and SIGTERM, and bounded memory per connection (a line longer than
//! [`Limits::max_line`] closes its connection).
//!
//! [`serve`] is the piece underneath, for servers whose connections are plain
//! [`Handler`](crate::Handler)s: it accepts on a listener and registers a new handler for
//! each connection, within the [`Limits`].

mod datagram;
mod limits;
mod run;
mod stream;

pub use datagram::{Datagram, DatagramHandler};
pub use limits::{serve, Limits, ServeStats};
pub use run::{BoundDatagramServer, BoundStreamServer, DatagramServer, ServerHandle, StreamServer};
pub use stream::{Peer, Stream, StreamHandler};
