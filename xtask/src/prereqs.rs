//! The machine's prerequisites: what the build (and the benchmark) needs that cargo
//! cannot fetch, each checked by asking the question the build itself asks.
//!
//! - **libclang**: RocksDB's build script runs bindgen, which loads libclang at run time
//!   through clang-sys and parses C headers with it. The check does exactly that, in a
//!   child process (`xtask probe-libclang`): `clang_sys::load()` with clang-sys's own
//!   search rules (`LIBCLANG_PATH`, `llvm-config`, the distribution's directories; a
//!   `libclang-cpp.so.*` is not libclang), then a bindgen run over a header that
//!   includes `<stddef.h>`, which needs clang's builtin headers too.
//! - **a C++ compiler**: the `cc` crate compiles RocksDB with `$CXX` or `c++`; the check
//!   compiles a small C++ file that includes a standard library header with it.
//! - for `cargo xtask bench --vs etcd` only: etcd (the reference system) and protoc (the
//!   etcd client's build).
//!
//! `cargo xtask doctor` prints the table and installs nothing; `test`, `demo` and
//! `cluster` call [`ensure`], which installs what is missing with apt-get when run as
//! root and otherwise stops at once with the exact command to run.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Result, bail};

/// What a prerequisite is needed for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Need {
    /// Every build: tests, demo, clusters.
    Build,
    /// Only `cargo xtask bench --vs etcd`.
    Bench,
}

/// One thing the machine must provide.
pub struct Prereq {
    /// What it is, for people.
    pub name: &'static str,
    /// When it is needed.
    pub need: Need,
    /// The Debian packages that provide it.
    pub packages: &'static [&'static str],
    /// `Ok(what was found)` or `Err(why it is missing)`.
    check: fn() -> Result<String, String>,
}

/// Every prerequisite, in the order they are checked.
pub const ALL: &[Prereq] = &[
    Prereq { name: "libclang (bindgen)", need: Need::Build, packages: &["libclang-dev"], check: check_libclang },
    Prereq { name: "C++ compiler", need: Need::Build, packages: &["g++"], check: check_cxx },
    Prereq { name: "etcd", need: Need::Bench, packages: &["etcd-server"], check: check_etcd },
    Prereq { name: "protoc", need: Need::Bench, packages: &["protobuf-compiler"], check: check_protoc },
];

/// The result of one check.
pub struct Finding {
    /// The prerequisite checked.
    pub prereq: &'static Prereq,
    /// `Ok(what was found)` or `Err(why it is missing)`.
    pub result: Result<String, String>,
}

/// Checks every prerequisite needed for `needs`.
pub fn check(needs: &[Need]) -> Vec<Finding> {
    ALL.iter().filter(|p| needs.contains(&p.need)).map(|prereq| Finding { prereq, result: (prereq.check)() }).collect()
}

/// The apt-get command line that installs what `findings` say is missing.
pub fn install_command(findings: &[Finding]) -> Option<String> {
    let packages: Vec<&str> =
        findings.iter().filter(|f| f.result.is_err()).flat_map(|f| f.prereq.packages.iter().copied()).collect();
    (!packages.is_empty()).then(|| format!("apt-get install -y {}", packages.join(" ")))
}

/// `cargo xtask doctor`: prints every prerequisite with found/missing and the command
/// that installs what is missing; fails when something the build needs is missing.
pub fn doctor() -> Result<()> {
    let findings = check(&[Need::Build, Need::Bench]);
    for f in &findings {
        let needed_for = match f.prereq.need {
            Need::Build => "build",
            Need::Bench => "bench --vs etcd",
        };
        let (status, detail) = match &f.result {
            Ok(found) => ("found", found.as_str()),
            Err(why) => ("MISSING", why.as_str()),
        };
        println!("{:<20} {:<8} {:<16} {}", f.prereq.name, status, needed_for, first_line(detail));
    }
    if let Some(install) = install_command(&findings) {
        println!("\nto install what is missing (Debian/Ubuntu):\n\n    sudo {install}\n");
    }
    let build_missing: Vec<&str> =
        findings.iter().filter(|f| f.prereq.need == Need::Build && f.result.is_err()).map(|f| f.prereq.name).collect();
    if !build_missing.is_empty() {
        bail!("the build needs {}, which {} missing", build_missing.join(" and "), verb(build_missing.len()));
    }
    Ok(())
}

/// Makes sure everything needed for `needs` is present: as root with apt-get, installs
/// what is missing; otherwise fails at once with the exact command to run.
pub fn ensure(needs: &[Need]) -> Result<()> {
    let findings = check(needs);
    let Some(install) = install_command(&findings) else { return Ok(()) };
    let missing: Vec<String> = findings
        .iter()
        .filter_map(|f| f.result.as_ref().err().map(|why| format!("  {}: {}", f.prereq.name, first_line(why))))
        .collect();
    let has_apt = Command::new("apt-get").arg("--version").output().is_ok_and(|o| o.status.success());
    if is_root() && has_apt {
        eprintln!("==> missing:\n{}\n==> installing: {install}", missing.join("\n"));
        let ok = Command::new("sh")
            .args(["-c", &format!("apt-get update -qq && DEBIAN_FRONTEND=noninteractive {install}")])
            .status()?
            .success();
        let still: Vec<String> = check(needs)
            .into_iter()
            .filter_map(|f| f.result.err().map(|why| format!("  {}: {}", f.prereq.name, first_line(&why))))
            .collect();
        if ok && still.is_empty() {
            return Ok(());
        }
        bail!("`{install}` did not provide everything; still missing:\n{}", still.join("\n"));
    }
    if has_apt {
        bail!("missing prerequisites:\n{}\n\nInstall them, then re-run:\n\n    sudo {install}\n", missing.join("\n"));
    }
    bail!(
        "missing prerequisites:\n{}\n\nOn Debian/Ubuntu: `sudo {install}`; on Fedora: `sudo dnf install clang-devel \
         gcc-c++`; on macOS: `xcode-select --install`. Or point LIBCLANG_PATH at the directory holding libclang.",
        missing.join("\n")
    );
}

fn verb(n: usize) -> &'static str {
    if n == 1 { "is" } else { "are" }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs the probe in a child process: clang-sys keeps the loaded library for the life of
/// the process (and bindgen panics when it finds none), so a fresh process answers each
/// time, with the environment (`LIBCLANG_PATH`) a build would see. On Linux the child is
/// `/proc/self/exe`, this very binary even after a build replaced the file it was started
/// from (`cargo xtask test` rebuilds xtask while it runs, then checks again before the demo).
fn check_libclang() -> Result<String, String> {
    let proc_self = Path::new("/proc/self/exe");
    let exe = if proc_self.exists() {
        proc_self.to_owned()
    } else {
        std::env::current_exe().map_err(|e| format!("cannot find xtask's own binary: {e}"))?
    };
    let out = Command::new(exe)
        .arg("probe-libclang")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the libclang probe: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() {
        Ok(stdout)
    } else if stdout.is_empty() {
        Err(format!("the libclang probe failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
    } else {
        Err(stdout)
    }
}

/// `xtask probe-libclang`: loads libclang as bindgen does and parses a header that
/// includes `<stddef.h>` with it. Prints what it found, or why it failed, on stdout;
/// the exit status says which.
pub fn probe_libclang() -> Result<()> {
    let report = match clang_sys::load() {
        Err(e) => Err(format!("libclang not found where bindgen looks ({e})")),
        Ok(()) => {
            let path = clang_sys::get_library().map(|l| l.path().display().to_string()).unwrap_or_default();
            bindgen::Builder::default()
                .header_contents("ballot-probe.h", "#include <stddef.h>\nsize_t ballot_probe(void);\n")
                .generate()
                .map(|_| path.clone())
                .map_err(|e| {
                    format!("libclang at {path} loads but cannot parse a C header (clang's headers missing?): {e}")
                })
        }
    };
    match report {
        Ok(found) => {
            println!("{found}");
            Ok(())
        }
        Err(why) => {
            println!("{why}");
            bail!("libclang is not usable")
        }
    }
}

fn check_cxx() -> Result<String, String> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let dir = std::env::temp_dir().join(format!("ballot-cxx-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let result = compile_cxx(&cxx, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn compile_cxx(cxx: &str, dir: &Path) -> Result<String, String> {
    let src = dir.join("probe.cc");
    std::fs::File::create(&src)
        .and_then(|mut f| {
            f.write_all(b"#include <string>\nint probe(const std::string& s) { return int(s.size()); }\n")
        })
        .map_err(|e| format!("cannot write {}: {e}", src.display()))?;
    let out = Command::new(cxx)
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(dir.join("probe.o"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("no C++ compiler: `{cxx}` cannot be run ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "`{cxx}` cannot compile C++ with its standard library: {}",
            first_line(String::from_utf8_lossy(&out.stderr).trim())
        ));
    }
    version_of(cxx)
}

/// The first line `program --version` prints, or why it could not run.
fn version_of(program: &str) -> Result<String, String> {
    let out = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`{program}` not found ({e})"))?;
    if !out.status.success() {
        return Err(format!("`{program} --version` exited with {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(format!("{program}: {}", first_line(text.trim())))
}

fn check_etcd() -> Result<String, String> {
    version_of("etcd")
}

fn check_protoc() -> Result<String, String> {
    let protoc = std::env::var("PROTOC").unwrap_or_else(|_| "protoc".into());
    version_of(&protoc)
}
