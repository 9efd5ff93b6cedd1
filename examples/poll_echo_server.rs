//! PyMOTW's `select_poll_echo_server.py` on the poll(2) backend, through the selector layer
//! alone: the generic body is in `selector_echo/mod.rs`.
//!
//! `cargo run --example poll_echo_server -- <host> <port>`

mod selector_echo;

fn main() -> std::process::ExitCode {
    selector_echo::main::<rawloop::Poll>("poll_echo_server")
}
