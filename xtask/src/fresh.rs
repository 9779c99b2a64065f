//! `cargo xtask fresh`: the README's two commands as on a new machine.
//!
//! Builds (once, then reuses) a minimal Debian root with debootstrap holding only what a
//! new Debian machine with a Rust toolchain has — apt, a C compiler and libc headers
//! for the linker, CA certificates — and no C++ compiler and no libclang. Each run
//! copies that root, clones this checkout's HEAD into it, mounts the host's Rust
//! toolchain read-only, and runs in it, with an empty cargo home and build directory:
//!
//! 1. as an unprivileged user, `cargo xtask test`, which must stop at once with the
//!    exact `apt-get install` command for what is missing;
//! 2. as root, `cargo xtask test`, which must install the prerequisites and pass;
//! 3. as root, `cargo xtask demo`.
//!
//! Needs root (chroot, mounts) and about 10 GB in `/var/tmp`. The first build of the
//! root downloads about 100 MB from deb.debian.org; the run then compiles everything,
//! RocksDB included, from scratch and runs the whole test suite and the demo (measured
//! on two cores: 25 minutes of build, 38 for `cargo xtask test` in all).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};

/// Where the roots live.
const BASE: &str = "/var/tmp/ballot-fresh";
/// Where the clone goes inside the root.
const CHECKOUT: &str = "/srv/ballot";
/// The Debian release of the root (the one this project's machines run).
const SUITE: &str = "bookworm";
/// What the root has besides debootstrap's minimal base: enough to link Rust programs
/// and fetch crates, as on any machine with a Rust toolchain.
const BASE_PACKAGES: &str = "ca-certificates,gcc,libc6-dev";

/// Options of `cargo xtask fresh`.
pub struct Options {
    /// Keep the run's root afterwards (for a look inside).
    pub keep: bool,
    /// Skip the demo (only the test command).
    pub no_demo: bool,
}

/// Runs the README's commands in a fresh Debian root; see the module docs.
pub fn fresh(opts: &Options) -> Result<()> {
    ensure!(is_root(), "`cargo xtask fresh` needs root (it builds a chroot and mounts into it)");
    let toolchain = toolchain_dir()?;
    let base = Path::new(BASE).join(format!("{SUITE}-base"));
    if !base.join("usr/bin/apt-get").exists() {
        debootstrap(&base)?;
    }
    let root = Path::new(BASE).join("run");
    if root.exists() {
        unmount_all(&root);
        sh(&format!("rm -rf --one-file-system {}", root.display()))?;
    }
    eprintln!("==> copying the base root to {}", root.display());
    sh(&format!("cp -a {} {}", base.display(), root.display()))?;
    // The standard /etc/hosts of an installed Debian (debootstrap writes none).
    let hosts = root.join("etc/hosts");
    if !std::fs::read_to_string(&hosts).is_ok_and(|h| h.contains("localhost")) {
        std::fs::write(&hosts, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")?;
    }
    // The network's trust, not a prerequisite of the project: certificates added
    // locally on the host (a TLS-inspecting proxy's, where there is one) for crates.io.
    sh(&format!(
        "cp -r /usr/local/share/ca-certificates/. {r}/usr/local/share/ca-certificates/ 2>/dev/null; \
         chroot {r} update-ca-certificates >/dev/null",
        r = root.display()
    ))?;
    let mounts = Mounts::new(&root, &toolchain)?;
    let checkout = crate::workspace_root();
    eprintln!("==> cloning {} (HEAD) into the root", checkout.display());
    // Root's, readable by the user (whose run writes only to its home).
    sh(&format!("git clone --quiet --no-hardlinks {} {}{CHECKOUT}", checkout.display(), root.display()))?;

    let mut report = Vec::new();
    // 1. Not root: must stop at once, naming the install command.
    let started = Instant::now();
    // (Its own build directory, so that root's run starts from an empty one.)
    let out = in_root(&root, false, &format!("cd {CHECKOUT} && CARGO_TARGET_DIR=~/target cargo xtask test"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    ensure!(!out.status.success(), "`cargo xtask test` passed without libclang as a user:\n{text}");
    ensure!(
        text.contains("sudo apt-get install -y libclang-dev g++"),
        "`cargo xtask test` as a user did not name the install command:\n{text}"
    );
    report.push(format!(
        "as a user, without libclang and g++: stopped after {:.0?} with `sudo apt-get install -y libclang-dev g++`",
        started.elapsed()
    ));
    // 2. and 3. As root: installs, builds, passes; then the demo.
    let mut steps = vec!["test"];
    if !opts.no_demo {
        steps.push("demo");
    }
    for step in steps {
        let started = Instant::now();
        let log = Path::new(BASE).join(format!("{step}.log"));
        eprintln!("==> cargo xtask {step} as root in the fresh root (output in {})", log.display());
        let out = in_root(&root, true, &format!("cd {CHECKOUT} && cargo xtask {step}"))?;
        std::fs::write(&log, [out.stdout.as_slice(), out.stderr.as_slice()].concat())?;
        let elapsed = started.elapsed();
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            bail!(
                "`cargo xtask {step}` failed in the fresh root after {elapsed:.0?}; see {}:\n{}",
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        report.push(format!("as root: `cargo xtask {step}` passed in {:.1} minutes", elapsed.as_secs_f64() / 60.0));
    }
    drop(mounts);
    if !opts.keep {
        sh(&format!("rm -rf --one-file-system {}", root.display()))?;
    }
    println!("\nfresh Debian {SUITE} root with only a Rust toolchain, gcc and libc6-dev:");
    for line in report {
        println!("  - {line}");
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn sh(script: &str) -> Result<()> {
    let status = Command::new("sh").args(["-c", script]).status().with_context(|| format!("running `{script}`"))?;
    ensure!(status.success(), "`{script}` failed with {status}");
    Ok(())
}

/// The host's active Rust toolchain (its `rustc --print sysroot`), with clippy and
/// rustfmt, mounted read-only into the root.
fn toolchain_dir() -> Result<PathBuf> {
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .context("running rustc --print sysroot")?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    for tool in ["cargo", "rustc", "clippy-driver", "cargo-fmt", "rustfmt"] {
        ensure!(dir.join("bin").join(tool).exists(), "the toolchain at {} has no {tool}", dir.display());
    }
    Ok(dir)
}

fn debootstrap(base: &Path) -> Result<()> {
    if Command::new("debootstrap").arg("--version").output().is_err() {
        eprintln!("==> installing debootstrap");
        sh("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap")?;
    }
    let partial = base.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    eprintln!("==> debootstrap {SUITE} into {} (a few minutes, once)", base.display());
    sh(&format!(
        "debootstrap --variant=minbase --include={BASE_PACKAGES} {SUITE} {} http://deb.debian.org/debian",
        partial.display()
    ))?;
    // A user for the unprivileged run, and the host's resolver for apt and crates.io.
    sh(&format!("chroot {} useradd --create-home --uid 1000 --shell /bin/sh ballot", partial.display()))?;
    sh(&format!("cp /etc/resolv.conf {}/etc/resolv.conf", partial.display()))?;
    std::fs::rename(&partial, base)?;
    Ok(())
}

/// Runs `script` in the root with the toolchain on `PATH`, an empty cargo home and the
/// default build directory; as root or as the user `ballot`.
fn in_root(root: &Path, as_root: bool, script: &str) -> Result<std::process::Output> {
    let home = if as_root { "/root" } else { "/home/ballot" };
    let env = format!(
        "env -i HOME={home} USER={user} PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
         CARGO_HOME={home}/.cargo TERM=dumb",
        user = if as_root { "root" } else { "ballot" }
    );
    let inner = if as_root {
        format!("{env} sh -c '{script}'")
    } else {
        // setpriv is in util-linux, part of every Debian base.
        format!("setpriv --reuid=1000 --regid=1000 --init-groups {env} sh -c '{script}'")
    };
    Command::new("chroot")
        .arg(root)
        .args(["sh", "-c", &inner])
        .output()
        .with_context(|| format!("running `{script}` in {}", root.display()))
}

/// The mounts a root needs, undone when dropped.
struct Mounts {
    root: PathBuf,
}

impl Mounts {
    fn new(root: &Path, toolchain: &Path) -> Result<Self> {
        let mounts = Mounts { root: root.to_owned() };
        let r = root.display();
        sh(&format!("mount -t proc proc {r}/proc"))?;
        sh(&format!("mount --rbind /dev {r}/dev && mount --make-rslave {r}/dev"))?;
        sh(&format!("mount -t tmpfs tmpfs {r}/tmp"))?;
        sh(&format!("mkdir -p {r}/opt/rust && mount --bind {} {r}/opt/rust", toolchain.display()))?;
        sh(&format!("mount -o remount,bind,ro {r}/opt/rust"))?;
        Ok(mounts)
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        unmount_all(&self.root);
    }
}

/// Unmounts everything under `root`, deepest first (best effort).
fn unmount_all(root: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else { return };
    let prefix = root.display().to_string();
    let mut points: Vec<&str> =
        mounts.lines().filter_map(|l| l.split_whitespace().nth(1)).filter(|p| p.starts_with(&prefix)).collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").args(["-l", p]).status();
    }
}
