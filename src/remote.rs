//! Work posted to a reactor from other threads.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::{Context, Waker};

/// A closure posted from another thread.
pub(crate) type Job = Box<dyn FnOnce(&mut Context<'_>) -> io::Result<()> + Send>;

/// The jobs waiting for the reactor; `None` once the reactor is gone.
#[derive(Default)]
pub(crate) struct PostQueue {
    jobs: Mutex<Option<VecDeque<Job>>>,
}

impl PostQueue {
    pub(crate) fn new() -> PostQueue {
        PostQueue {
            jobs: Mutex::new(Some(VecDeque::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<VecDeque<Job>>> {
        // Nothing runs under the lock but a push or a swap, which cannot leave it half-done.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Swaps the waiting jobs into `batch` (which must be empty), in the order they were posted.
    pub(crate) fn take(&self, batch: &mut VecDeque<Job>) {
        if let Some(jobs) = self.lock().as_mut() {
            std::mem::swap(jobs, batch);
        }
    }

    /// Drops the waiting jobs unrun and refuses new ones.
    pub(crate) fn close(&self) {
        let jobs = self.lock().take();
        drop(jobs);
    }
}

/// A handle, `Send + Clone`, that runs closures on a reactor's thread: Python's
/// `loop.call_soon_threadsafe`, libuv's `uv_async_send`. Get one from
/// [`Reactor::remote`](crate::Reactor::remote).
///
/// A posted closure runs in the reactor's next round (or the current one, if it is
/// waiting), with the reactor's [`Context`]. Closures run exactly once, and those posted by
/// one thread run in the order that thread posted them. Posting after the loop stopped is
/// fine: they run when it runs again. Once the reactor is dropped, closures still waiting
/// are dropped unrun and [`post`](Remote::post) hands new ones back.
///
/// ```
/// use rawloop::Reactor;
///
/// let mut reactor: Reactor = Reactor::new()?;
/// let remote = reactor.remote();
/// std::thread::spawn(move || {
///     remote.post(|cx| {
///         cx.stop();
///         Ok(())
///     }).ok();
/// });
/// reactor.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Remote {
    pub(crate) queue: Arc<PostQueue>,
    pub(crate) waker: Waker,
}

impl Remote {
    /// Queues `job` to run on the reactor's thread and wakes the reactor. Returns the closure
    /// back if the reactor no longer exists.
    ///
    /// The first post into an empty queue wakes the reactor; later ones ride on that wake-up,
    /// so a burst of posts costs one wake-up syscall.
    pub fn post<F>(&self, job: F) -> Result<(), F>
    where
        F: FnOnce(&mut Context<'_>) -> io::Result<()> + Send + 'static,
    {
        let was_empty = {
            let mut jobs = self.queue.lock();
            let Some(jobs) = jobs.as_mut() else {
                return Err(job);
            };
            jobs.push_back(Box::new(job));
            jobs.len() == 1
        };
        if was_empty {
            if let Err(e) = self.waker.wake() {
                log::warn!("waking the reactor for a posted closure: {e}");
            }
        }
        Ok(())
    }

    /// Wakes the reactor.
    pub fn wake(&self) -> io::Result<()> {
        self.waker.wake()
    }

    /// Makes the reactor's `run` return after its current round.
    pub fn stop(&self) -> io::Result<()> {
        self.waker.stop()
    }

    /// Begins a graceful shutdown of the reactor (see
    /// [`Context::shutdown`](crate::Context::shutdown)). Returns false if the reactor no
    /// longer exists.
    pub fn shutdown(&self, grace: Duration) -> bool {
        self.post(move |cx| {
            cx.shutdown(grace);
            Ok(())
        })
        .is_ok()
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    /// What crosses threads: the handles, not the reactor.
    #[test]
    fn remote_and_waker_are_send_and_sync() {
        fn crosses_threads<T: Send + Sync + Clone>() {}
        crosses_threads::<super::Remote>();
        crosses_threads::<crate::Waker>();
    }
}
