//! The libclang check says "missing" exactly when bindgen could not use libclang: it
//! runs the real probe (`xtask probe-libclang`) with `LIBCLANG_PATH` pointing at
//! directories laid out like a machine with and without libclang-dev.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn xtask() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
}

fn probe(libclang_path: &Path) -> Output {
    xtask().arg("probe-libclang").env("LIBCLANG_PATH", libclang_path).output().expect("run xtask probe-libclang")
}

/// The libclang this machine's build uses, found by the probe itself. `cargo xtask test`
/// installs libclang before running the tests, so it must be there.
fn system_libclang() -> PathBuf {
    let out = xtask().arg("probe-libclang").env_remove("LIBCLANG_PATH").output().expect("run xtask probe-libclang");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "this machine has no usable libclang (run `cargo xtask doctor`): {stdout}");
    PathBuf::from(stdout.trim())
}

#[test]
fn a_directory_with_only_libclang_cpp_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    // The file a machine without libclang-dev has (package libclang-cpp14): a real
    // shared library whose name starts with "libclang", but not the one bindgen loads.
    let cpp = ["/usr/lib/x86_64-linux-gnu/libclang-cpp.so.14", "/usr/lib/llvm-14/lib/libclang-cpp.so.14"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists());
    match cpp {
        Some(real) => std::os::unix::fs::symlink(real, dir.path().join("libclang-cpp.so.14")).unwrap(),
        None => std::fs::write(dir.path().join("libclang-cpp.so.14"), b"").unwrap(),
    }
    let out = probe(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "libclang-cpp alone was taken for libclang: {stdout}");
    assert!(stdout.contains("libclang not found"), "{stdout}");
}

#[test]
fn a_file_named_libclang_that_does_not_load_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("libclang.so"), b"not a shared library").unwrap();
    let out = probe(dir.path());
    assert!(!out.status.success(), "a non-library named libclang.so passed: {}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn a_directory_with_a_loadable_libclang_is_found() {
    let real = system_libclang();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&real, dir.path().join("libclang.so")).unwrap();
    let out = probe(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "a loadable libclang.so was not found: {stdout}");
    assert!(stdout.trim().ends_with("libclang.so"), "the probe loaded another library: {stdout}");
}

#[test]
fn doctor_names_the_missing_library_and_the_command_that_installs_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = xtask().arg("doctor").env("LIBCLANG_PATH", dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "doctor passed without libclang: {stdout}");
    let row = stdout.lines().find(|l| l.starts_with("libclang")).unwrap_or_default();
    assert!(row.contains("MISSING"), "{stdout}");
    assert!(stdout.contains("apt-get install -y libclang-dev"), "{stdout}");
}
