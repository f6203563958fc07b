//! What `configtxgen -outputBlock` writes for a Kafka ordering service's system channel, as
//! Fabric 1.4's encoder builds it: the configuration tree of a profile (its values, Fabric's
//! default mod_policies and implicit-meta policies, the organisations' signature policies), and
//! the unsigned genesis block that holds it. `osn dev` boots from such a block; tests compare it
//! with configtxgen's own.

use bytes::Bytes;
use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::proto::common::{
    implicit_meta_policy, policy::PolicyType, signature_policy, BlockDataHashingStructure, Capabilities,
    CapabilityEntry, Config, ConfigEnvelope, ConfigGroup, ConfigGroupEntry, ConfigPolicy, ConfigPolicyEntry,
    ConfigValue, ConfigValueEntry, HashingAlgorithm, ImplicitMetaPolicy, OrdererAddresses, Policy, SignaturePolicy,
    SignaturePolicyEnvelope,
};
use crate::proto::msp::{
    msp_principal::Classification, msp_role::MspRoleType, FabricMspConfig, MspConfig, MspPrincipal, MspRole,
};
use crate::proto::orderer::{BatchSize, BatchTimeout, ChannelRestrictions, ConsensusType, KafkaBrokers};
use crate::proto::{Block, ChannelHeader, Envelope, Header, HeaderType, Payload, SignatureHeader};

const ADMINS: &str = "Admins";
const ORDERER_ADMINS: &str = "/Channel/Orderer/Admins";

/// An organisation of a profile: its group name, MSP, and the Readers / Writers / Admins
/// signature policies configtx.yaml gives it.
#[derive(Debug, Clone)]
pub struct Organization {
    pub name: String,
    pub msp: FabricMspConfig,
    pub readers: SignaturePolicyEnvelope,
    pub writers: SignaturePolicyEnvelope,
    pub admins: SignaturePolicyEnvelope,
}

impl Organization {
    /// An orderer organisation as Fabric's samples configure one: members read and write,
    /// admins administer.
    pub fn orderer(name: &str, msp: FabricMspConfig) -> Self {
        let id = msp.name.clone();
        Organization {
            name: name.to_owned(),
            readers: any_of(&id, &[MspRoleType::Member]),
            writers: any_of(&id, &[MspRoleType::Member]),
            admins: any_of(&id, &[MspRoleType::Admin]),
            msp,
        }
    }

    /// A client organisation with NodeOUs as Fabric's samples configure one: admins, peers and
    /// clients read; admins and clients write; admins administer.
    pub fn application(name: &str, msp: FabricMspConfig) -> Self {
        let id = msp.name.clone();
        Organization {
            name: name.to_owned(),
            readers: any_of(&id, &[MspRoleType::Admin, MspRoleType::Peer, MspRoleType::Client]),
            writers: any_of(&id, &[MspRoleType::Admin, MspRoleType::Client]),
            admins: any_of(&id, &[MspRoleType::Admin]),
            msp,
        }
    }
}

/// `OR('Org.role1', 'Org.role2', ...)` as configtxgen compiles it: one of the roles' signatures.
pub fn any_of(msp_id: &str, roles: &[MspRoleType]) -> SignaturePolicyEnvelope {
    SignaturePolicyEnvelope {
        version: 0,
        rule: Some(SignaturePolicy {
            r#type: Some(signature_policy::Type::NOutOf(signature_policy::NOutOf {
                n: 1,
                rules: (0..roles.len())
                    .map(|i| SignaturePolicy { r#type: Some(signature_policy::Type::SignedBy(i as i32)) })
                    .collect(),
            })),
        }),
        identities: roles
            .iter()
            .map(|role| MspPrincipal {
                principal_classification: Classification::Role as i32,
                principal: MspRole { msp_identifier: msp_id.to_owned(), role: *role as i32 }.encode_to_vec().into(),
            })
            .collect(),
    }
}

/// A consortium: the organisations that may create channels together.
#[derive(Debug, Clone)]
pub struct Consortium {
    pub name: String,
    pub members: Vec<Organization>,
}

/// A Kafka system channel's profile (configtx.yaml's `Orderer` section and consortiums).
#[derive(Debug, Clone)]
pub struct SystemProfile {
    pub orderer_addresses: Vec<String>,
    pub batch_size: BatchSize,
    /// A Go duration, as configtx.yaml writes it (`2s`, `250ms`).
    pub batch_timeout: String,
    pub kafka_brokers: Vec<String>,
    /// Channels that may be created (0: no limit).
    pub max_channels: u64,
    pub orderer_organizations: Vec<Organization>,
    pub consortiums: Vec<Consortium>,
    pub channel_capabilities: Vec<String>,
    pub orderer_capabilities: Vec<String>,
}

impl SystemProfile {
    /// Fabric 1.4's sample values: batches of 500 messages, 10 MB absolute and 2 MB preferred,
    /// cut after 2 s; channel capability V1_4_3, orderer V1_4_2; no channel limit.
    pub fn kafka(kafka_brokers: Vec<String>, orderer_addresses: Vec<String>) -> Self {
        SystemProfile {
            orderer_addresses,
            batch_size: BatchSize {
                max_message_count: 500,
                absolute_max_bytes: 10 * 1024 * 1024,
                preferred_max_bytes: 2 * 1024 * 1024,
            },
            batch_timeout: "2s".into(),
            kafka_brokers,
            max_channels: 0,
            orderer_organizations: Vec::new(),
            consortiums: Vec::new(),
            channel_capabilities: vec!["V1_4_3".into()],
            orderer_capabilities: vec!["V1_4_2".into()],
        }
    }
}

fn value(key: &str, raw: Vec<u8>, mod_policy: &str) -> ConfigValueEntry {
    ConfigValueEntry {
        key: key.to_owned(),
        value: Some(ConfigValue { version: 0, value: raw.into(), mod_policy: mod_policy.to_owned() }),
    }
}

fn policy(key: &str, r#type: PolicyType, raw: Vec<u8>, mod_policy: &str) -> ConfigPolicyEntry {
    ConfigPolicyEntry {
        key: key.to_owned(),
        value: Some(ConfigPolicy {
            version: 0,
            policy: Some(Policy { r#type: r#type as i32, value: raw.into() }),
            mod_policy: mod_policy.to_owned(),
        }),
    }
}

fn implicit_meta(key: &str, rule: implicit_meta_policy::Rule, sub_policy: &str) -> ConfigPolicyEntry {
    let raw = ImplicitMetaPolicy { sub_policy: sub_policy.to_owned(), rule: rule as i32 }.encode_to_vec();
    policy(key, PolicyType::ImplicitMeta, raw, ADMINS)
}

/// Readers ANY Readers, Writers ANY Writers, Admins MAJORITY Admins.
fn standard_policies() -> Vec<ConfigPolicyEntry> {
    use implicit_meta_policy::Rule;
    vec![
        implicit_meta("Readers", Rule::Any, "Readers"),
        implicit_meta("Writers", Rule::Any, "Writers"),
        implicit_meta(ADMINS, Rule::Majority, ADMINS),
    ]
}

fn capabilities(names: &[String]) -> Vec<u8> {
    Capabilities {
        capabilities: names
            .iter()
            .map(|n| CapabilityEntry { key: n.clone(), value: Some(Default::default()) })
            .collect(),
    }
    .encode_to_vec()
}

fn group(key: &str, group: ConfigGroup) -> ConfigGroupEntry {
    ConfigGroupEntry { key: key.to_owned(), value: Some(group) }
}

/// An organisation's group: its MSP and its three signature policies, all under its Admins.
pub fn organization_group(org: &Organization) -> ConfigGroup {
    let msp = MspConfig { r#type: 0, config: org.msp.encode_to_vec().into() };
    let signature =
        |key: &str, p: &SignaturePolicyEnvelope| policy(key, PolicyType::Signature, p.encode_to_vec(), ADMINS);
    ConfigGroup {
        version: 0,
        groups: Vec::new(),
        values: vec![value("MSP", msp.encode_to_vec(), ADMINS)],
        policies: vec![
            signature(ADMINS, &org.admins),
            signature("Readers", &org.readers),
            signature("Writers", &org.writers),
        ],
        mod_policy: ADMINS.to_owned(),
    }
}

/// The system channel's configuration (sequence 0, every version 0) for a profile.
pub fn system_config(profile: &SystemProfile) -> Config {
    use implicit_meta_policy::Rule;
    let mut orderer = ConfigGroup {
        values: vec![
            value("BatchSize", profile.batch_size.encode_to_vec(), ADMINS),
            value("BatchTimeout", BatchTimeout { timeout: profile.batch_timeout.clone() }.encode_to_vec(), ADMINS),
            value(
                "ChannelRestrictions",
                ChannelRestrictions { max_count: profile.max_channels }.encode_to_vec(),
                ADMINS,
            ),
            value(
                "ConsensusType",
                ConsensusType { r#type: "kafka".into(), ..Default::default() }.encode_to_vec(),
                ADMINS,
            ),
            value("KafkaBrokers", KafkaBrokers { brokers: profile.kafka_brokers.clone() }.encode_to_vec(), ADMINS),
        ],
        policies: standard_policies(),
        mod_policy: ADMINS.into(),
        ..Default::default()
    };
    if !profile.orderer_capabilities.is_empty() {
        orderer.values.push(value("Capabilities", capabilities(&profile.orderer_capabilities), ADMINS));
    }
    orderer.policies.push(implicit_meta("BlockValidation", Rule::Any, "Writers"));
    orderer.groups = profile.orderer_organizations.iter().map(|o| group(&o.name, organization_group(o))).collect();

    let accept_all = SignaturePolicyEnvelope {
        version: 0,
        rule: Some(SignaturePolicy {
            r#type: Some(signature_policy::Type::NOutOf(signature_policy::NOutOf { n: 0, rules: Vec::new() })),
        }),
        identities: Vec::new(),
    };
    let creation = Policy {
        r#type: PolicyType::ImplicitMeta as i32,
        value: ImplicitMetaPolicy { sub_policy: ADMINS.into(), rule: Rule::Any as i32 }.encode_to_vec().into(),
    };
    let consortiums = ConfigGroup {
        groups: profile
            .consortiums
            .iter()
            .map(|c| {
                group(
                    &c.name,
                    ConfigGroup {
                        groups: c.members.iter().map(|o| group(&o.name, organization_group(o))).collect(),
                        values: vec![value("ChannelCreationPolicy", creation.encode_to_vec(), ORDERER_ADMINS)],
                        mod_policy: ORDERER_ADMINS.into(),
                        ..Default::default()
                    },
                )
            })
            .collect(),
        policies: vec![policy(ADMINS, PolicyType::Signature, accept_all.encode_to_vec(), ORDERER_ADMINS)],
        mod_policy: ORDERER_ADMINS.into(),
        ..Default::default()
    };

    let mut channel = ConfigGroup {
        groups: vec![group("Consortiums", consortiums), group("Orderer", orderer)],
        values: vec![
            value("BlockDataHashingStructure", BlockDataHashingStructure { width: u32::MAX }.encode_to_vec(), ADMINS),
            value("HashingAlgorithm", HashingAlgorithm { name: "SHA256".into() }.encode_to_vec(), ADMINS),
            value(
                "OrdererAddresses",
                OrdererAddresses { addresses: profile.orderer_addresses.clone() }.encode_to_vec(),
                ORDERER_ADMINS,
            ),
        ],
        policies: standard_policies(),
        mod_policy: ADMINS.into(),
        version: 0,
    };
    if !profile.channel_capabilities.is_empty() {
        channel.values.push(value("Capabilities", capabilities(&profile.channel_capabilities), ADMINS));
    }
    Config { sequence: 0, channel_group: Some(channel) }
}

/// The update that creates a channel of `consortium` with the member organisations `members`
/// (their group names), as `configtxgen -outputCreateChannelTx` writes it for a profile without
/// ACLs: the read set names the consortium and the members at version 0; the write set sets the
/// consortium and an Application group at version 1 (mod_policy Admins) with its capabilities
/// and Fabric's default Readers (ANY), Writers (ANY) and Admins (MAJORITY) policies.
pub fn creation_update(
    channel_id: &str,
    consortium: &str,
    members: &[String],
    application_capabilities: &[String],
) -> crate::proto::common::ConfigUpdate {
    let orgs = |mod_policy: &str| -> Vec<ConfigGroupEntry> {
        members
            .iter()
            .map(|m| group(m, ConfigGroup { mod_policy: mod_policy.to_owned(), ..Default::default() }))
            .collect()
    };
    let read = ConfigGroup {
        groups: vec![group("Application", ConfigGroup { groups: orgs(""), ..Default::default() })],
        values: vec![ConfigValueEntry { key: "Consortium".into(), value: Some(ConfigValue::default()) }],
        ..Default::default()
    };
    let mut application = ConfigGroup {
        version: 1,
        groups: orgs(""),
        policies: standard_policies(),
        mod_policy: ADMINS.into(),
        ..Default::default()
    };
    if !application_capabilities.is_empty() {
        application.values.push(value("Capabilities", capabilities(application_capabilities), ADMINS));
    }
    let write = ConfigGroup {
        groups: vec![group("Application", application)],
        values: vec![ConfigValueEntry {
            key: "Consortium".into(),
            value: Some(ConfigValue {
                value: crate::proto::common::Consortium { name: consortium.to_owned() }.encode_to_vec().into(),
                ..Default::default()
            }),
        }],
        ..Default::default()
    };
    crate::proto::common::ConfigUpdate {
        channel_id: channel_id.to_owned(),
        read_set: Some(read),
        write_set: Some(write),
        ..Default::default()
    }
}

/// The configuration channel `channel` starts with when created from the system channel
/// `system` with `members` of `consortium` (Fabric's template, then the creation update, approved
/// by `approvers`: identities whose signatures the caller trusts). For tools, benches and tests
/// that need a channel's configuration without a running network.
pub fn created_channel_config(
    system: &Config,
    channel: &str,
    consortium: &str,
    members: &[String],
    approvers: &[(super::msp::Identity, Bytes)],
) -> Result<Config, String> {
    let update = creation_update(channel, consortium, members, &["V1_4_2".into()]);
    let template = super::configtx::channel_template(system, channel, &update).map_err(|e| e.message)?;
    let envelope =
        crate::proto::common::ConfigUpdateEnvelope { config_update: update.encode_to_vec().into(), signatures: vec![] };
    super::configtx::Validator::new(channel, &template)
        .and_then(|v| v.propose(&envelope, approvers))
        .map_err(|e| e.message)
}

/// A Kafka system channel's configuration with no organisations (every implicit-meta policy
/// is then satisfied), cutting by `batch_size`: for tools, benches and tests of cutting alone.
pub fn bare_config(batch_size: BatchSize) -> Config {
    let mut profile = SystemProfile::kafka(vec!["127.0.0.1:9092".into()], vec!["127.0.0.1:7050".into()]);
    profile.batch_size = batch_size;
    system_config(&profile)
}

/// [`genesis_block`] of [`bare_config`] for `channel_id`, at time 0 with a zero nonce (the same
/// bytes every time).
pub fn bare_genesis(channel_id: &str, batch_size: BatchSize) -> Block {
    genesis_block(channel_id, &bare_config(batch_size), 0, [0; 24])
}

/// The genesis block configtxgen writes for a configuration: one unsigned CONFIG envelope
/// (channel header version 1, the time in seconds, tx_id = hex SHA-256 of the nonce, as the
/// creator is empty), no previous hash, five empty metadata entries.
pub fn genesis_block(channel_id: &str, config: &Config, timestamp_secs: i64, nonce: [u8; 24]) -> Block {
    let channel_header = ChannelHeader {
        r#type: HeaderType::Config as i32,
        version: 1,
        timestamp: Some(pbjson_types::Timestamp { seconds: timestamp_secs, nanos: 0 }),
        channel_id: channel_id.to_owned(),
        tx_id: super::block::hex(&Sha256::digest(nonce)),
        epoch: 0,
        extension: Bytes::new(),
        tls_cert_hash: Bytes::new(),
    };
    let signature_header = SignatureHeader { creator: Bytes::new(), nonce: Bytes::copy_from_slice(&nonce) };
    let data = ConfigEnvelope { config: Some(config.clone()), last_update: None }.encode_to_vec();
    let payload = Payload {
        header: Some(Header {
            channel_header: channel_header.encode_to_vec().into(),
            signature_header: signature_header.encode_to_vec().into(),
        }),
        data: data.into(),
    };
    let envelope = Envelope { payload: payload.encode_to_vec().into(), signature: Bytes::new() }.encode_to_vec();
    let mut block = super::block::build_block(0, Bytes::new(), vec![envelope.into()], 0, &Default::default());
    block.metadata = Some(crate::proto::BlockMetadata { metadata: vec![Bytes::new(); 5] });
    block
}

#[cfg(test)]
mod tests;
