//! `ballot-kvd`: ballot's replicated key-value database, one node of a cluster. `ballot-kvd --help` lists the
//! settings (flags, `BALLOT_*` variables, or a TOML file given by `--config`).

fn main() -> std::process::ExitCode {
    ballot_server::main("ballot-kvd", "ballot's replicated key-value database", ballot_kv::KvStore::new)
}
