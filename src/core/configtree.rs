//! Fabric's channel configuration tree (`common.Config`), decoded: every value typed by its key
//! and every policy by its type, as Fabric's `channelconfig` reads them, and re-encoded to the
//! exact bytes it came from (map entries keep their order: see `proto/common/configtx.proto`).
//! This is the first part of issue 20 (Fabric's configuration as OSN's own); what a value means
//! to the ordering service comes next.

pub mod json;

use bytes::Bytes;
use prost::Message;

use crate::proto::common::{
    policy::PolicyType, BlockDataHashingStructure, Capabilities, ConfigGroup, Consortium, HashingAlgorithm,
    ImplicitMetaPolicy, OrdererAddresses, Policy, SignaturePolicyEnvelope,
};
use crate::proto::msp::{FabricMspConfig, IdemixMspConfig, MspConfig};
use crate::proto::orderer::{BatchSize, BatchTimeout, ChannelRestrictions, ConsensusType, KafkaBrokers};
use crate::proto::peer::{AcLs, AnchorPeers};

/// A configuration value, by the key it is stored under.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    HashingAlgorithm(HashingAlgorithm),
    BlockDataHashingStructure(BlockDataHashingStructure),
    /// "OrdererAddresses" (channel) and "Endpoints" (an orderer organisation, Fabric 1.4.2+).
    Addresses(OrdererAddresses),
    Consortium(Consortium),
    Capabilities(Capabilities),
    ConsensusType(ConsensusType),
    BatchSize(BatchSize),
    BatchTimeout(BatchTimeout),
    KafkaBrokers(KafkaBrokers),
    ChannelRestrictions(ChannelRestrictions),
    Msp(Box<Msp>),
    AnchorPeers(AnchorPeers),
    Acls(AcLs),
    /// "ChannelCreationPolicy" of a consortium.
    ChannelCreationPolicy(Policy),
}

/// An organisation's MSP, with its configuration decoded by type.
#[derive(Debug, Clone, PartialEq)]
pub enum Msp {
    Fabric(Box<FabricMspConfig>),
    Idemix(Box<IdemixMspConfig>),
}

/// A policy's rule, decoded by type.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Signature(SignaturePolicyEnvelope),
    ImplicitMeta(ImplicitMetaPolicy),
}

fn decode<M: Message + Default>(what: &str, raw: &[u8]) -> Result<M, String> {
    M::decode(raw).map_err(|e| format!("{what} does not decode: {e}"))
}

impl Value {
    /// The value stored under `key`; an error names a key Fabric 1.4 does not know, or bytes
    /// that are not its type.
    pub fn decode(key: &str, raw: &[u8]) -> Result<Value, String> {
        Ok(match key {
            "HashingAlgorithm" => Value::HashingAlgorithm(decode(key, raw)?),
            "BlockDataHashingStructure" => Value::BlockDataHashingStructure(decode(key, raw)?),
            "OrdererAddresses" | "Endpoints" => Value::Addresses(decode(key, raw)?),
            "Consortium" => Value::Consortium(decode(key, raw)?),
            "Capabilities" => Value::Capabilities(decode(key, raw)?),
            "ConsensusType" => Value::ConsensusType(decode(key, raw)?),
            "BatchSize" => Value::BatchSize(decode(key, raw)?),
            "BatchTimeout" => Value::BatchTimeout(decode(key, raw)?),
            "KafkaBrokers" => Value::KafkaBrokers(decode(key, raw)?),
            "ChannelRestrictions" => Value::ChannelRestrictions(decode(key, raw)?),
            "MSP" => {
                let msp: MspConfig = decode(key, raw)?;
                Value::Msp(Box::new(match msp.r#type {
                    0 => Msp::Fabric(Box::new(decode("MSP (FABRIC)", &msp.config)?)),
                    1 => Msp::Idemix(Box::new(decode("MSP (IDEMIX)", &msp.config)?)),
                    other => return Err(format!("MSP of unknown type {other}")),
                }))
            }
            "AnchorPeers" => Value::AnchorPeers(decode(key, raw)?),
            "ACLs" => Value::Acls(decode(key, raw)?),
            "ChannelCreationPolicy" => Value::ChannelCreationPolicy(decode(key, raw)?),
            other => return Err(format!("unknown configuration value '{other}'")),
        })
    }

    /// The value's bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Value::HashingAlgorithm(v) => v.encode_to_vec(),
            Value::BlockDataHashingStructure(v) => v.encode_to_vec(),
            Value::Addresses(v) => v.encode_to_vec(),
            Value::Consortium(v) => v.encode_to_vec(),
            Value::Capabilities(v) => v.encode_to_vec(),
            Value::ConsensusType(v) => v.encode_to_vec(),
            Value::BatchSize(v) => v.encode_to_vec(),
            Value::BatchTimeout(v) => v.encode_to_vec(),
            Value::KafkaBrokers(v) => v.encode_to_vec(),
            Value::ChannelRestrictions(v) => v.encode_to_vec(),
            Value::Msp(msp) => {
                let (r#type, config) = match msp.as_ref() {
                    Msp::Fabric(c) => (0, c.encode_to_vec()),
                    Msp::Idemix(c) => (1, c.encode_to_vec()),
                };
                MspConfig { r#type, config: Bytes::from(config) }.encode_to_vec()
            }
            Value::AnchorPeers(v) => v.encode_to_vec(),
            Value::Acls(v) => v.encode_to_vec(),
            Value::ChannelCreationPolicy(v) => v.encode_to_vec(),
        }
    }
}

impl Rule {
    /// A policy's rule; an error names a type Fabric's orderer does not evaluate.
    pub fn decode(policy: &Policy) -> Result<Rule, String> {
        match PolicyType::try_from(policy.r#type) {
            Ok(PolicyType::Signature) => Ok(Rule::Signature(decode("SignaturePolicyEnvelope", &policy.value)?)),
            Ok(PolicyType::ImplicitMeta) => Ok(Rule::ImplicitMeta(decode("ImplicitMetaPolicy", &policy.value)?)),
            _ => Err(format!("policy of unsupported type {}", policy.r#type)),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Rule::Signature(p) => p.encode_to_vec(),
            Rule::ImplicitMeta(p) => p.encode_to_vec(),
        }
    }
}

/// Every value and policy of a group and its subgroups, with its path (`/Channel/Orderer/BatchSize`),
/// in the order they are stored.
pub fn walk<'a>(group: &'a ConfigGroup, path: &str, visit: &mut dyn FnMut(&str, Item<'a>)) {
    for entry in &group.values {
        if let Some(value) = &entry.value {
            visit(&format!("{path}/{}", entry.key), Item::Value(&entry.key, &value.value));
        }
    }
    for entry in &group.policies {
        if let Some(policy) = entry.value.as_ref().and_then(|p| p.policy.as_ref()) {
            visit(&format!("{path}/{}", entry.key), Item::Policy(policy));
        }
    }
    for entry in &group.groups {
        if let Some(sub) = &entry.value {
            walk(sub, &format!("{path}/{}", entry.key), visit);
        }
    }
}

/// What [`walk`] visits.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    /// A value's key and bytes.
    Value(&'a str, &'a Bytes),
    Policy(&'a Policy),
}

#[cfg(test)]
mod tests;
