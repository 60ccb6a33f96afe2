//! `faults`: fault tests with real `orderer` processes, each in its own
//! network namespace, under continuous load, with a nemesis that kills,
//! restarts, partitions and slows them; then a history check. Needs root.
//! Usually run through `deploy/faults/run.sh`.
//!
//! Last line of output:
//! `faults: nodes=<n> rounds=<R> acked=<A> committed=<C> lost=<L> duplicated=<D> divergent=<X>`
//! and exit code 0 only when lost, duplicated and divergent are 0 (and
//! nothing else the checker looks at went wrong) and acked > 0.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use orderer::faults::{run, Fault, Options};

#[derive(Parser, Debug)]
#[command(
    name = "faults",
    about = "Kill, restart and partition real orderer processes under load, then check the history"
)]
struct Args {
    /// Short mode (CI): one round of each fault.
    #[arg(long, conflicts_with = "long")]
    short: bool,
    /// Long mode: 50 rounds of randomly drawn faults.
    #[arg(long)]
    long: bool,
    /// Consenters (4..=16).
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Rounds (overrides the mode's count).
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds each fault lasts.
    #[arg(long, default_value_t = 10)]
    fault_secs: u64,
    /// Seconds the healed cluster runs between faults.
    #[arg(long, default_value_t = 5)]
    settle_secs: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Faults to draw from (default: all): kill-primary, isolate,
    /// kill-random, one-way, split, slow, kill-all.
    #[arg(long, value_delimiter = ',')]
    faults: Vec<String>,
    /// Seed of the nemesis's choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The orderer binary (default: `orderer` beside this binary).
    #[arg(long)]
    orderer: Option<PathBuf>,
    /// Folder for the network (certificates, configs, data, logs).
    #[arg(long, default_value = "faults-network")]
    dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let orderer = match args
        .orderer
        .clone()
        .map(Ok)
        .unwrap_or_else(|| std::env::current_exe().map(|exe| exe.with_file_name("orderer")))
    {
        Ok(p) if p.exists() => p,
        _ => {
            eprintln!("faults: no orderer binary found; build it (cargo build --release -p orderer) or pass --orderer");
            return ExitCode::from(2);
        }
    };
    let mut faults = Vec::new();
    for name in &args.faults {
        match Fault::from_name(name) {
            Some(f) => faults.push(f),
            None => {
                let known: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                eprintln!("faults: unknown fault {name:?}; known: {}", known.join(", "));
                return ExitCode::from(2);
            }
        }
    }
    let rounds = args.rounds.unwrap_or(if args.long { 50 } else { Fault::ALL.len() });
    if args.dir.exists() {
        // A fresh network every run: old ledgers would mix two histories.
        if let Err(e) = std::fs::remove_dir_all(&args.dir) {
            eprintln!("faults: cannot clear {}: {e}", args.dir.display());
            return ExitCode::from(2);
        }
    }
    let dir = match std::path::absolute(&args.dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("faults: {}: {e}", args.dir.display());
            return ExitCode::from(2);
        }
    };
    let opts = Options {
        nodes: args.nodes,
        rounds,
        fault: Duration::from_secs(args.fault_secs),
        settle: Duration::from_secs(args.settle_secs),
        clients: args.clients.max(1),
        seed: args.seed,
        faults,
        orderer,
        dir,
    };
    println!(
        "faults: nodes={} rounds={} fault={} s settle={} s clients={} seed={} (replay: --seed {} --rounds {rounds} --nodes {})",
        opts.nodes, rounds, args.fault_secs, args.settle_secs, opts.clients, opts.seed, opts.seed, opts.nodes
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("faults: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(opts.clone())) {
        Ok((v, stalled)) => {
            println!(
                "faults: stalled_rounds={stalled} misplaced={} uncertified={} phantom={} double_votes={}",
                v.misplaced, v.uncertified, v.phantom, v.double_votes
            );
            println!(
                "faults: nodes={} rounds={rounds} acked={} committed={} lost={} duplicated={} divergent={}",
                opts.nodes, v.acked, v.committed, v.lost, v.duplicated, v.divergent
            );
            if v.ok() && stalled == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("faults: {e}");
            ExitCode::from(2)
        }
    }
}
