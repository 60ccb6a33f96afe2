//! `sim`: run whole PBFT clusters from seeds and check them.
//!
//! Last line of output:
//! `sim: seeds=<N> nodes=<list> steps=<S> blocks=<B> view_changes=<V> safety_violations=<X> liveness_failures=<Y>`

use std::process::ExitCode;

use clap::Parser;
use orderer::sim::{run, Scenario, Strategy, Summary};

#[derive(Parser, Debug)]
#[command(name = "sim", about = "Deterministic PBFT cluster simulator with Byzantine replicas")]
struct Args {
    /// Number of seeds to run (seeds start..start+N).
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Replay one seed with a readable trace.
    #[arg(long)]
    seed: Option<u64>,
    /// Cluster sizes, used round-robin by seed.
    #[arg(long, value_delimiter = ',', default_value = "4,7")]
    nodes: Vec<usize>,
    /// Byzantine replicas per cluster (default f = (n-1)/3).
    #[arg(long)]
    byzantine: Option<usize>,
    /// Strategies Byzantine replicas draw from (default: all).
    #[arg(long, value_delimiter = ',')]
    strategy: Vec<String>,
    /// Replicas run as twins (same identity and keys, separate state, in
    /// different partitions), counted among the faulty: Twins testing.
    #[arg(long, default_value_t = 0)]
    twins: usize,
    /// Client requests per run.
    #[arg(long, default_value_t = 40)]
    requests: usize,
    /// Negative control: exit 0 only if a safety violation was found.
    #[arg(long)]
    expect_violation: bool,
    /// Inject a deliberate fault into the core (build with --features mutants).
    #[arg(long)]
    mutant: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let strategies: Vec<Strategy> = if args.strategy.is_empty() {
        Strategy::ALL.to_vec()
    } else {
        let mut v = Vec::new();
        for s in &args.strategy {
            match Strategy::parse(s) {
                Some(x) => v.push(x),
                None => {
                    let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
                    eprintln!("sim: unknown strategy {s:?}; known: {}", names.join(", "));
                    return ExitCode::from(2);
                }
            }
        }
        v
    };
    if args.nodes.is_empty() || args.nodes.iter().any(|n| *n < 1 || *n > 64) {
        eprintln!("sim: --nodes takes cluster sizes between 1 and 64, e.g. --nodes 4,7");
        return ExitCode::from(2);
    }
    #[cfg(feature = "mutants")]
    let mutant = match args.mutant.as_deref() {
        None => None,
        Some(m) => match orderer::consensus::Mutant::ALL.iter().copied().find(|x| x.name() == m) {
            Some(x) => Some(x),
            None => {
                eprintln!("sim: unknown mutant {m:?}");
                return ExitCode::from(2);
            }
        },
    };
    #[cfg(not(feature = "mutants"))]
    if args.mutant.is_some() {
        eprintln!("sim: --mutant needs a build with `--features mutants`");
        return ExitCode::from(2);
    }
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.start..args.start + args.seeds).collect(),
    };
    let mut summary = Summary::default();
    for seed in &seeds {
        let nodes = args.nodes[(*seed % args.nodes.len() as u64) as usize];
        let byzantine = args.byzantine.unwrap_or(((nodes - 1) / 3).saturating_sub(args.twins));
        let report = run(Scenario {
            seed: *seed,
            nodes,
            byzantine,
            strategies: strategies.clone(),
            requests: args.requests,
            twins: args.twins,
            trace: args.seed.is_some(),
            #[cfg(feature = "mutants")]
            mutant,
        });
        if args.seed.is_some() {
            println!("{}", report.description);
            for v in report.safety.iter().chain(report.liveness.iter()) {
                println!("violation: {v}");
            }
        }
        summary.add(*seed, nodes, &report);
    }
    let nodes: Vec<String> = args.nodes.iter().map(|n| n.to_string()).collect();
    for (seed, n, what) in &summary.failing_seeds {
        let byz = args.byzantine.map(|b| format!(" --byzantine {b}")).unwrap_or_default();
        let strat =
            if args.strategy.is_empty() { String::new() } else { format!(" --strategy {}", args.strategy.join(",")) };
        let mutant = args.mutant.as_ref().map(|m| format!(" --mutant {m}")).unwrap_or_default();
        let twins = if args.twins > 0 { format!(" --twins {}", args.twins) } else { String::new() };
        println!("failing seed {seed} (n={n}): {what}");
        println!("  replay: sim --seed {seed} --nodes {}{byz}{strat}{mutant}{twins}", nodes.join(","));
    }
    println!(
        "sim: seeds={} nodes={} steps={} blocks={} view_changes={} safety_violations={} liveness_failures={}",
        summary.seeds,
        nodes.join(","),
        summary.steps,
        summary.blocks,
        summary.view_changes,
        summary.safety_violations,
        summary.liveness_failures
    );
    let ok = if args.expect_violation {
        summary.safety_violations > 0
    } else {
        summary.safety_violations == 0 && summary.liveness_failures == 0
    };
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
