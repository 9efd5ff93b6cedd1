//! Decides, once, which backends this target compiles and which one is `DefaultSelector`,
//! and links libkqueue when the `libkqueue` feature asks for it on Linux.

use std::env;

fn main() {
    for cfg in [
        "rawloop_epoll",
        "rawloop_kqueue",
        "rawloop_libkqueue",
        "rawloop_native_kqueue",
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
    }
    println!(
        "cargo::rustc-check-cfg=cfg(rawloop_default, values(\"select\", \"poll\", \"epoll\", \"kqueue\"))"
    );
    println!("cargo::rerun-if-env-changed=LIBKQUEUE_DIR");

    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let epoll = matches!(os.as_str(), "linux" | "android");
    let native_kqueue = matches!(
        os.as_str(),
        "macos" | "ios" | "tvos" | "watchos" | "freebsd" | "netbsd" | "openbsd" | "dragonfly"
    );
    let libkqueue = !native_kqueue && env::var_os("CARGO_FEATURE_LIBKQUEUE").is_some();
    let kqueue = native_kqueue || libkqueue;

    if epoll {
        println!("cargo::rustc-cfg=rawloop_epoll");
    }
    if kqueue {
        println!("cargo::rustc-cfg=rawloop_kqueue");
    }
    if native_kqueue {
        // The kernel has kqueue (macOS and the BSDs): signals come through EVFILT_SIGNAL.
        println!("cargo::rustc-cfg=rawloop_native_kqueue");
    }
    if libkqueue {
        println!("cargo::rustc-cfg=rawloop_libkqueue");
        link_libkqueue();
    }

    let forced: Vec<&str> = ["select", "poll", "epoll", "kqueue"]
        .into_iter()
        .filter(|name| {
            env::var_os(format!("CARGO_FEATURE_DEFAULT_{}", name.to_uppercase())).is_some()
        })
        .collect();
    let default = match forced.as_slice() {
        [] if epoll => "epoll",
        [] if native_kqueue => "kqueue",
        [] => "poll",
        [one] => {
            let available = match *one {
                "epoll" => epoll,
                "kqueue" => kqueue,
                _ => true,
            };
            if !available {
                panic!(
                    "feature default-{one}: the {one} backend does not exist on target os {os:?}"
                );
            }
            one
        }
        many => panic!("choose at most one default-* feature, not {many:?}"),
    };
    println!("cargo::rustc-cfg=rawloop_default=\"{default}\"");
}

/// Finds libkqueue through LIBKQUEUE_DIR (its install prefix) or pkg-config.
#[cfg(feature = "libkqueue")]
fn link_libkqueue() {
    if let Some(dir) = env::var_os("LIBKQUEUE_DIR") {
        let dir = std::path::PathBuf::from(dir);
        for lib in ["lib", "lib64", "lib/x86_64-linux-gnu"] {
            let path = dir.join(lib);
            if path.is_dir() {
                println!("cargo::rustc-link-search=native={}", path.display());
                println!("cargo::rustc-link-arg=-Wl,-rpath,{}", path.display());
            }
        }
        println!("cargo::rustc-link-lib=kqueue");
        return;
    }
    match pkg_config::Config::new().probe("libkqueue") {
        // pkg-config lists only non-system library dirs; the test binaries need those at run time.
        Ok(lib) => {
            for path in &lib.link_paths {
                println!("cargo::rustc-link-arg=-Wl,-rpath,{}", path.display());
            }
        }
        Err(e) => panic!(
            "feature libkqueue: libkqueue not found ({e}); install it and set LIBKQUEUE_DIR to \
             its install prefix, or make it visible to pkg-config"
        ),
    }
}

#[cfg(not(feature = "libkqueue"))]
fn link_libkqueue() {}
