//! `osn channel list`, `osn channel info`, `osn channel create` and `osn channel config get |
//! update | sign | send`: what channels an OSN serves, where each stands, creating channels, and
//! reading and changing a channel's configuration (with approvals collected offline). Creations and updates are Fabric's CONFIG_UPDATE
//! envelopes, computed here as `configtxgen -outputCreateChannelTx` and `configtxlator
//! compute_update` would, signed as `peer channel create | update` signs them.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use prost::Message as _;

use super::client::{
    decode_answer, get_message, get_message_as, read_authorization, unreachable, Endpoint, IdentityArgs,
};
use crate::core::channelconfig::OrderingValues;
use crate::core::configedit;
use crate::core::configtree::{walk, Item, Msp, Value};
use crate::core::genesis::{creation_update, organization_group, Organization};
use crate::identity::envelope::{approve, config_update};
use crate::identity::SigningIdentity;
use crate::proto::common::Config;
use crate::proto::osn::{channel_info, ChannelInfo, ChannelList};
use crate::proto::BatchSize;

/// The consortium `osn dev`'s genesis block defines, and Fabric's samples name.
pub const DEFAULT_CONSORTIUM: &str = "SampleConsortium";

#[derive(clap::Args, Debug)]
pub struct ChannelArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: ChannelCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ChannelCommand {
    /// Every channel with its height and status.
    List,
    /// One channel: height, last config block, Kafka position, batch settings, status.
    Info {
        /// The channel.
        channel: String,
    },
    /// Creates a channel, as `peer channel create` does: a creation update for a consortium of
    /// the system channel and some of its member organisations, approved by --identity and every
    /// --approve-with (the consortium's ChannelCreationPolicy: by default an admin of one of the
    /// members). Every OSN then creates it from the system channel.
    Create {
        #[command(flatten)]
        create: ChannelCreate,
        #[command(flatten)]
        signers: Signers,
        /// Write the signed CONFIG_UPDATE envelope to this file instead of sending it (for
        /// `peer channel create -f`, or to send it later with `osn broadcast`).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// The channel's configuration: `get` (as a reader) or `update` (as admins).
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(clap::Subcommand, Debug)]
pub enum ConfigCommand {
    /// The configuration in force: sequence, batch size and timeout, brokers, organisations,
    /// policies (asked as a reader of the channel, signed with --identity). --json prints it as
    /// `configtxlator proto_decode --type common.Config` does; --output writes its protobuf.
    Get {
        /// The channel.
        #[arg(long)]
        channel: String,
        #[command(flatten)]
        identity: IdentityArgs,
        /// Write the `common.Config` (protobuf) to this file, as `configtxlator` reads it.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Changes the configuration, as `peer channel update` does: reads the configuration in
    /// force, applies the changes asked, computes the update (`configtxlator compute_update`'s
    /// read and write sets), and sends it signed by --identity and approved by it and every
    /// --approve-with. The approvals must satisfy the mod_policy of each element it changes:
    /// batch settings are the orderer organisations' admins' (/Channel/Orderer/Admins),
    /// organisations the channel's admins' (/Channel/Application/Admins, a majority).
    Update {
        /// The channel.
        #[arg(long)]
        channel: String,
        #[command(flatten)]
        edits: Box<ConfigEdits>,
        #[command(flatten)]
        signers: Signers,
        /// Write the signed CONFIG_UPDATE envelope to this file instead of sending it: other
        /// admins approve it with `osn channel config sign` (or `peer channel signconfigtx`),
        /// and `osn channel config send` (or `peer channel update -f`) sends it.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Adds --identity's approval to a CONFIG_UPDATE envelope file, as `peer channel
    /// signconfigtx` does: its signature over the update, and the envelope signed again by it.
    /// The file is rewritten in place, for the next admin or for `osn channel config send`.
    Sign {
        /// The envelope file (from --output, `configtxgen -outputCreateChannelTx`, or Fabric's
        /// `peer channel signconfigtx`).
        file: PathBuf,
        #[command(flatten)]
        identity: IdentityArgs,
    },
    /// Sends a CONFIG_UPDATE envelope file, approved by --identity too unless it already is,
    /// as `peer channel update -f` does (and `peer channel create -f` for a channel the OSN does
    /// not have: the update is then a creation). Prints the configuration it led to.
    Send {
        /// The envelope file.
        file: PathBuf,
        #[command(flatten)]
        identity: IdentityArgs,
    },
}

/// The changes `osn channel config update` makes to the configuration in force.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConfigEdits {
    #[command(flatten)]
    batch: BatchFlags,
    /// Add (or replace) the organisation whose Fabric MSP directory (`cacerts/`, optional
    /// `config.yaml`, `admincerts/`, ...) this is, with --org-msp-id (or its `mspid` file).
    #[arg(long = "add-org", value_name = "MSP_DIR")]
    add_organizations: Vec<PathBuf>,
    /// The MSP ID of --add-org's directory, when it has no `mspid` file.
    #[arg(long = "org-msp-id", value_name = "MSP_ID")]
    org_msp_id: Option<String>,
    /// Remove the organisation of this name (its group's name: the MSP ID as OSN and Fabric's
    /// samples name it).
    #[arg(long = "remove-org", value_name = "NAME")]
    remove_organizations: Vec<String>,
    /// On a system channel: how many channels may be created through it (0 = no limit).
    #[arg(long, value_name = "N")]
    max_channels: Option<u64>,
    /// Set a policy, PATH=RULE: PATH as Fabric names it (`/Channel/Application/Writers`,
    /// `/Channel/Application/Org1MSP/Admins`), RULE as configtx.yaml writes it (`ANY Writers`,
    /// `MAJORITY Admins`, `OR('Org1MSP.admin', AND('Org2MSP.member', 'Org3MSP.peer'))`).
    /// A new policy's mod_policy is Admins. Repeat for more.
    #[arg(long = "set-policy", value_name = "PATH=RULE")]
    set_policies: Vec<String>,
    /// An application organisation's anchor peer, ORG=HOST:PORT (the peers given for an
    /// organisation replace its anchor peers; repeat for more peers and organisations).
    #[arg(long = "anchor-peer", value_name = "ORG=HOST:PORT")]
    anchor_peers: Vec<String>,
}

/// Who signs a config transaction.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Signers {
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Another identity that approves the update (repeat for more): its config signature is added.
    #[arg(long = "approve-with", value_name = "DIR")]
    pub approvers: Vec<PathBuf>,
}

/// Batch settings of an update; unset ones keep their current values.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BatchFlags {
    /// Most envelopes in a block (MaxMessageCount).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<u32>,
    /// Largest envelope accepted, in bytes (AbsoluteMaxBytes).
    #[arg(long, value_name = "BYTES")]
    pub absolute_max_bytes: Option<u32>,
    /// Bytes after which a block is cut (PreferredMaxBytes).
    #[arg(long, value_name = "BYTES")]
    pub preferred_max_bytes: Option<u32>,
    /// How long a pending batch waits before it is cut: a Go duration such as `2s` or `500ms`.
    #[arg(long, value_name = "DURATION")]
    pub batch_timeout: Option<String>,
}

impl BatchFlags {
    /// The batch size with these flags over `current`.
    fn batch_size(&self, current: BatchSize) -> Option<BatchSize> {
        let any = self.batch_size.is_some() || self.absolute_max_bytes.is_some() || self.preferred_max_bytes.is_some();
        any.then(|| BatchSize {
            max_message_count: self.batch_size.unwrap_or(current.max_message_count),
            absolute_max_bytes: self.absolute_max_bytes.unwrap_or(current.absolute_max_bytes),
            preferred_max_bytes: self.preferred_max_bytes.unwrap_or(current.preferred_max_bytes),
        })
    }
}

/// What `osn channel create` makes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ChannelCreate {
    /// The new channel's name: [a-z][a-z0-9.-]*, at most 249 characters.
    #[arg(long)]
    pub channel: String,
    /// A member organisation, by its group name in the consortium (the MSP ID, in OSN's and
    /// Fabric's samples); repeat for more. Default: the signer's MSP ID.
    #[arg(long = "org", value_name = "NAME")]
    pub organizations: Vec<String>,
    /// The consortium of the system channel the members belong to.
    #[arg(long, default_value = DEFAULT_CONSORTIUM)]
    pub consortium: String,
}

impl ChannelCreate {
    /// The creation update (configtxgen's, with Fabric 1.4's application capability V1_4_2).
    pub fn update(&self, signer: &SigningIdentity) -> crate::proto::common::ConfigUpdate {
        let orgs =
            if self.organizations.is_empty() { vec![signer.msp_id().to_owned()] } else { self.organizations.clone() };
        let consortium = if self.consortium.is_empty() { DEFAULT_CONSORTIUM } else { &self.consortium };
        creation_update(&self.channel, consortium, &orgs, &["V1_4_2".into()])
    }
}

impl Signers {
    fn load(&self) -> anyhow::Result<(SigningIdentity, Vec<SigningIdentity>)> {
        let approvers = self
            .approvers
            .iter()
            .map(|dir| {
                SigningIdentity::load(dir).with_context(|| format!("cannot load the identity in {}", dir.display()))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok((self.identity.load_admin()?, approvers))
    }
}

/// Posts a signed config transaction (protobuf) and decodes the answer, or says why it failed.
pub async fn post_config<M: prost::Message + Default>(
    client: &awc::Client,
    url: &str,
    envelope: Bytes,
) -> anyhow::Result<M> {
    let resp = client
        .post(url)
        .insert_header(("Content-Type", "application/x-protobuf"))
        .insert_header(("Accept", "application/x-protobuf"))
        .send_body(envelope)
        .await
        .map_err(|e| unreachable(url, e))?;
    decode_answer(resp, url, 64 << 20).await
}

/// Creates a channel through `endpoint`: `POST /v1/channels` with the creation update signed by
/// `signer` and approved by it and `approvers`. Answers the new channel's info.
pub async fn create_channel(
    endpoint: &Endpoint,
    signer: &SigningIdentity,
    approvers: &[SigningIdentity],
    create: &ChannelCreate,
) -> anyhow::Result<ChannelInfo> {
    let client = endpoint.client(Duration::from_secs(60))?;
    let approvers: Vec<&SigningIdentity> = approvers.iter().collect();
    let envelope = config_update(signer, &create.update(signer), &approvers);
    post_config(&client, &format!("{}/v1/channels", endpoint.base()), envelope.encode_to_vec().into()).await
}

/// Creates the channel unless the OSN already has it (`osn dev`'s channel).
pub async fn ensure_channel(
    endpoint: &Endpoint,
    signer: &SigningIdentity,
    create: &ChannelCreate,
) -> anyhow::Result<()> {
    let client = endpoint.client(Duration::from_secs(10))?;
    let url = format!("{}/v1/channels/{}", endpoint.base(), create.channel);
    if get_message::<ChannelInfo>(&client, &url).await.is_ok() {
        return Ok(());
    }
    create_channel(endpoint, signer, &[], create).await.map(|_| ())
}

/// The configuration in force on `channel`, read as `reader`.
pub async fn get_config(endpoint: &Endpoint, reader: &SigningIdentity, channel: &str) -> anyhow::Result<Config> {
    let client = endpoint.client(Duration::from_secs(10))?;
    let authorization = read_authorization(reader, channel);
    let url = format!("{}/v1/channels/{channel}/config", endpoint.base());
    get_message_as(&client, &url, Some(&authorization)).await
}

impl ConfigEdits {
    /// These changes applied to `config`.
    fn apply(&self, config: &Config) -> anyhow::Result<Config> {
        let mut next = config.clone();
        let values = OrderingValues::read(config).map_err(anyhow::Error::msg)?;
        if let Some(bs) = self.batch.batch_size(values.batch_size) {
            configedit::set_batch_size(&mut next, bs).map_err(anyhow::Error::msg)?;
        }
        if let Some(timeout) = &self.batch.batch_timeout {
            configedit::set_batch_timeout(&mut next, timeout).map_err(anyhow::Error::msg)?;
        }
        if let Some(n) = self.max_channels {
            configedit::set_max_channels(&mut next, n).map_err(anyhow::Error::msg)?;
        }
        for dir in &self.add_organizations {
            let msp_id = match &self.org_msp_id {
                Some(id) => id.to_owned(),
                None => crate::identity::layout::read_msp_id(dir).with_context(|| {
                    format!("{}: pass --org-msp-id for a directory without an mspid file", dir.display())
                })?,
            };
            let msp = crate::identity::fabric_msp::verifying_config(dir, &msp_id)?;
            let group = organization_group(&Organization::application(&msp_id, msp));
            configedit::put_organization(&mut next, &["Application"], &msp_id, group).map_err(anyhow::Error::msg)?;
        }
        for name in &self.remove_organizations {
            configedit::remove_organization(&mut next, &["Application"], name).map_err(anyhow::Error::msg)?;
        }
        for setting in &self.set_policies {
            let (path, rule) =
                setting.split_once('=').with_context(|| format!("--set-policy '{setting}': expected PATH=RULE"))?;
            let (groups, name) = configedit::policy_path(path.trim()).map_err(anyhow::Error::msg)?;
            let policy =
                crate::core::policydsl::policy(rule.trim()).map_err(|e| anyhow::anyhow!("--set-policy {path}: {e}"))?;
            configedit::set_policy(&mut next, &groups, name, policy).map_err(anyhow::Error::msg)?;
        }
        let mut anchors: Vec<(String, Vec<(String, i32)>)> = Vec::new();
        for setting in &self.anchor_peers {
            let bad = || format!("--anchor-peer '{setting}': expected ORG=HOST:PORT");
            let (org, address) = setting.split_once('=').with_context(bad)?;
            let (host, port) = address.rsplit_once(':').with_context(bad)?;
            let port: u16 = port.parse().ok().filter(|p| *p > 0).with_context(bad)?;
            if host.is_empty() {
                anyhow::bail!(bad());
            }
            match anchors.iter_mut().find(|(o, _)| o == org) {
                Some((_, peers)) => peers.push((host.to_owned(), port.into())),
                None => anchors.push((org.to_owned(), vec![(host.to_owned(), port.into())])),
            }
        }
        for (org, peers) in &anchors {
            configedit::set_anchor_peers(&mut next, org, peers).map_err(anyhow::Error::msg)?;
        }
        Ok(next)
    }
}

/// Reads a CONFIG_UPDATE envelope file.
fn read_update(file: &std::path::Path) -> anyhow::Result<crate::proto::Envelope> {
    let raw = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let envelope = crate::proto::Envelope::decode(raw.as_slice())
        .with_context(|| format!("{} is not a protobuf envelope (common.Envelope)", file.display()))?;
    crate::core::config::UpdateRequest::parse(&envelope)
        .map_err(|e| anyhow::anyhow!("{} is not a config update envelope: {e}", file.display()))?;
    Ok(envelope)
}

fn phase(p: i32) -> &'static str {
    channel_info::Phase::try_from(p).map(|p| p.as_str_name()).unwrap_or("UNKNOWN")
}

pub async fn run(args: ChannelArgs) -> anyhow::Result<()> {
    let client = args.endpoint.client(Duration::from_secs(10))?;
    let base = args.endpoint.base();
    match args.command {
        ChannelCommand::List => {
            let list: ChannelList = get_message(&client, &format!("{base}/v1/channels")).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            println!("{:<32} {:>10}  STATUS", "CHANNEL", "HEIGHT");
            for c in &list.channels {
                println!("{:<32} {:>10}  {}", c.name, c.height, phase(c.status));
            }
        }
        ChannelCommand::Info { channel } => {
            let info: ChannelInfo = get_message(&client, &format!("{base}/v1/channels/{channel}")).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&info)?);
                return Ok(());
            }
            let bs = info.batch_size.unwrap_or_default();
            let kafka = info.kafka.unwrap_or_default();
            println!("channel        {}", info.name);
            println!(
                "status         {}{}",
                phase(info.status),
                if info.status_reason.is_empty() { String::new() } else { format!(" ({})", info.status_reason) }
            );
            println!("height         {}", info.height);
            println!("last config    block {} (configuration sequence {})", info.last_config, info.config_sequence);
            println!(
                "kafka          topic {} partition {}, last offset persisted {}",
                kafka.topic, kafka.partition, kafka.last_offset_persisted
            );
            println!(
                "batch size     {} messages, {} bytes preferred, {} bytes absolute max",
                bs.max_message_count, bs.preferred_max_bytes, bs.absolute_max_bytes
            );
            println!("batch timeout  {}", info.batch_timeout);
            println!("restarts       {}", info.restarts);
            println!("lag            {} bytes behind the partition (estimated)", info.lag_bytes);
        }
        ChannelCommand::Create { create, signers, output } => {
            let (signer, approvers) = signers.load()?;
            if let Some(file) = output {
                let approvers: Vec<&SigningIdentity> = approvers.iter().collect();
                let envelope = config_update(&signer, &create.update(&signer), &approvers);
                std::fs::write(&file, envelope.encode_to_vec())
                    .with_context(|| format!("cannot write {}", file.display()))?;
                println!("wrote the creation of channel {} to {}", create.channel, file.display());
                return Ok(());
            }
            let info = create_channel(&args.endpoint, &signer, &approvers, &create).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&info)?);
                return Ok(());
            }
            println!("created channel {} (status {}, height {})", info.name, phase(info.status), info.height);
        }
        ChannelCommand::Config(ConfigCommand::Update { channel, edits, signers, output }) => {
            let (signer, approvers) = signers.load()?;
            let current = get_config(&args.endpoint, &signer, &channel).await?;
            let next = edits.apply(&current)?;
            let update =
                crate::core::configtx::compute_update(&channel, &current, &next).map_err(anyhow::Error::msg)?;
            let approvers: Vec<&SigningIdentity> = approvers.iter().collect();
            let envelope = config_update(&signer, &update, &approvers);
            if let Some(file) = output {
                std::fs::write(&file, envelope.encode_to_vec())
                    .with_context(|| format!("cannot write {}", file.display()))?;
                println!("wrote the update of channel {channel} to {}", file.display());
                return Ok(());
            }
            let url = format!("{base}/v1/channels/{channel}/config");
            let client = args.endpoint.client(Duration::from_secs(60))?;
            let config: Config = post_config(&client, &url, envelope.encode_to_vec().into()).await?;
            show_config(&channel, &config, args.json)?;
        }
        ChannelCommand::Config(ConfigCommand::Sign { file, identity }) => {
            let signer = identity.load_admin()?;
            let (approved, added) = approve(&signer, &read_update(&file)?).map_err(anyhow::Error::msg)?;
            std::fs::write(&file, approved.encode_to_vec())
                .with_context(|| format!("cannot write {}", file.display()))?;
            let count = crate::core::config::UpdateRequest::parse(&approved)
                .map(|r| r.update_envelope.signatures.len())
                .unwrap_or_default();
            let who = signer.msp_id();
            if added {
                println!("added the approval of {who} to {} ({count} approvals)", file.display());
            } else {
                println!("{} already holds the approval of this {who} identity ({count} approvals)", file.display());
            }
        }
        ChannelCommand::Config(ConfigCommand::Send { file, identity }) => {
            let signer = identity.load_admin()?;
            let (approved, _) = approve(&signer, &read_update(&file)?).map_err(anyhow::Error::msg)?;
            let channel = crate::core::config::UpdateRequest::parse(&approved)
                .map_err(anyhow::Error::msg)?
                .channel_header
                .channel_id;
            let client = args.endpoint.client(Duration::from_secs(60))?;
            let exists = get_message::<ChannelInfo>(&client, &format!("{base}/v1/channels/{channel}")).await.is_ok();
            let body: Bytes = approved.encode_to_vec().into();
            if exists {
                let url = format!("{base}/v1/channels/{channel}/config");
                let config: Config = post_config(&client, &url, body).await?;
                show_config(&channel, &config, args.json)?;
            } else {
                let info: ChannelInfo = post_config(&client, &format!("{base}/v1/channels"), body).await?;
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&info)?);
                    return Ok(());
                }
                println!("created channel {} (status {}, height {})", info.name, phase(info.status), info.height);
            }
        }
        ChannelCommand::Config(ConfigCommand::Get { channel, identity, output }) => {
            let config = get_config(&args.endpoint, &identity.load()?, &channel).await?;
            if let Some(file) = output {
                std::fs::write(&file, config.encode_to_vec())
                    .with_context(|| format!("cannot write {}", file.display()))?;
                println!(
                    "wrote the configuration of channel {channel} (sequence {}) to {}",
                    config.sequence,
                    file.display()
                );
                return Ok(());
            }
            show_config(&channel, &config, args.json)?;
        }
    }
    Ok(())
}

/// Prints a configuration: configtxlator's JSON, or a summary.
fn show_config(channel: &str, config: &Config, json: bool) -> anyhow::Result<()> {
    if json {
        let shown = crate::core::configtree::json::config(config).map_err(anyhow::Error::msg)?;
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(());
    }
    println!("channel        {channel} (configuration sequence {})", config.sequence);
    match OrderingValues::read(config) {
        Ok(v) => {
            let bs = v.batch_size;
            println!(
                "batch size     {} messages, {} bytes preferred, {} bytes absolute max",
                bs.max_message_count, bs.preferred_max_bytes, bs.absolute_max_bytes
            );
            println!("batch timeout  {}", humantime::format_duration(v.batch_timeout));
            println!("kafka brokers  {}", v.kafka_brokers.join(", "));
            if v.max_channels > 0 {
                println!("max channels   {}", v.max_channels);
            }
            if let Some(c) = &v.consortium {
                println!("consortium     {c}");
            }
            let caps = |l: &[String]| if l.is_empty() { "-".to_owned() } else { l.join(", ") };
            println!(
                "capabilities   channel {}, orderer {}, application {}",
                caps(&v.channel_capabilities),
                caps(&v.orderer_capabilities),
                caps(&v.application_capabilities)
            );
        }
        Err(e) => println!("(not a configuration OSN can run: {e})"),
    }
    if let Some(group) = &config.channel_group {
        println!("organisations");
        walk(group, "/Channel", &mut |path, item| {
            if let Item::Value("MSP", raw) = item {
                if let Ok(Value::Msp(msp)) = Value::decode("MSP", raw) {
                    let at = path.trim_end_matches("/MSP");
                    match *msp {
                        Msp::Fabric(c) => {
                            let roots: Vec<String> = c
                                .root_certs
                                .iter()
                                .map(|pem| {
                                    crate::core::msp::Certificate::from_pem(pem)
                                        .map(|c| c.subject)
                                        .unwrap_or_else(|e| format!("(unreadable: {e})"))
                                })
                                .collect();
                            let node_ous = c.fabric_node_ous.as_ref().is_some_and(|n| n.enable);
                            println!(
                                "  {at:<44} {} roots: {}{}",
                                c.name,
                                roots.join("; "),
                                if node_ous { " (NodeOUs)" } else { "" }
                            );
                        }
                        Msp::Idemix(c) => println!("  {at:<44} {} (idemix)", c.name),
                    }
                }
            }
        });
        if let Ok(policies) = crate::core::fabric_policy::Policies::of(group) {
            println!("policies");
            for path in ["/Channel/Readers", "/Channel/Writers", "/Channel/Admins", "/Channel/Orderer/BlockValidation"]
            {
                if policies.contains(path) {
                    println!("  {path:<34} {}", policies.describe(path));
                }
            }
        }
    }
    Ok(())
}
