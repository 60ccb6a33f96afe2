//! `orderer`: run a node, or a whole local network.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use orderer::config::NodeConfig;
use orderer::node::dev::{self, DevOptions};

#[derive(Parser)]
#[command(name = "orderer", version, about = "bftorderer: a BFT ordering service for Fabric-style ledgers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one orderer node.
    Start {
        /// The configuration file (docs/orderer-config.md); ORDERER_* variables override it.
        #[arg(long, env = "ORDERER_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run a local network: consortium, genesis block and N consenters on 127.0.0.1.
    Dev {
        /// Number of consenters (4..=16).
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        /// Folder for certificates, blocks, configs, data and logs (reused when it exists).
        #[arg(long, default_value = "dev-network")]
        dir: PathBuf,
        /// Channel name.
        #[arg(long, default_value = "devchannel")]
        channel: String,
        /// First port; node i uses base+10i (cluster), +1 (peer API), +3 (admin), +4 (operations).
        #[arg(long, default_value_t = 7050)]
        base_port: u16,
        /// Envelopes a demo client submits once the network is up.
        #[arg(long, default_value_t = 0)]
        demo: usize,
        /// Stop the network after the demo instead of running until Ctrl-C.
        #[arg(long)]
        exit_after_demo: bool,
        /// Rotate the channel's MAC keys every this many blocks (0: off;
        /// applies when the folder has no genesis block yet).
        #[arg(long, default_value_t = 0)]
        rotate_every_blocks: u64,
    },
    /// A peer's client: submit envelopes, fetch blocks, follow deliver;
    /// verifies every block's certificate against the genesis block.
    Client {
        /// host:port of an orderer's peer API.
        #[arg(long, default_value = "127.0.0.1:7051")]
        addr: String,
        #[arg(long, default_value = "devchannel")]
        channel: String,
        /// TLS folder with client.crt, client.key and ca.crt (ca-tools layout).
        #[arg(long)]
        tls_dir: PathBuf,
        /// PEM file(s) of TLS roots to trust (default: the TLS folder's ca.crt).
        #[arg(long)]
        cacert: Vec<PathBuf>,
        /// The channel's genesis block: received blocks are verified against it
        /// (without it, block 0 is fetched from the orderer and trusted on
        /// first use, with a warning).
        #[arg(long)]
        genesis: Option<PathBuf>,
        #[command(subcommand)]
        action: ClientAction,
    },
    /// Measure throughput and latency of a local cluster of real processes
    /// (`orderer bench`), or the cost of each cryptographic operation and the
    /// CPU bound it implies (`orderer bench crypto`). See docs/bench.md.
    Bench {
        /// `crypto` for the per-operation costs only.
        #[arg(value_parser = ["crypto"])]
        mode: Option<String>,
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        /// Seconds of load (after an --overload calibration).
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Approximate size of each envelope.
        #[arg(long, default_value_t = 1024)]
        env_bytes: usize,
        /// Open loop: envelope k is due at k/RATE s whether or not earlier ones
        /// were answered; latency counts from the due time; 503s are counted.
        #[arg(long, conflicts_with_all = ["max", "overload"])]
        rate: Option<u64>,
        /// Closed loop at max, the default: every connection submits its next
        /// envelope when the previous one is answered (a 503 is retried after 10 ms).
        #[arg(long)]
        max: bool,
        /// Overload: closed loop for --calibrate seconds to find the sustainable
        /// rate, then open loop at FACTOR times it (default 2); reports the 503s
        /// and the peak RSS of each node.
        #[arg(long, value_name = "FACTOR", num_args = 0..=1, default_missing_value = "2", conflicts_with = "max")]
        overload: Option<f64>,
        /// Seconds of the --overload calibration.
        #[arg(long, default_value_t = 5)]
        calibrate: u64,
        /// The channel's batch size (batch.max_message_count; dev default 500).
        #[arg(long)]
        batch_size: Option<u32>,
        /// The channel's pipeline window (bft.pipeline_window; dev default 40).
        #[arg(long)]
        window: Option<u64>,
        /// SIGKILL the primary (bft_leader_id) this many seconds into the load and
        /// report the time to the next committed block.
        #[arg(long, value_name = "SECS")]
        kill_primary_at: Option<f64>,
        /// The nodes' consensus.pool_max: envelopes waiting before submissions get 503
        /// (default: the node's default, 20000).
        #[arg(long)]
        pool_max: Option<usize>,
        /// The nodes' consensus.cut_when_idle: a primary with nothing in flight
        /// cuts a batch at once (lower latency at low load, smaller blocks).
        #[arg(long)]
        cut_when_idle: bool,
        /// `mac` (the fast path) or `signatures` (every message signed).
        #[arg(long, default_value = "mac", value_parser = ["mac", "signatures"])]
        auth: String,
        /// Client connections per node (open loop raises it to keep 100 ms of the rate in flight).
        #[arg(long, default_value_t = 4)]
        connections: usize,
        #[arg(long, default_value_t = 17050)]
        base_port: u16,
        /// Write the report as JSON here (default: print it).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Keep the cluster's folder here (default: a temporary folder, removed).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Check a configuration file (and ORDERER_* overrides) and print the
    /// resolved configuration as YAML; exits non-zero with the reason if invalid.
    CheckConfig {
        #[arg(long, env = "ORDERER_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Create an X25519 MAC key (mode 0600) and print its public half for the channel profile.
    Keygen {
        /// Where to write the key; the public key goes beside it with extension .pub.
        #[arg(long)]
        out: PathBuf,
    },
    /// Signed vote logs: export them, verify them offline, check evidence
    /// of equivocation (docs/auditor-guide.md).
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Export a STOPPED node's vote log of a channel from its data folder
    /// (a running node: GET /admin/v1/channels/{channel}/votes).
    Export {
        /// The node's data folder (node.data_dir, holding ledger.redb).
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        channel: String,
        /// First block height (default: the start of the log).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Last block height (default: the head of the log).
        #[arg(long)]
        to: Option<u64>,
        #[arg(long)]
        out: PathBuf,
        /// The node's MSP folder, to sign the export's end line (without it a
        /// truncated end cannot be detected).
        #[arg(long)]
        msp: Option<PathBuf>,
    },
    /// Verify vote logs: signatures, hash chains, gaps, truncation, blocks'
    /// certificates against the logs, and equivocation across all of them.
    /// Exit status 0 when everything is clean, 1 with findings.
    Verify {
        /// Folder of PEM CA root certificates the auditor trusts.
        #[arg(long)]
        roots: PathBuf,
        /// The channel's genesis (config) block; repeat for its config history.
        #[arg(long = "config", required = true)]
        configs: Vec<PathBuf>,
        /// Vote-log exports.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// Block files, or folders of them, to check against the logs.
        #[arg(long)]
        blocks: Vec<PathBuf>,
        /// Write one self-contained evidence file per equivocation here.
        #[arg(long)]
        evidence_dir: Option<PathBuf>,
        /// The report as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check one evidence file alone: exit status 0 if it proves equivocation.
    CheckEvidence {
        file: PathBuf,
        #[arg(long)]
        roots: PathBuf,
        #[arg(long = "config", required = true)]
        configs: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ClientAction {
    /// Sign DATA into an envelope with the MSP folder and submit it.
    Submit {
        #[arg(long)]
        signer: PathBuf,
        #[arg(long)]
        msp_id: Option<String>,
        #[arg(long)]
        data: PathBuf,
        /// Answer only once the envelope is in a committed block.
        #[arg(long)]
        wait: bool,
    },
    /// Submit an envelope built elsewhere (e.g. a configuration update
    /// from `channels config-update envelope`), as is.
    SubmitEnvelope {
        /// The encoded envelope.
        #[arg(long)]
        file: PathBuf,
        /// Answer only once the envelope is in a committed block.
        #[arg(long)]
        wait: bool,
    },
    /// Fetch one block (a number, oldest or newest) and verify it.
    Fetch {
        #[arg(default_value = "newest")]
        position: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Follow blocks from START (oldest, newest or a number) to STOP (a number or never).
    Deliver {
        #[arg(long, default_value = "oldest")]
        start: String,
        #[arg(long, default_value = "never")]
        stop: String,
    },
}

fn init_logging(level: &str, json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Start { config } => {
            let env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k != "ORDERER_CONFIG").collect();
            let cfg = NodeConfig::load(config.as_deref(), env).map_err(|e| e.to_string())?;
            init_logging(&cfg.logging.level, cfg.logging.format == "json");
            runtime()?.block_on(orderer::node::server::run(cfg)).map_err(|e| e.to_string())
        }
        Command::Dev { nodes, dir, channel, base_port, demo, exit_after_demo, rotate_every_blocks } => {
            let opts = DevOptions { nodes, dir, channel, base_port, demo, exit_after_demo, hosts: vec![] };
            let tuning = dev::ChannelTuning {
                rotate_every_blocks: (rotate_every_blocks > 0).then_some(rotate_every_blocks),
                ..dev::ChannelTuning::default()
            };
            runtime()?.block_on(dev::run_tuned(opts, tuning)).map_err(|e| e.to_string())
        }
        Command::Client { addr, channel, tls_dir, cacert, genesis, action } => {
            use orderer::node::client_cli::{run, Action, Target};
            let target = Target { addr, channel, tls_dir, cacerts: cacert, genesis };
            let action = match action {
                ClientAction::Submit { signer, msp_id, data, wait } => Action::Submit { signer, msp_id, data, wait },
                ClientAction::SubmitEnvelope { file, wait } => Action::SubmitEnvelope { file, wait },
                ClientAction::Fetch { position, out } => Action::Fetch { position, out },
                ClientAction::Deliver { start, stop } => Action::Deliver { start, stop },
            };
            runtime()?.block_on(run(target, action))
        }
        Command::Bench {
            mode,
            nodes,
            duration,
            env_bytes,
            rate,
            max,
            overload,
            calibrate,
            batch_size,
            window,
            kill_primary_at,
            pool_max,
            cut_when_idle,
            auth,
            connections,
            base_port,
            json,
            dir,
        } => {
            use orderer::node::bench::{BenchOptions, Load};
            if mode.as_deref() == Some("crypto") {
                println!("{}", orderer::node::bench_crypto::report(nodes, 2_000));
                return Ok(());
            }
            // clap refuses --max with --rate or --overload: each names one load.
            let load = match (max, rate, overload) {
                (false, Some(r), None) => Load::Rate(r),
                (false, None, Some(factor)) if factor > 0.0 => Load::Overload { factor, calibrate_secs: calibrate },
                (false, None, Some(_)) => return Err("--overload FACTOR must be positive".into()),
                _ => Load::Max,
            };
            let opts = BenchOptions {
                nodes,
                duration_secs: duration.max(1),
                env_bytes,
                load,
                sign_all_messages: auth == "signatures",
                connections_per_node: connections.max(1),
                base_port,
                json_out: json,
                keep_dir: dir,
                tuning: orderer::node::dev::ChannelTuning {
                    max_message_count: batch_size,
                    pipeline_window: window,
                    rotate_every_blocks: None,
                },
                kill_primary_at,
                pool_max,
                cut_when_idle,
            };
            let line = runtime()?.block_on(orderer::node::bench::run(opts))?;
            println!("{line}");
            Ok(())
        }
        Command::CheckConfig { config } => {
            let env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k != "ORDERER_CONFIG").collect();
            let cfg = NodeConfig::load(config.as_deref(), env).map_err(|e| e.to_string())?;
            let text = serde_norway::to_string(&cfg).map_err(|e| e.to_string())?;
            print!("{text}");
            Ok(())
        }
        Command::Keygen { out } => {
            if out.exists() {
                return Err(format!("{} exists; remove it first (keys are never overwritten)", out.display()));
            }
            let secret = orderer::node::identity::load_or_create_mac_key(&out).map_err(|e| e.to_string())?;
            println!("{}", orderer::node::identity::mac_public_hex(&secret));
            Ok(())
        }
        Command::Audit { action } => audit(action),
    }
}

fn audit(action: AuditAction) -> Result<(), String> {
    use orderer::audit::cli;
    match action {
        AuditAction::Export { data, channel, from, to, out, msp } => {
            let args = cli::ExportArgs { data, channel, from, to, out, msp };
            println!("{}", cli::export_offline(&args).map_err(|e| e.to_string())?);
            Ok(())
        }
        AuditAction::Verify { roots, configs, logs, blocks, evidence_dir, json } => {
            let args = cli::VerifyArgs { roots, configs, logs, blocks, evidence_dir, json };
            let (text, clean) = cli::verify_cmd(&args).map_err(|e| e.to_string())?;
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            if clean {
                Ok(())
            } else {
                Err("the audit found problems or equivocation (see the report)".into())
            }
        }
        AuditAction::CheckEvidence { file, roots, configs } => {
            println!("{}", cli::check_evidence_cmd(&file, &roots, &configs).map_err(|e| e.to_string())?);
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orderer: {e}");
            ExitCode::FAILURE
        }
    }
}
