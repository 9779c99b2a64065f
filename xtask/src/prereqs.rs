//! Makes sure the system packages RocksDB's build needs are present.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};

/// The Debian/Ubuntu packages that provide what `librocksdb-sys` needs: libclang (for
/// bindgen) and a C++ compiler.
const PACKAGES: &[&str] = &["libclang-dev", "clang", "g++"];

fn have_libclang() -> bool {
    if std::env::var_os("LIBCLANG_PATH").is_some_and(|d| Path::new(&d).is_dir()) {
        return true;
    }
    if Command::new("ldconfig")
        .arg("-p")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("libclang"))
    {
        return true;
    }
    // Where distributions put it: the usual library directories and /usr/lib/llvm-*/lib.
    let llvm_dirs = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|d| d.file_name().to_string_lossy().starts_with("llvm"))
        .map(|d| d.path().join("lib"));
    ["/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"]
        .iter()
        .map(std::path::PathBuf::from)
        .chain(llvm_dirs)
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("libclang"))
}

fn have_cxx() -> bool {
    ["c++", "g++", "clang++"]
        .iter()
        .any(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Checks for libclang and a C++ compiler; installs them with apt-get when running as
/// root, else explains exactly what to run.
pub fn ensure() -> Result<()> {
    if have_libclang() && have_cxx() {
        return Ok(());
    }
    let install = format!("apt-get install -y {}", PACKAGES.join(" "));
    let has_apt = Command::new("apt-get").arg("--version").output().is_ok();
    if is_root() && has_apt {
        eprintln!("==> RocksDB's build needs libclang and a C++ compiler; installing: {install}");
        let ok = Command::new("sh")
            .args(["-c", &format!("apt-get update -qq && DEBIAN_FRONTEND=noninteractive {install}")])
            .status()?
            .success();
        if ok && have_libclang() && have_cxx() {
            return Ok(());
        }
        bail!("installing {} failed; install them by hand and re-run", PACKAGES.join(" "));
    }
    if has_apt {
        bail!(
            "RocksDB's build needs libclang and a C++ compiler, which are missing.\n\
             Install them, then re-run:\n\n    sudo {install}\n"
        );
    }
    bail!(
        "RocksDB's build needs libclang (for bindgen) and a C++ compiler, which are missing.\n\
         Install clang/libclang and g++ with your system's package manager (on Fedora: \
         `sudo dnf install clang-devel gcc-c++`; on macOS: `xcode-select --install`), or point \
         LIBCLANG_PATH at the directory holding libclang, then re-run."
    );
}
