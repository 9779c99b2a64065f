use ballot_core::{Instant, NodeId};
use ballot_sim::pbft::PbftAlgorithm;
use ballot_sim::{Algorithm, RunSpec, Simulation};

fn main() {
    let seed: u64 = std::env::args().nth(1).unwrap().parse().unwrap();
    let nodes: usize = std::env::args().nth(2).unwrap().parse().unwrap();
    let at: u64 = std::env::args().nth(3).unwrap().parse().unwrap();
    let algo = PbftAlgorithm::default();
    let mut cfg = RunSpec::new(seed, nodes).config("pbft", false);
    algo.shape_run(&mut cfg);
    println!("byzantine {:?}", cfg.byzantine);
    let mut a2 = algo.clone();
    a2.vary(&mut ballot_core::SeededRng::new(seed));
    println!("{}", a2.settings());
    let mut sim = Simulation::new(algo, cfg).unwrap();
    let r = sim.run_until(Instant::from_millis(at));
    println!("{r:?}");
    for i in 1..=nodes as u64 {
        if let Some(p) = sim.replica(NodeId(i)) {
            let vcs: Vec<String> = (0..6)
                .map(|v| format!("v{v}:{:?}", p.view_changes_for(v).iter().map(|x| x.signer).collect::<Vec<_>>()))
                .collect();
            println!(
                "n{i}: stable {} log {} committed45 {:?} pp45 {:?} view {} active {} exec {} pending {} vcs {} rej {:?} last {:?}",
                p.stable_checkpoint().seq,
                p.log_len(),
                p.committed_digest(45),
                p.pre_prepared(45).map(|x| (x.body.view, x.body.digest)),
                p.view(),
                p.is_active(),
                p.executed_seq(),
                p.pending_requests(),
                vcs.join(" "),
                p.rejections(),
                p.last_error()
            );
        }
    }
}
