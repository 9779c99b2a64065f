//! ballot's build runner. `cargo xtask test` is the one test command (CI runs it);
//! `cargo xtask --help` lists the rest.

mod bench;
mod boundary;
mod chain_demo;
mod cluster;
mod demo;
mod fresh;
mod pbft_demo;
mod prereqs;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "ballot's build runner")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The whole check: system prerequisites, rustfmt, clippy, the dependency boundary
    /// and every test. This is what CI runs.
    Test,
    /// Same as `test`.
    Ci,
    /// Lists the machine's prerequisites (libclang, a C++ compiler; etcd and protoc for
    /// the benchmark) with found/missing and the command that installs what is missing.
    /// Installs nothing; exits non-zero when the build cannot run.
    Doctor,
    /// Runs the README's two commands as on a new machine: in a fresh Debian root
    /// (debootstrap) with only a Rust toolchain, gcc and libc headers, from a clone of
    /// HEAD with empty cargo and build directories; first as a user (must stop at once
    /// with the install command), then as root (must install, pass `test`, run `demo`).
    /// Needs root; takes 30-60 minutes on two cores.
    Fresh {
        /// Keep the run's root in /var/tmp/ballot-fresh/run afterwards.
        #[arg(long)]
        keep: bool,
        /// Only `cargo xtask test`, not the demo.
        #[arg(long)]
        no_demo: bool,
    },
    /// Loads libclang as bindgen does and parses a C header with it (the check behind
    /// `doctor`, run in a process of its own).
    #[command(hide = true)]
    ProbeLibclang,
    /// Only the dependency-boundary check (sans-IO crates must not reach tokio, quinn or rocksdb).
    Boundary,
    /// The README's main job: builds, starts a 3-node database cluster, writes and reads,
    /// kills the leader under load, restarts it, shows a config watch surviving failover
    /// and election fencing tokens increasing, then tears everything down. With
    /// `--chain`: a 5-node Proof-of-Work network instead (transfers confirmed, a
    /// partition that forks it, the heal that reorganises the minority). With `--pbft`: a
    /// 4-replica PBFT database whose first primary lies, keeping every write.
    Demo {
        /// The Proof-of-Work network demo.
        #[arg(long)]
        chain: bool,
        /// The PBFT demo: one replica of four lies (builds a test build of ballot-kvd).
        #[arg(long, conflicts_with = "chain")]
        pbft: bool,
        /// With --chain: use the binaries already built (`cargo build -p ballot-chaind -p
        /// ballot`) instead of building the workspace. With --pbft: use the default
        /// binaries and the test build an earlier `demo --pbft` kept.
        #[arg(long)]
        no_build: bool,
        /// The clusters listen above this port: kv on BASE+1..3, config on BASE+201..203,
        /// election on BASE+401..403 (with --pbft: BASE+1..4), metrics 100 above each.
        #[arg(long, default_value_t = 7000, conflicts_with = "chain")]
        base_port: u16,
    },
    /// Local clusters in the background: `cargo xtask cluster up --service kv --nodes 3`,
    /// `--consensus pbft` (4 nodes).
    Cluster {
        /// up, down or status.
        action: String,
        /// kv, config, election or chain.
        #[arg(long, default_value = "kv")]
        service: String,
        /// How many nodes (default: 3, or 4 for pbft).
        #[arg(long)]
        nodes: Option<u32>,
        /// raft, multipaxos or pbft (each has its own cluster directory: pass it to
        /// `down` and `status` too).
        #[arg(long, default_value = "raft")]
        consensus: String,
        /// Node i listens on 127.0.0.1:BASE+i and serves metrics on BASE+100+i.
        #[arg(long, default_value_t = 7000)]
        base_port: u16,
    },
    /// ballot side by side with etcd on this machine (release build, about 8 minutes plus
    /// the first release build): `cargo xtask bench --vs etcd`. Writes the figures to
    /// docs/benchmarks.md and docs/bench-vs-etcd.svg.
    Bench {
        /// The system to compare with: etcd (3 members on loopback, Debian's etcd-server).
        #[arg(long)]
        vs: String,
        /// A short run to check the machinery (a tenth of the requests; docs untouched).
        #[arg(long)]
        quick: bool,
        /// Use the release binaries already built.
        #[arg(long)]
        no_build: bool,
    },
    /// Runs the deterministic simulator (release build): `cargo xtask sim --algo raft --seeds 300`.
    /// Arguments are passed to `ballot-sim`; see `cargo xtask sim --help`.
    Sim {
        /// Arguments for ballot-sim.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// The workspace root: the parent of xtask's manifest directory as `cargo run` reports
/// it at run time. The compiled-in path is only a fallback: several checkouts share one
/// build directory (CI's clean clone and a working tree), and cargo reuses an xtask binary
/// built in another checkout, whose compiled-in path points there — CI would then check
/// the other tree.
fn workspace_root() -> PathBuf {
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    Path::new(&manifest_dir).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Runs one named step, timing it; fails with the step's name.
fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    eprintln!("==> {name}");
    let start = Instant::now();
    let r = f().with_context(|| format!("step `{name}` failed"));
    eprintln!("    {name}: {} in {:.1?}", if r.is_ok() { "ok" } else { "FAILED" }, start.elapsed());
    r
}

fn run(mut cmd: Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} exited with {status}");
    }
    Ok(())
}

fn boundary() -> Result<()> {
    let violations = boundary::check_workspace(&workspace_root(), true)?;
    if violations.is_empty() {
        eprintln!("    no path from {} to {}", boundary::GUARDED.join(", "), boundary::FORBIDDEN.join(", "));
        return Ok(());
    }
    for v in &violations {
        eprintln!("    forbidden dependency: {}", v.chain.join(" -> "));
    }
    bail!("{} sans-IO crate(s) depend on IO crates; they must stay free of them", violations.len());
}

/// Clippy with `-D warnings` on every target of the workspace.
///
/// `cargo clippy` is `cargo check` with clippy as the compiler of the workspace's own
/// crates. A check build resolves RocksDB's build script differently from the test
/// build, so on a cold machine it would compile RocksDB's C++ a second time (15
/// minutes on two cores). Instead this runs a normal build with clippy's driver as the
/// workspace compiler, exactly as `cargo clippy` sets it up: the same lints, and every
/// dependency, RocksDB included, shared with the test step.
fn clippy() -> Result<()> {
    run(clippy_build(&["--workspace", "--all-targets"])?)
}

/// `cargo build --locked` of `selection` with clippy's driver as the workspace compiler
/// and warnings denied (see [`clippy`]).
fn clippy_build(selection: &[&str]) -> Result<Command> {
    let sysroot = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .context("running rustc --print sysroot")?;
    let driver = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim()).join("bin").join("clippy-driver");
    if !driver.exists() {
        bail!(
            "clippy is not installed for this toolchain ({} is missing): run `rustup component add clippy`",
            driver.display()
        );
    }
    let mut c = cargo();
    c.arg("build")
        .args(selection)
        .arg("--locked")
        .env("RUSTC_WORKSPACE_WRAPPER", &driver)
        // cargo-clippy's own encoding of the lint flags for the driver.
        .env("CLIPPY_ARGS", "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__");
    Ok(c)
}

fn test() -> Result<()> {
    let start = Instant::now();
    step("system prerequisites (libclang, C++ compiler)", || prereqs::ensure(&[prereqs::Need::Build]))?;
    step("rustfmt", || {
        let mut c = cargo();
        c.args(["fmt", "--all", "--check"]);
        run(c)
    })?;
    step("clippy", clippy)?;
    step("dependency boundary", boundary)?;
    step("a lying PBFT replica in real processes (the server's test-only `byzantine` feature)", || {
        // Before the tests: their build puts the default binaries (which cannot lie) back.
        let mut c = cargo();
        c.args(["test", "--workspace", "--locked", "--features", "ballot-kvd/byzantine", "--test", "e2e", "a_lying"]);
        run(c)
    })?;
    step("the PBFT demo with a lying replica (`cargo xtask demo --pbft`, on free ports)", || {
        pbft_demo::demo(cluster::free_base(pbft_demo::ports)?, false)
    })?;
    step("tests", || {
        let mut c = cargo();
        c.args(["test", "--workspace", "--locked", "--no-fail-fast"]);
        run(c)
    })?;
    step("the README's main job (`cargo xtask demo`, on free ports)", || demo::demo(cluster::free_base(demo::ports)?))?;
    step("core benchmark harness with raft-rs (clippy and tests)", || {
        // Built on its own: see the `raft-rs` feature of ballot-consensus-bench.
        run(clippy_build(&["-p", "ballot-consensus-bench", "--features", "raft-rs", "--all-targets"])?)?;
        let mut c = cargo();
        c.args(["test", "-p", "ballot-consensus-bench", "--features", "raft-rs", "--locked"]);
        run(c)
    })?;
    eprintln!("==> all checks passed in {:.1?}", start.elapsed());
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run_command() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The chain of causes, without a backtrace: the failing step already printed
            // its own output.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_command() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Test | Cmd::Ci => test(),
        Cmd::Doctor => prereqs::doctor(),
        Cmd::Fresh { keep, no_demo } => fresh::fresh(&fresh::Options { keep, no_demo }),
        Cmd::ProbeLibclang => prereqs::probe_libclang(),
        Cmd::Boundary => step("dependency boundary", boundary),
        Cmd::Demo { chain: false, pbft: true, base_port, no_build } => pbft_demo::demo(base_port, no_build),
        Cmd::Demo { chain: false, pbft: false, no_build: true, .. } => {
            anyhow::bail!("--no-build goes with --chain or --pbft")
        }
        Cmd::Demo { chain: false, pbft: false, base_port, .. } => demo::demo(base_port),
        Cmd::Demo { chain: true, no_build, .. } => chain_demo::demo(no_build),
        Cmd::Cluster { action, service, nodes, consensus, base_port } => {
            // Only `up` may need fresh binaries; stopping or inspecting a cluster uses
            // the ones it runs.
            let bin_dir = if action == "up" { cluster::build_bins()? } else { cluster::built_bins()? };
            // One directory per service and consensus: a data directory never changes
            // consensus (the nodes refuse that).
            let name = if consensus == "raft" { service.clone() } else { format!("{service}-{consensus}") };
            let dir = cluster::target_dir()?.join("ballot-cluster").join(name);
            let dir = dir.to_string_lossy().into_owned();
            let cli = cluster::Cli::new(&bin_dir);
            match action.as_str() {
                "up" => {
                    let base_port = base_port.to_string();
                    let mut args = vec![
                        "cluster",
                        "up",
                        "--service",
                        &service,
                        "--consensus",
                        &consensus,
                        "--base-port",
                        &base_port,
                    ];
                    // Without --nodes the CLI picks the size for the consensus.
                    let nodes = nodes.map(|n| n.to_string());
                    if let Some(n) = &nodes {
                        args.extend(["--nodes", n]);
                    }
                    args.extend(["--dir", &dir]);
                    cli.show(&args)
                }
                "down" => cli.show(&["cluster", "down", "--dir", &dir]),
                "status" => cli.show(&["cluster", "status", "--dir", &dir]),
                other => bail!("unknown action {other:?}: use up, down or status"),
            }
            .map(|_| ())
        }
        Cmd::Bench { vs, quick, no_build } => bench::bench(&bench::Options { vs, quick, no_build }),
        Cmd::Sim { args } => {
            let mut c = cargo();
            c.args(["run", "--quiet", "--release", "--locked", "-p", "ballot-sim", "--"]).args(args);
            run(c)
        }
    }
}
