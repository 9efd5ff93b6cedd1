//! Where eventfd is refused (containers whose seccomp filter does not allow eventfd2), the
//! waker falls back to a pipe: waking, stopping and posting still work. The check runs in a
//! child process (this test binary run again) that installs such a filter on itself first.

#![cfg(target_os = "linux")]

use std::io;
use std::process::Command;
use std::thread;
use std::time::Duration;

use rawloop::{Reactor, Selector};

const CHILD: &str = "RAWLOOP_SECCOMP_CHILD";

#[test]
fn waker_works_where_eventfd_is_refused() {
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        eprintln!("SKIPPED: the seccomp filter of this test is written for x86_64 and aarch64");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "seccomp_child", "--ignored", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("child: eventfd refused; waker and remote work on select, poll, epoll"),
        "{stdout}\n{stderr}"
    );
}

/// Refuses eventfd2 (and eventfd on x86_64) with EPERM for this thread and the threads it
/// starts from now on.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn refuse_eventfd() {
    #[cfg(target_arch = "x86_64")]
    const ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
    #[cfg(target_arch = "x86_64")]
    const OLD_EVENTFD: u32 = libc::SYS_eventfd as u32;
    #[cfg(target_arch = "aarch64")]
    const ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64
    #[cfg(target_arch = "aarch64")]
    const OLD_EVENTFD: u32 = libc::SYS_eventfd2 as u32;

    fn stmt(code: u32, k: u32) -> libc::sock_filter {
        libc::sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        }
    }
    fn jump(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt,
            jf,
            k,
        }
    }
    let load = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    // struct seccomp_data: nr at offset 0, arch at offset 4.
    let mut program = [
        stmt(load, 4),
        jump(ARCH, 0, 4),
        stmt(load, 0),
        jump(libc::SYS_eventfd2 as u32, 1, 0),
        jump(OLD_EVENTFD, 0, 1),
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "PR_SET_NO_NEW_PRIVS: {}", io::Error::last_os_error());
    // SAFETY: `fprog` points to `program`, which outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        )
    };
    assert_eq!(rc, 0, "PR_SET_SECCOMP: {}", io::Error::last_os_error());
}

/// Wakes, posts to and stops a reactor of backend `S` from another thread.
fn waker_and_remote_work<S: Selector>() {
    let mut reactor = Reactor::<S>::new().unwrap();
    reactor.set_data(0usize);
    let remote = reactor.remote();
    let waker = reactor.waker();
    let other = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        waker.wake().unwrap();
        for _ in 0..100 {
            remote
                .post(|cx| {
                    *cx.data::<usize>().unwrap() += 1;
                    Ok(())
                })
                .ok()
                .unwrap();
        }
        remote.stop().unwrap();
    });
    reactor.run().unwrap();
    other.join().unwrap();
    while *reactor.data::<usize>().unwrap() < 100 {
        reactor.run_once(Some(Duration::from_secs(5))).unwrap();
    }
}

#[test]
#[ignore = "run in a child process by waker_works_where_eventfd_is_refused"]
fn seccomp_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        refuse_eventfd();
        // SAFETY: eventfd takes two integers; a descriptor it returns is closed below.
        let fd = unsafe { libc::eventfd(0, 0) };
        let err = io::Error::last_os_error();
        assert_eq!(fd, -1, "the filter refuses eventfd");
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        waker_and_remote_work::<rawloop::Select>();
        waker_and_remote_work::<rawloop::Poll>();
        waker_and_remote_work::<rawloop::Epoll>();
        println!("child: eventfd refused; waker and remote work on select, poll, epoll");
    }
}
