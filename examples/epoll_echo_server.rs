//! PyMOTW's `select_poll_echo_server.py` on the epoll(7) backend, through the selector layer
//! alone: the generic body is in `selector_echo/mod.rs`. epoll exists on Linux and Android
//! only; elsewhere the program says so and exits with status 2.
//!
//! `cargo run --example epoll_echo_server -- <host> <port>`

#[cfg(rawloop_epoll)]
mod selector_echo;

#[cfg(rawloop_epoll)]
fn main() -> std::process::ExitCode {
    selector_echo::main::<rawloop::Epoll>("epoll_echo_server")
}

#[cfg(not(rawloop_epoll))]
fn main() -> std::process::ExitCode {
    eprintln!("epoll_echo_server: the epoll backend is not available on this target (Linux and Android only)");
    std::process::ExitCode::from(2)
}
