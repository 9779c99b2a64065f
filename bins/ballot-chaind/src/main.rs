//! `ballot-chaind`: a Proof-of-Work blockchain node (see `ballot-chain-node`).

fn main() -> std::process::ExitCode {
    ballot_chain_node::main()
}
