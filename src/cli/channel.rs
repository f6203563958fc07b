//! `osn channel list`, `osn channel info`, `osn channel create` and `osn channel config get |
//! update`: what channels an OSN serves, where each stands, creating channels, and reading and
//! changing a channel's configuration.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use prost::Message as _;

use super::client::{
    decode_answer, get_message, get_message_as, read_authorization, unreachable, Endpoint, IdentityArgs,
};
use crate::config::PolicyConfig;
use crate::core::msp::Certificate;
use crate::core::policy::Policy;
use crate::identity::envelope::config_update;
use crate::identity::{load_org_msp, SigningIdentity};
use crate::proto::osn::{channel_info, ChannelConfig, ChannelInfo, ChannelList, ConfigUpdate, Organization};
use crate::proto::BatchSize;

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
    /// Creates a channel: a config transaction signed by --identity (an admin of an organisation
    /// allowed to create channels), ordered on the system channel; every OSN then creates it.
    Create {
        #[command(flatten)]
        create: ChannelCreate,
        #[command(flatten)]
        signers: Signers,
    },
    /// The channel's configuration: `get` (as a reader) or `update` (as admins).
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(clap::Subcommand, Debug)]
pub enum ConfigCommand {
    /// The configuration in force: sequence, organisations, policies, batch size and timeout
    /// (asked as a reader of the channel, signed with --identity).
    Get {
        /// The channel.
        #[arg(long)]
        channel: String,
        #[command(flatten)]
        identity: IdentityArgs,
    },
    /// Changes the configuration: a config update signed by --identity and approved by every
    /// --approve-with identity, which together must satisfy the channel's Admins policy. It is
    /// ordered alone in its own block and applies from the next block on, on every OSN.
    Update {
        /// The channel.
        #[arg(long)]
        channel: String,
        #[command(flatten)]
        batch: BatchFlags,
        /// Add (or replace) the organisation whose MSP directory (`mspid`, `cacerts/`) this is.
        #[arg(long = "add-org", value_name = "MSP_DIR")]
        add_organizations: Vec<PathBuf>,
        /// Remove the organisation with this MSP ID.
        #[arg(long = "remove-org", value_name = "MSP_ID")]
        remove_organizations: Vec<String>,
        /// New Writers policy: `members-of:ORG1,ORG2` or `admins-of:ORG1,ORG2[:AT_LEAST]`.
        #[arg(long, value_name = "POLICY")]
        writers: Option<String>,
        /// New Readers policy (same forms).
        #[arg(long, value_name = "POLICY")]
        readers: Option<String>,
        /// New Admins policy (same forms).
        #[arg(long, value_name = "POLICY")]
        admins: Option<String>,
        #[command(flatten)]
        signers: Signers,
    },
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

/// Batch settings of a new channel or an update; unset ones keep the current (or the system
/// channel's) values.
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
    /// How long a pending batch waits before it is cut, such as `2s` or `500ms`.
    #[arg(long, value_name = "DURATION")]
    pub batch_timeout: Option<String>,
}

impl BatchFlags {
    fn batch_size(&self) -> Option<BatchSize> {
        let any = self.batch_size.is_some() || self.absolute_max_bytes.is_some() || self.preferred_max_bytes.is_some();
        any.then(|| BatchSize {
            max_message_count: self.batch_size.unwrap_or(0),
            absolute_max_bytes: self.absolute_max_bytes.unwrap_or(0),
            preferred_max_bytes: self.preferred_max_bytes.unwrap_or(0),
        })
    }
}

/// What `osn channel create` makes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ChannelCreate {
    /// The new channel's name: [a-z][a-z0-9.-]*, at most 249 characters.
    #[arg(long)]
    pub channel: String,
    /// MSP ID of a member organisation (repeat for more; default: the signer's organisation).
    /// Members must be organisations the system channel knows.
    #[arg(long = "org", value_name = "MSP_ID")]
    pub organizations: Vec<String>,
    #[command(flatten)]
    pub batch: BatchFlags,
}

impl ChannelCreate {
    /// The config update that creates the channel, as `signer` would send it.
    pub fn update(&self, signer: &SigningIdentity) -> ConfigUpdate {
        let orgs =
            if self.organizations.is_empty() { vec![signer.msp_id().to_owned()] } else { self.organizations.clone() };
        ConfigUpdate {
            channel_id: self.channel.clone(),
            batch_size: self.batch.batch_size(),
            batch_timeout: self.batch.batch_timeout.clone().unwrap_or_default(),
            set_organizations: orgs.into_iter().map(|msp_id| Organization { msp_id, ..Default::default() }).collect(),
            ..Default::default()
        }
    }
}

/// `members-of:A,B` or `admins-of:A,B[:N]`, as a policy.
fn parse_policy(text: &str) -> anyhow::Result<crate::proto::osn::Policy> {
    let (kind, rest) =
        text.split_once(':').context("a policy is members-of:ORG1,ORG2 or admins-of:ORG1,ORG2[:AT_LEAST]")?;
    let (orgs, at_least) = match rest.rsplit_once(':') {
        Some((orgs, n)) => (orgs, Some(n.parse::<u32>().context("AT_LEAST must be a number")?)),
        None => (rest, None),
    };
    let orgs: Vec<String> = orgs.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    let config = match kind {
        "members-of" if at_least.is_none() => PolicyConfig { members_of: orgs, ..Default::default() },
        "admins-of" => PolicyConfig { admins_of: orgs, at_least, ..Default::default() },
        _ => anyhow::bail!("a policy is members-of:ORG1,ORG2 or admins-of:ORG1,ORG2[:AT_LEAST], not '{text}'"),
    };
    Ok(config.to_policy().map_err(anyhow::Error::msg)?.to_proto())
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
        Ok((self.identity.load()?, approvers))
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

/// Creates a channel through `endpoint`: `POST /v1/channels` with a config transaction signed by
/// `signer` and `approvers`. Answers the new channel's info.
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
        ChannelCommand::Create { create, signers } => {
            let (signer, approvers) = signers.load()?;
            let info = create_channel(&args.endpoint, &signer, &approvers, &create).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&info)?);
                return Ok(());
            }
            println!("created channel {} (status {}, height {})", info.name, phase(info.status), info.height);
        }
        ChannelCommand::Config(ConfigCommand::Update {
            channel,
            batch,
            add_organizations,
            remove_organizations,
            writers,
            readers,
            admins,
            signers,
        }) => {
            let (signer, approvers) = signers.load()?;
            let mut set_organizations = Vec::new();
            for dir in &add_organizations {
                let org: Organization = load_org_msp(dir)
                    .with_context(|| format!("cannot load the organisation in {}", dir.display()))?
                    .into();
                set_organizations.push(org);
            }
            let update = ConfigUpdate {
                channel_id: channel.clone(),
                batch_size: batch.batch_size(),
                batch_timeout: batch.batch_timeout.clone().unwrap_or_default(),
                set_organizations,
                remove_organizations,
                writers: writers.as_deref().map(parse_policy).transpose()?,
                readers: readers.as_deref().map(parse_policy).transpose()?,
                admins: admins.as_deref().map(parse_policy).transpose()?,
                ..Default::default()
            };
            let approvers: Vec<&SigningIdentity> = approvers.iter().collect();
            let envelope = config_update(&signer, &update, &approvers);
            let url = format!("{base}/v1/channels/{channel}/config");
            let client = args.endpoint.client(Duration::from_secs(60))?;
            let config: ChannelConfig = post_config(&client, &url, envelope.encode_to_vec().into()).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&config)?);
                return Ok(());
            }
            print_config(&channel, &config);
        }
        ChannelCommand::Config(ConfigCommand::Get { channel, identity }) => {
            let authorization = read_authorization(&identity.load()?, &channel);
            let url = format!("{base}/v1/channels/{channel}/config");
            let config: ChannelConfig = get_message_as(&client, &url, Some(&authorization)).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&config)?);
                return Ok(());
            }
            print_config(&channel, &config);
        }
    }
    Ok(())
}

fn print_config(channel: &str, config: &ChannelConfig) {
    let bs = config.batch_size.unwrap_or_default();
    println!("channel        {channel} (configuration sequence {})", config.sequence);
    println!(
        "batch size     {} messages, {} bytes preferred, {} bytes absolute max",
        bs.max_message_count, bs.preferred_max_bytes, bs.absolute_max_bytes
    );
    if !config.batch_timeout.is_empty() {
        println!("batch timeout  {}", config.batch_timeout);
    }
    if config.max_channels > 0 {
        println!("max channels   {}", config.max_channels);
    }
    let orgs = |list: &[Organization]| {
        for org in list {
            let roots: Vec<String> = org
                .root_certs
                .iter()
                .map(|pem| {
                    Certificate::from_pem(pem).map(|c| c.subject).unwrap_or_else(|e| format!("(unreadable: {e})"))
                })
                .collect();
            println!("  {:<24} roots: {}", org.msp_id, roots.join("; "));
        }
    };
    println!("organisations");
    orgs(&config.organizations);
    let policy = |name: &str, p: &Option<crate::proto::osn::Policy>, default: &str| {
        let text = match p {
            None => format!("{default} (the default)"),
            Some(p) => Policy::from_proto(p).map(|p| p.to_string()).unwrap_or_else(|e| format!("invalid: {e}")),
        };
        println!("{name:<14} {text}");
    };
    let members = "a member of one of the channel's organisations";
    policy("writers", &config.writers, members);
    policy("readers", &config.readers, members);
    policy("admins", &config.admins, "admins of a majority of the channel's organisations");
    println!("orderers");
    orgs(&config.orderer_organizations);
}
