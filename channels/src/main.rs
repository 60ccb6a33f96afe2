//! `channels`: the counterpart of Fabric's configtxgen / configtxlator for
//! bftorderer — make genesis blocks, sign envelopes, inspect and verify
//! blocks, and create, sign and verify configuration updates.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ca_tools::{Msp, SigningKey};
use channels::block::{build_block, certify_block, BlockError};
use channels::config::{ChannelConfig, ConfigError, Consenter, MAX_CONFIG_BYTES};
use channels::config_update::{
    check_transition, current_config_from_block, current_config_from_envelope, diff_summary, propose, sign_update,
    update_envelope, ConfigUpdateEnvelope, ConfigUpdateError, ConfigUpdateVerifier, CONFIG_UPDATE_BYTES_MAX,
};
use channels::envelope::{build_envelope, build_envelope_now, DEFAULT_MAX_ENVELOPE_BYTES, NONCE_LEN};
use channels::files::{read_bounded, FileError};
use channels::genesis::{config_from_genesis, verify_blocks, GenesisError};
use channels::inspect::{inspect_bytes, InspectError, MAX_INSPECT_BYTES};
use channels::proto::common::{Block, HeaderType};
use channels::{genesis_from_profile, verify_envelope, ChannelTrust, EnvelopeError, ProfileError};
use clap::{Parser, Subcommand, ValueEnum};
use prost::Message;

/// Most block files one command reads.
const MAX_BLOCK_FILES: usize = 10_000;
/// Most signers of one `block` command.
const MAX_SIGNERS: usize = 256;

#[derive(Parser)]
#[command(
    name = "channels",
    version,
    about = "bftorderer channel tools: genesis blocks, envelopes, block inspection and verification"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a channel's genesis block from a configtx.yaml profile.
    Genesis {
        /// The profile (see channels/examples/configtx.yaml).
        #[arg(long)]
        profile: PathBuf,
        /// Channel name.
        #[arg(long)]
        channel: String,
        /// Output file (the encoded block).
        #[arg(long)]
        out: PathBuf,
        /// Resolve the profile's relative paths against this directory
        /// (default: the profile's crypto_dir, else its directory).
        #[arg(long)]
        crypto_dir: Option<PathBuf>,
        /// Overwrite an existing output file.
        #[arg(long)]
        force: bool,
    },
    /// Print a block or an envelope as JSON.
    Inspect {
        /// The encoded block or envelope.
        file: PathBuf,
    },
    /// Make a signed envelope (the reference client).
    Envelope {
        /// The signer's MSP directory (signcerts/, keystore/, cacerts/).
        #[arg(long)]
        signer: PathBuf,
        /// The signer's MSP id (default: from its certificate).
        #[arg(long)]
        msp_id: Option<String>,
        /// Channel name.
        #[arg(long)]
        channel: String,
        /// File whose bytes become the payload data.
        #[arg(long)]
        data: PathBuf,
        /// Output file (the encoded envelope).
        #[arg(long)]
        out: PathBuf,
        /// Header type.
        #[arg(long = "type", value_enum, default_value_t = EnvelopeType::EndorserTransaction)]
        header_type: EnvelopeType,
        /// Nonce as hex (default: 24 random bytes); with --timestamp, makes
        /// the envelope reproducible for tests.
        #[arg(long, requires = "timestamp")]
        nonce: Option<String>,
        /// Timestamp, unix seconds (default: now).
        #[arg(long, requires = "nonce")]
        timestamp: Option<i64>,
        /// Overwrite an existing output file.
        #[arg(long)]
        force: bool,
    },
    /// Cut a block from envelopes and certify it with consenter keys, as the
    /// consenters of a channel would (a tool for tests and demos).
    Block {
        /// The channel's genesis block.
        #[arg(long)]
        config: PathBuf,
        /// The previous block (default: the genesis block).
        #[arg(long)]
        previous: Option<PathBuf>,
        /// Encoded envelopes, in order.
        #[arg(long = "envelope", required = true)]
        envelopes: Vec<PathBuf>,
        /// A consenter signature: ID=MSPDIR (the consenter's MSP directory).
        #[arg(long = "sign", value_name = "ID=MSPDIR")]
        signers: Vec<String>,
        /// Epoch of the certificate.
        #[arg(long, default_value_t = 0)]
        epoch: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an existing output file.
        #[arg(long)]
        force: bool,
    },
    /// Verify a submitted envelope as an orderer would (channel, creator,
    /// signature, tx id) against a channel's genesis block.
    VerifyEnvelope {
        /// The channel's genesis block.
        #[arg(long)]
        config: PathBuf,
        /// Largest envelope accepted, bytes.
        #[arg(long, default_value_t = DEFAULT_MAX_ENVELOPE_BYTES)]
        max_bytes: usize,
        /// The encoded envelope.
        envelope: PathBuf,
    },
    /// Channel configuration updates: create, sign (by org admins), wrap
    /// into an envelope, verify (see docs/config-updates.md).
    #[command(subcommand)]
    ConfigUpdate(ConfigUpdateCommand),
    /// Verify blocks: hash chain from the genesis block and certificates.
    VerifyBlock {
        /// The channel's genesis block.
        #[arg(long)]
        config: PathBuf,
        /// Require certificates of this epoch.
        #[arg(long)]
        epoch: Option<u64>,
        /// Consecutive blocks, in order.
        #[arg(required = true)]
        blocks: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigUpdateCommand {
    /// Propose a new configuration: the current one with the sequence bumped
    /// and the requested change; writes the unsigned update.
    Create {
        /// The block that holds the current configuration: the genesis block,
        /// or a block whose only envelope is a config update (also accepted:
        /// the config update envelope itself).
        #[arg(long)]
        current: PathBuf,
        /// Output file (the encoded, unsigned ConfigUpdateEnvelope).
        #[arg(long)]
        out: PathBuf,
        /// Add the consenter described in this YAML/JSON file.
        #[arg(long, value_name = "FILE")]
        add_consenter: Option<PathBuf>,
        /// Remove the consenter with this id.
        #[arg(long, value_name = "ID")]
        remove_consenter: Option<u32>,
        /// Replace consenter ID's identity certificate with this PEM file.
        #[arg(long, value_name = "ID=PEM")]
        rotate_identity: Vec<String>,
        /// Replace consenter ID's TLS certificate with this PEM file.
        #[arg(long, value_name = "ID=PEM")]
        rotate_tls: Vec<String>,
        /// Propose this whole configuration (YAML/JSON; its sequence is set
        /// to the current one + 1).
        #[arg(long, value_name = "FILE",
              conflicts_with_all = ["add_consenter", "remove_consenter", "rotate_identity", "rotate_tls"])]
        set_config: Option<PathBuf>,
        /// Overwrite an existing output file.
        #[arg(long)]
        force: bool,
    },
    /// Add an org admin's signature to an update (in place unless --out).
    Sign {
        /// The update made by `create`.
        #[arg(long)]
        update: PathBuf,
        /// The admin's MSP directory (signcerts/, keystore/).
        #[arg(long)]
        msp: PathBuf,
        /// The admin's MSP id (default: from its certificate).
        #[arg(long)]
        msp_id: Option<String>,
        /// Write the signed update here instead of over --update.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Wrap a signed update into the CONFIG_UPDATE envelope an orderer
    /// accepts, signed by a member of the channel.
    Envelope {
        /// The signed update.
        #[arg(long)]
        update: PathBuf,
        /// The submitter's MSP directory (any member of a channel org).
        #[arg(long)]
        msp: PathBuf,
        /// The submitter's MSP id (default: from its certificate).
        #[arg(long)]
        msp_id: Option<String>,
        /// Channel name.
        #[arg(long)]
        channel: String,
        /// Output file (the encoded envelope).
        #[arg(long)]
        out: PathBuf,
        /// Overwrite an existing output file.
        #[arg(long)]
        force: bool,
    },
    /// Verify a config update envelope as an orderer admitting it would.
    Verify {
        /// The block that holds the current configuration (as for `create`).
        #[arg(long)]
        current: PathBuf,
        /// The config update envelope.
        #[arg(long)]
        envelope: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum EnvelopeType {
    Message,
    EndorserTransaction,
    ConfigUpdate,
}

impl EnvelopeType {
    fn header_type(self) -> HeaderType {
        match self {
            EnvelopeType::Message => HeaderType::Message,
            EnvelopeType::EndorserTransaction => HeaderType::EndorserTransaction,
            EnvelopeType::ConfigUpdate => HeaderType::ConfigUpdate,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    #[error(transparent)]
    Inspect(#[from] InspectError),
    #[error(transparent)]
    ConfigUpdate(#[from] ConfigUpdateError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Pki(String),
    #[error("{path} already exists; pass --force to overwrite it")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Usage(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Genesis { profile, channel, out, crypto_dir, force } => {
            check_writable(&out, force)?;
            let (config, block) = genesis_from_profile(&profile, &channel, crypto_dir.as_deref())?;
            write(&out, &block.encode_to_vec())?;
            println!(
                "genesis block of channel {} written to {}: {} orgs, {} consenters (f = {}, quorum {})",
                config.channel_id,
                out.display(),
                config.orgs.len(),
                config.n(),
                config.f(),
                config.quorum()
            );
            Ok(())
        }
        Command::Inspect { file } => {
            let bytes = read_bounded(&file, MAX_INSPECT_BYTES as u64)?;
            let value = inspect_bytes(&bytes)?;
            let text = serde_json::to_string_pretty(&value).map_err(|e| CliError::Usage(e.to_string()))?;
            println!("{text}");
            Ok(())
        }
        Command::Envelope { signer, msp_id, channel, data, out, header_type, nonce, timestamp, force } => {
            check_writable(&out, force)?;
            let msp = Msp::load(msp_id.as_deref(), &signer).map_err(|e| CliError::Pki(e.to_string()))?;
            let data = read_bounded(&data, DEFAULT_MAX_ENVELOPE_BYTES as u64)?;
            let envelope = match (nonce, timestamp) {
                (Some(nonce), Some(timestamp)) => {
                    let nonce =
                        hex::decode(&nonce).ok().filter(|n| !n.is_empty() && n.len() <= 1024).ok_or_else(|| {
                            CliError::Usage(format!(
                                "--nonce must be 1-1024 bytes of hex (e.g. {} hex digits)",
                                2 * NONCE_LEN
                            ))
                        })?;
                    build_envelope(&channel, &msp, &data, header_type.header_type(), timestamp, &nonce)?
                }
                _ => build_envelope_now(&channel, &msp, &data, header_type.header_type())?,
            };
            write(&out, &envelope.encode_to_vec())?;
            println!("envelope for channel {channel} signed by {} written to {}", msp.msp_id, out.display());
            Ok(())
        }
        Command::Block { config, previous, envelopes, signers, epoch, out, force } => {
            check_writable(&out, force)?;
            let genesis = read_block(&config)?;
            let channel = config_from_genesis(&genesis)?;
            let previous = match previous {
                Some(path) => read_block(&path)?,
                None => genesis,
            };
            if envelopes.len() > MAX_BLOCK_FILES || signers.len() > MAX_SIGNERS {
                return Err(CliError::Usage("too many envelopes or signers".into()));
            }
            let data = envelopes
                .iter()
                .map(|p| read_bounded(p, DEFAULT_MAX_ENVELOPE_BYTES as u64))
                .collect::<Result<Vec<_>, _>>()?;
            let prev_header = previous.header_checked()?;
            let number = prev_header
                .number
                .checked_add(1)
                .ok_or_else(|| CliError::Usage("the previous block has the largest possible number".into()))?;
            let mut block = build_block(number, &prev_header.hash(), data);
            let keys = signers.iter().map(|s| load_signer(s)).collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<(u32, &SigningKey)> = keys.iter().map(|(id, key)| (*id, key)).collect();
            certify_block(&mut block, &channel.channel_id, epoch, &refs)?;
            write(&out, &block.encode_to_vec())?;
            println!(
                "block {number} of channel {} with {} envelopes and {} signatures written to {}",
                channel.channel_id,
                block.envelopes().len(),
                refs.len(),
                out.display()
            );
            Ok(())
        }
        Command::VerifyEnvelope { config, max_bytes, envelope } => {
            let channel = config_from_genesis(&read_block(&config)?)?;
            let trust = ChannelTrust::new(&channel).map_err(GenesisError::from)?;
            let bytes = match read_bounded(&envelope, max_bytes as u64) {
                Err(FileError::TooLarge { path, .. }) => {
                    let size = std::fs::metadata(&path).map_or(usize::MAX, |m| m.len() as usize);
                    return Err(EnvelopeError::TooLarge { size, max: max_bytes }.into());
                }
                other => other?,
            };
            let verified = verify_envelope(&bytes, &trust, ca_tools::now_unix(), max_bytes)?;
            println!(
                "ok: envelope {} on channel {} by {} ({}), type {}, {} bytes",
                verified.tx_id,
                verified.channel_id,
                verified.creator_msp,
                verified.creator_role,
                verified.header_type.as_str_name(),
                verified.size
            );
            Ok(())
        }
        Command::ConfigUpdate(command) => run_config_update(command),
        Command::VerifyBlock { config, epoch, blocks } => {
            if blocks.len() > MAX_BLOCK_FILES {
                return Err(CliError::Usage(format!("at most {MAX_BLOCK_FILES} blocks per run")));
            }
            let genesis = read_block(&config)?;
            let blocks = blocks.iter().map(|p| read_block(p)).collect::<Result<Vec<_>, _>>()?;
            let channel = verify_blocks(&genesis, &blocks, epoch)?;
            for block in &blocks {
                println!(
                    "ok: block {} of channel {}: data hash, link and certificate (quorum {} of {}) verified",
                    block.number(),
                    channel.channel_id,
                    channel.quorum(),
                    channel.n()
                );
            }
            Ok(())
        }
    }
}

fn run_config_update(command: ConfigUpdateCommand) -> Result<(), CliError> {
    match command {
        ConfigUpdateCommand::Create {
            current,
            out,
            add_consenter,
            remove_consenter,
            rotate_identity,
            rotate_tls,
            set_config,
            force,
        } => {
            check_writable(&out, force)?;
            let current = read_current_config(&current)?;
            let mut next = match &set_config {
                Some(path) => read_yaml::<ChannelConfig>(path)?,
                None => current.clone(),
            };
            next.sequence = current
                .sequence
                .checked_add(1)
                .ok_or_else(|| CliError::Usage("the configuration sequence cannot grow any more".into()))?;
            if let Some(path) = add_consenter {
                let consenter = read_yaml::<Consenter>(&path)?;
                if next.consenter(consenter.id).is_some() {
                    return Err(CliError::Usage(format!(
                        "consenter id {} is already in the channel: choose an unused id",
                        consenter.id
                    )));
                }
                next.consenters.push(consenter);
            }
            if let Some(id) = remove_consenter {
                consenter_mut(&mut next, id)?;
                next.consenters.retain(|c| c.id != id);
            }
            for spec in &rotate_identity {
                let (id, pem) = read_rotation(spec, "--rotate-identity")?;
                consenter_mut(&mut next, id)?.identity_cert = pem;
            }
            for spec in &rotate_tls {
                let (id, pem) = read_rotation(spec, "--rotate-tls")?;
                consenter_mut(&mut next, id)?.tls_cert = pem;
            }
            check_transition(&current, &next, ca_tools::now_unix())?;
            write(&out, &propose(&next).encode_to_vec())?;
            println!("{}", diff_summary(&current, &next));
            println!(
                "unsigned config update of channel {} written to {}: collect admin signatures with `channels \
                 config-update sign --update {} --msp <admin msp dir>`",
                next.channel_id,
                out.display(),
                out.display()
            );
            Ok(())
        }
        ConfigUpdateCommand::Sign { update, msp, msp_id, out } => {
            let mut envelope = read_update(&update)?;
            let admin = Msp::load(msp_id.as_deref(), &msp).map_err(|e| CliError::Pki(e.to_string()))?;
            sign_update(&mut envelope, &admin)?;
            let out = out.unwrap_or(update);
            write(&out, &envelope.encode_to_vec())?;
            println!(
                "signed by an admin of {}; the update in {} now carries {} signature(s)",
                admin.msp_id,
                out.display(),
                envelope.signatures.len()
            );
            Ok(())
        }
        ConfigUpdateCommand::Envelope { update, msp, msp_id, channel, out, force } => {
            check_writable(&out, force)?;
            let update = read_update(&update)?;
            ChannelConfig::from_canonical_bytes(&update.config).map_err(ConfigUpdateError::InvalidConfig)?;
            let submitter = Msp::load(msp_id.as_deref(), &msp).map_err(|e| CliError::Pki(e.to_string()))?;
            let envelope = update_envelope(&channel, &update, &submitter, ca_tools::now_unix())?;
            write(&out, &envelope.encode_to_vec())?;
            println!(
                "config update envelope for channel {channel} by {} written to {}: check it with `channels \
                 config-update verify` and submit it with `orderer client submit-envelope` within 15 minutes",
                submitter.msp_id,
                out.display()
            );
            Ok(())
        }
        ConfigUpdateCommand::Verify { current, envelope } => {
            let current = read_current_config(&current)?;
            let verifier = ConfigUpdateVerifier::new(&current)?;
            let bytes = read_bounded(&envelope, CONFIG_UPDATE_BYTES_MAX as u64)?;
            let updated = verifier.verify_submitted(&bytes, ca_tools::now_unix())?;
            println!(
                "ok: config update {} takes channel {} to sequence {}, approved by admins of {} (policy {}, {} \
                 organisations)",
                updated.tx_id,
                updated.config.channel_id,
                updated.config.sequence,
                updated.signer_orgs.join(", "),
                current.admin_policy,
                current.orgs.len()
            );
            println!("{}", diff_summary(&current, &updated.config));
            Ok(())
        }
    }
}

/// The current configuration from a genesis block, a block holding only a
/// config update, or a CONFIG / CONFIG_UPDATE envelope.
fn read_current_config(path: &Path) -> Result<ChannelConfig, CliError> {
    let bytes = read_bounded(path, MAX_INSPECT_BYTES as u64)?;
    let with_path = |e: ConfigUpdateError| CliError::Usage(format!("{}: {e}", path.display()));
    match Block::decode_bounded(&bytes, MAX_INSPECT_BYTES) {
        Ok(block) if block.header.is_some() && block.data.is_some() => current_config_from_block(&block),
        _ => current_config_from_envelope(&bytes),
    }
    .map_err(with_path)
}

fn read_update(path: &Path) -> Result<ConfigUpdateEnvelope, CliError> {
    let bytes = read_bounded(path, CONFIG_UPDATE_BYTES_MAX as u64)?;
    ConfigUpdateEnvelope::decode(bytes.as_slice()).map_err(|e| {
        CliError::Usage(format!("{}: not a config update made by `channels config-update create`: {e}", path.display()))
    })
}

/// A YAML (or JSON) file of `T`.
fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, CliError> {
    let bytes = read_bounded(path, MAX_CONFIG_BYTES as u64)?;
    serde_norway::from_slice(&bytes).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
}

fn consenter_mut(config: &mut ChannelConfig, id: u32) -> Result<&mut Consenter, CliError> {
    let ids: Vec<String> = config.consenters.iter().map(|c| c.id.to_string()).collect();
    config.consenters.iter_mut().find(|c| c.id == id).ok_or_else(|| {
        CliError::Usage(format!("the channel has no consenter {id} (its consenters are {})", ids.join(", ")))
    })
}

/// `ID=PEMFILE` of a --rotate-* option: the id and the PEM text.
fn read_rotation(spec: &str, option: &str) -> Result<(u32, String), CliError> {
    let usage = || CliError::Usage(format!("{option} {spec:?}: expected ID=PEMFILE, e.g. {option} 3=new-cert.pem"));
    let (id, file) = spec.split_once('=').ok_or_else(usage)?;
    let id: u32 = id.trim().parse().map_err(|_| usage())?;
    Ok((id, channels::files::read_pem(Path::new(file))?))
}

fn load_signer(spec: &str) -> Result<(u32, SigningKey), CliError> {
    let usage = || {
        CliError::Usage(format!("--sign {spec:?}: expected ID=MSPDIR, e.g. --sign 1=crypto/Org1/orderers/orderer0/msp"))
    };
    let (id, dir) = spec.split_once('=').ok_or_else(usage)?;
    let id: u32 = id.trim().parse().map_err(|_| usage())?;
    let msp = Msp::load(None, Path::new(dir)).map_err(|e| CliError::Pki(e.to_string()))?;
    Ok((id, msp.key))
}

fn read_block(path: &Path) -> Result<Block, CliError> {
    let bytes = read_bounded(path, MAX_INSPECT_BYTES as u64)?;
    Block::decode_bounded(&bytes, MAX_INSPECT_BYTES).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
}

fn check_writable(path: &Path, force: bool) -> Result<(), CliError> {
    if path.exists() && !force {
        return Err(CliError::Exists { path: path.to_path_buf() });
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    std::fs::write(path, bytes).map_err(|source| CliError::Write { path: path.to_path_buf(), source })
}
