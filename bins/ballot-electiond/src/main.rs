//! `ballot-electiond`: ballot's leader-election service, one node of a cluster. `ballot-electiond --help` lists the
//! settings (flags, `BALLOT_*` variables, or a TOML file given by `--config`).

fn main() -> std::process::ExitCode {
    ballot_server::main("ballot-electiond", "ballot's leader-election service", ballot_election::ElectionService::new)
}
