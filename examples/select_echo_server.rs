//! PyMOTW's `select_echo_server.py` on the select(2) backend, through the selector layer
//! alone: the generic body is in `selector_echo/mod.rs`.
//!
//! `cargo run --example select_echo_server -- <host> <port>`

mod selector_echo;

fn main() -> std::process::ExitCode {
    selector_echo::main::<rawloop::Select>("select_echo_server")
}
