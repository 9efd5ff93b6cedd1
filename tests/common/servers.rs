//! What the load tests share: how many clients run at once, and joining their threads.

use std::thread::JoinHandle;

/// How many clients the load tests run at once.
pub const CONNECTIONS: usize = 200;

/// Joins a thread, passing its panic on.
pub fn join_thread<T>(handle: JoinHandle<T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
