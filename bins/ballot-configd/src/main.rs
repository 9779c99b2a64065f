//! `ballot-configd`: ballot's configuration service with watches, one node of a cluster. `ballot-configd --help` lists the
//! settings (flags, `BALLOT_*` variables, or a TOML file given by `--config`).

fn main() -> std::process::ExitCode {
    ballot_server::main(
        "ballot-configd",
        "ballot's configuration service with watches",
        ballot_config::ConfigService::new,
    )
}
