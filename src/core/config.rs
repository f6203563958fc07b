//! Channel configuration: what makes a configuration valid, how a config update changes one, how a
//! new channel's configuration follows from the system channel's, and who signed an update.
//!
//! Both the OSN that receives an update and every OSN that consumes it run these functions; on
//! consumption they run with the envelope's own timestamp as the time, so every OSN reaches the
//! same verdict and derives the same configuration. Pure: no clock, no I/O.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;

use super::access::{Access, Denied, Verified};
use super::policy::PolicyName;
use crate::proto::osn::{ChannelConfig, ConfigEnvelope, ConfigUpdate, ConfigUpdateEnvelope};
use crate::proto::{BatchSize, ChannelHeader, Envelope, HeaderType, Payload, SignatureHeader};

/// Longest channel ID (a Kafka topic name).
pub const MAX_CHANNEL_ID: usize = 249;
/// Largest AbsoluteMaxBytes accepted: the producer's `message.max.bytes` (100 MiB).
pub const MAX_ABSOLUTE_BYTES: u32 = 100 * 1024 * 1024;
/// Longest batch timeout accepted.
pub const MAX_BATCH_TIMEOUT: Duration = Duration::from_secs(3600);
/// Most approvals (config signatures) a config update may carry: each is verified by every OSN.
pub const MAX_CONFIG_SIGNATURES: usize = 64;
/// The batch timeout of a channel whose update and system channel name none.
pub const DEFAULT_BATCH_TIMEOUT: &str = "2s";

/// Fabric's channel ID rule: `[a-z][a-z0-9.-]*`, at most 249 characters.
pub fn validate_channel_id(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !first_ok
        || name.len() > MAX_CHANNEL_ID
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    {
        let shown: String = name.chars().take(64).collect();
        let more = if name.chars().count() > 64 { "…" } else { "" };
        return Err(format!(
            "invalid channel ID '{shown}{more}': it must match [a-z][a-z0-9.-]* and be at most {MAX_CHANNEL_ID} characters"
        ));
    }
    Ok(())
}

/// A configuration's batch timeout, if it sets one.
pub fn batch_timeout(config: &ChannelConfig) -> Option<Duration> {
    parse_timeout(&config.batch_timeout).ok().flatten()
}

fn parse_timeout(text: &str) -> Result<Option<Duration>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let d = humantime::parse_duration(text).map_err(|e| format!("batch timeout '{text}': {e}"))?;
    validate_batch_timeout(d)?;
    Ok(Some(d))
}

/// The batch timeout limits every channel is held to, whether its configuration comes from the
/// configuration file, a create request or an update: more than 0, at most [`MAX_BATCH_TIMEOUT`].
pub fn validate_batch_timeout(d: Duration) -> Result<(), String> {
    if d.is_zero() || d > MAX_BATCH_TIMEOUT {
        return Err(format!(
            "batch timeout '{}' must be more than 0 and at most {}",
            humantime::format_duration(d),
            humantime::format_duration(MAX_BATCH_TIMEOUT)
        ));
    }
    Ok(())
}

/// The batch size limits every channel is held to, whether its configuration comes from the
/// configuration file, a create request or an update: a message count of at least 1, and
/// 0 < preferred max bytes <= absolute max bytes <= [`MAX_ABSOLUTE_BYTES`] (the producer's
/// `message.max.bytes`: a larger block limit would admit envelopes Kafka refuses).
pub fn validate_batch_size(bs: &BatchSize) -> Result<(), String> {
    if bs.max_message_count == 0 {
        return Err("batch size: max message count must be at least 1".into());
    }
    if bs.preferred_max_bytes == 0 || bs.absolute_max_bytes == 0 {
        return Err("batch size: preferred and absolute max bytes must be at least 1".into());
    }
    if bs.preferred_max_bytes > bs.absolute_max_bytes {
        return Err(format!(
            "batch size: preferred max bytes ({}) is over absolute max bytes ({})",
            bs.preferred_max_bytes, bs.absolute_max_bytes
        ));
    }
    if bs.absolute_max_bytes > MAX_ABSOLUTE_BYTES {
        return Err(format!(
            "batch size: absolute max bytes ({}) is over {MAX_ABSOLUTE_BYTES}, the largest record the producer sends",
            bs.absolute_max_bytes
        ));
    }
    Ok(())
}

/// Checks that every OSN could cut blocks and check access by this configuration.
pub fn validate(config: &ChannelConfig) -> Result<(), String> {
    validate_batch_size(config.batch_size.as_ref().ok_or("the configuration has no batch size")?)?;
    parse_timeout(&config.batch_timeout)?;
    if config.organizations.is_empty() {
        return Err("the configuration has no organisations: nobody could write to or read from the channel".into());
    }
    let mut seen = BTreeSet::new();
    for org in &config.organizations {
        if org.msp_id.is_empty() {
            return Err("an organisation has an empty MSP ID".into());
        }
        if !seen.insert(org.msp_id.as_str()) {
            return Err(format!("organisation '{}' is listed twice", org.msp_id));
        }
    }
    Access::new(config, 0).map(|_| ())
}

/// Applies an update to a channel's configuration: the fields it sets replace the current ones,
/// organisations are added, replaced or removed, and the sequence goes up by one.
pub fn apply(current: &ChannelConfig, update: &ConfigUpdate) -> Result<ChannelConfig, String> {
    let mut next = current.clone();
    next.sequence = current.sequence + 1;
    if let Some(bs) = update.batch_size {
        next.batch_size = Some(merge_batch_size(current.batch_size.unwrap_or_default(), bs));
    }
    if !update.batch_timeout.is_empty() {
        next.batch_timeout = update.batch_timeout.clone();
    }
    for id in &update.remove_organizations {
        let before = next.organizations.len();
        next.organizations.retain(|o| &o.msp_id != id);
        if next.organizations.len() == before {
            return Err(format!("cannot remove organisation '{id}': it is not in the channel"));
        }
    }
    for org in &update.set_organizations {
        if org.root_certs.is_empty() {
            return Err(format!("organisation '{}' has no root CA certificate", org.msp_id));
        }
        match next.organizations.iter_mut().find(|o| o.msp_id == org.msp_id) {
            Some(existing) => *existing = org.clone(),
            None => next.organizations.push(org.clone()),
        }
    }
    for (slot, new) in
        [(&mut next.writers, &update.writers), (&mut next.readers, &update.readers), (&mut next.admins, &update.admins)]
    {
        if new.is_some() {
            slot.clone_from(new);
        }
    }
    if next == (ChannelConfig { sequence: next.sequence, ..current.clone() }) {
        return Err("the update changes nothing".into());
    }
    validate(&next)?;
    Ok(next)
}

/// The genesis configuration of a channel created through the system channel: the member
/// organisations the update names (with the certificates the system channel holds for them), the
/// update's batch size, timeout and policies, or the system channel's batch size and timeout.
pub fn new_channel(system: &ChannelConfig, update: &ConfigUpdate) -> Result<ChannelConfig, String> {
    validate_channel_id(&update.channel_id)?;
    if !update.remove_organizations.is_empty() {
        return Err("a new channel has no organisations to remove".into());
    }
    if update.set_organizations.is_empty() {
        return Err("a new channel needs at least one member organisation".into());
    }
    let mut organizations = Vec::new();
    for wanted in &update.set_organizations {
        let known = system.organizations.iter().find(|o| o.msp_id == wanted.msp_id).ok_or_else(|| {
            let allowed: Vec<&str> = system.organizations.iter().map(|o| o.msp_id.as_str()).collect();
            format!(
                "organisation '{}' may not be a channel member: the system channel knows {}",
                wanted.msp_id,
                allowed.join(", ")
            )
        })?;
        let same = wanted.root_certs.is_empty()
            || (wanted.root_certs == known.root_certs && wanted.intermediate_certs == known.intermediate_certs);
        if !same {
            return Err(format!("organisation '{}': its certificates differ from the system channel's", wanted.msp_id));
        }
        organizations.push(known.clone());
    }
    let batch_timeout = if !update.batch_timeout.is_empty() {
        update.batch_timeout.clone()
    } else if !system.batch_timeout.is_empty() {
        system.batch_timeout.clone()
    } else {
        DEFAULT_BATCH_TIMEOUT.to_owned()
    };
    let config = ChannelConfig {
        sequence: 0,
        batch_size: Some(match update.batch_size {
            Some(bs) => merge_batch_size(system.batch_size.unwrap_or_default(), bs),
            None => system.batch_size.unwrap_or_default(),
        }),
        organizations,
        writers: update.writers.clone(),
        readers: update.readers.clone(),
        admins: update.admins.clone(),
        orderer_organizations: system.orderer_organizations.clone(),
        batch_timeout,
        max_channels: 0,
    };
    validate(&config)?;
    Ok(config)
}

/// An update's batch size over a current one: its zero fields keep the current values.
fn merge_batch_size(current: BatchSize, update: BatchSize) -> BatchSize {
    let pick = |new: u32, old: u32| if new == 0 { old } else { new };
    BatchSize {
        max_message_count: pick(update.max_message_count, current.max_message_count),
        absolute_max_bytes: pick(update.absolute_max_bytes, current.absolute_max_bytes),
        preferred_max_bytes: pick(update.preferred_max_bytes, current.preferred_max_bytes),
    }
}

/// A CONFIG_UPDATE envelope, decoded.
#[derive(Debug, Clone)]
pub struct UpdateRequest {
    pub channel_header: ChannelHeader,
    pub update: ConfigUpdate,
    envelope: Envelope,
    creator: Bytes,
    update_bytes: Bytes,
    signatures: Vec<(Bytes, Bytes, Bytes)>,
}

impl UpdateRequest {
    /// Decodes a CONFIG_UPDATE envelope and checks its structure.
    pub fn parse(envelope: &Envelope) -> Result<Self, String> {
        if envelope.payload.is_empty() {
            return Err("the envelope has an empty payload".into());
        }
        let payload = Payload::decode(envelope.payload.clone()).map_err(|e| format!("payload: {e}"))?;
        let header = payload.header.ok_or("the payload has no header")?;
        let channel_header =
            ChannelHeader::decode(header.channel_header).map_err(|e| format!("channel header: {e}"))?;
        if channel_header.r#type != HeaderType::ConfigUpdate as i32 {
            let name = HeaderType::try_from(channel_header.r#type)
                .map(|t| t.as_str_name().to_owned())
                .unwrap_or_else(|_| channel_header.r#type.to_string());
            return Err(format!("the envelope's header type is {name}, not CONFIG_UPDATE"));
        }
        if header.signature_header.is_empty() {
            return Err("the payload has no signature header (it names the creator)".into());
        }
        let creator =
            SignatureHeader::decode(header.signature_header).map_err(|e| format!("signature header: {e}"))?.creator;
        let update_env = ConfigUpdateEnvelope::decode(payload.data)
            .map_err(|e| format!("the data is not a ConfigUpdateEnvelope: {e}"))?;
        let update =
            ConfigUpdate::decode(update_env.config_update.clone()).map_err(|e| format!("config update: {e}"))?;
        if update.channel_id != channel_header.channel_id {
            return Err(format!(
                "the config update names channel '{}' but its channel header names '{}'",
                update.channel_id, channel_header.channel_id
            ));
        }
        if update_env.signatures.len() > MAX_CONFIG_SIGNATURES {
            return Err(format!(
                "the update carries {} signatures, over the {MAX_CONFIG_SIGNATURES} accepted",
                update_env.signatures.len()
            ));
        }
        let mut signatures = Vec::new();
        for (i, s) in update_env.signatures.iter().enumerate() {
            let creator = SignatureHeader::decode(s.signature_header.clone())
                .map_err(|e| format!("config signature {i}: signature header: {e}"))?
                .creator;
            signatures.push((creator, s.signature_header.clone(), s.signature.clone()));
        }
        Ok(UpdateRequest {
            channel_header,
            update,
            envelope: envelope.clone(),
            creator,
            update_bytes: update_env.config_update,
            signatures,
        })
    }

    /// The ChannelHeader timestamp, in seconds since the Unix epoch.
    pub fn timestamp(&self) -> Option<i64> {
        self.channel_header.timestamp.as_ref().map(|t| t.seconds)
    }

    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Verifies the envelope's signature and every config signature at `now`, and evaluates
    /// `policy` over all their signers. Returns the signers.
    pub fn authorise(&self, access: &Access, policy: PolicyName, now: i64) -> Result<Vec<Verified>, Denied> {
        let mut signers =
            vec![access.verify_signer(&self.creator, &self.envelope.payload, &self.envelope.signature, now)?];
        for (creator, header, signature) in &self.signatures {
            let mut message = Vec::with_capacity(header.len() + self.update_bytes.len());
            message.extend_from_slice(header);
            message.extend_from_slice(&self.update_bytes);
            signers.push(access.verify_signer(creator, &message, signature, now)?);
        }
        access.authorise_signers(&signers, policy)?;
        Ok(signers)
    }
}

/// The message a config signature signs: the marshaled signature header, then the update.
pub fn config_signature_input(signature_header: &[u8], config_update: &[u8]) -> Vec<u8> {
    [signature_header, config_update].concat()
}

/// Reads the ConfigEnvelope out of a marshaled CONFIG envelope, with its channel header.
pub fn config_envelope(envelope: &[u8]) -> Result<(ChannelHeader, ConfigEnvelope), String> {
    let (channel_header, data) = envelope_parts(envelope)?;
    if channel_header.r#type != HeaderType::Config as i32 {
        return Err(format!("header type {} is not CONFIG", channel_header.r#type));
    }
    // Ledgers written before ConfigEnvelope held the ChannelConfig itself as the data.
    let config_envelope = match ConfigEnvelope::decode(data.clone()) {
        Ok(c) if c.config.is_some() => c,
        _ => ConfigEnvelope {
            config: Some(ChannelConfig::decode(data).map_err(|e| format!("ConfigEnvelope: {e}"))?),
            last_update: None,
        },
    };
    Ok((channel_header, config_envelope))
}

/// The channel header and data of a marshaled envelope.
pub fn envelope_parts(envelope: &[u8]) -> Result<(ChannelHeader, Bytes), String> {
    let env = Envelope::decode(envelope).map_err(|e| format!("Envelope: {e}"))?;
    let payload = Payload::decode(env.payload).map_err(|e| format!("Payload: {e}"))?;
    let header = payload.header.ok_or("no payload header")?;
    let channel_header = ChannelHeader::decode(header.channel_header).map_err(|e| format!("ChannelHeader: {e}"))?;
    Ok((channel_header, payload.data))
}

#[cfg(test)]
mod tests;
