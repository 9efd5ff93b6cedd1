//! Small fd helpers on nix shared by the waker and the signal source: a non-blocking,
//! close-on-exec pipe, and FD_CLOEXEC for fds made by calls that cannot set it.

use std::io;
use std::os::fd::OwnedFd;

#[cfg(rawloop_native_kqueue)]
use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// Sets FD_CLOEXEC.
#[cfg(rawloop_native_kqueue)]
pub(crate) fn set_cloexec(fd: impl std::os::fd::AsFd) -> io::Result<()> {
    fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}

/// A pipe whose ends are non-blocking and close-on-exec: (read end, write end).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(not(target_vendor = "apple"))]
    {
        use nix::fcntl::OFlag;
        Ok(nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?)
    }
    #[cfg(target_vendor = "apple")]
    {
        let (read, write) = nix::unistd::pipe()?;
        for fd in [&read, &write] {
            set_cloexec(fd)?;
            crate::net::set_nonblocking(fd, true)?;
        }
        Ok((read, write))
    }
}
