//! Config update requests as they arrive: a CONFIG_UPDATE envelope decoded and checked for
//! structure (Fabric's `ConfigUpdateEnvelope`: the update as signed bytes and the approvals over
//! it), what each approval signed, and the CONFIG envelopes an OSN orders, read back.
//!
//! What an update may change and the configuration it yields are Fabric's rules, in
//! [`super::configtx`] and [`super::channelconfig`]. Pure: no clock, no I/O.

use bytes::Bytes;
use prost::Message as _;

use super::configtx::{signed_data, ConfigtxError, SignedData};
use crate::proto::common::{ConfigEnvelope, ConfigUpdate, ConfigUpdateEnvelope};
use crate::proto::{ChannelHeader, Envelope, HeaderType, Payload, SignatureHeader};

/// Longest channel ID (a Kafka topic name, and Fabric's limit).
pub const MAX_CHANNEL_ID: usize = 249;
/// Largest AbsoluteMaxBytes a config update may set: the producer's `message.max.bytes`
/// (100 MiB); a larger block limit would admit envelopes Kafka refuses.
pub const MAX_ABSOLUTE_BYTES: u32 = 100 * 1024 * 1024;
/// Most approvals (config signatures) a config update may carry: each is verified by every OSN.
pub const MAX_CONFIG_SIGNATURES: usize = 64;

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

/// A CONFIG_UPDATE envelope, decoded.
#[derive(Debug, Clone)]
pub struct UpdateRequest {
    pub channel_header: ChannelHeader,
    /// The update, decoded from the bytes its approvals signed.
    pub update: ConfigUpdate,
    /// The update as signed, with its approvals.
    pub update_envelope: ConfigUpdateEnvelope,
    /// The envelope's creator (a marshaled `msp.SerializedIdentity`).
    pub creator: Bytes,
    envelope: Envelope,
}

impl UpdateRequest {
    /// Decodes a CONFIG_UPDATE envelope and checks its structure: a payload with a channel
    /// header of type CONFIG_UPDATE and a signature header, a `ConfigUpdateEnvelope` whose
    /// update names the header's channel, and at most [`MAX_CONFIG_SIGNATURES`] approvals, each
    /// with a signature header that decodes.
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
        let update_envelope = ConfigUpdateEnvelope::decode(payload.data)
            .map_err(|e| format!("the data is not a ConfigUpdateEnvelope: {e}"))?;
        let update =
            ConfigUpdate::decode(update_envelope.config_update.clone()).map_err(|e| format!("config update: {e}"))?;
        if update.channel_id != channel_header.channel_id {
            return Err(format!(
                "the config update names channel '{}' but its channel header names '{}'",
                update.channel_id, channel_header.channel_id
            ));
        }
        if update_envelope.signatures.len() > MAX_CONFIG_SIGNATURES {
            return Err(format!(
                "the update carries {} signatures, over the {MAX_CONFIG_SIGNATURES} accepted",
                update_envelope.signatures.len()
            ));
        }
        signed_data(&update_envelope).map_err(|e: ConfigtxError| e.message)?;
        Ok(UpdateRequest { channel_header, update, update_envelope, creator, envelope: envelope.clone() })
    }

    /// The ChannelHeader timestamp, in seconds since the Unix epoch.
    pub fn timestamp(&self) -> Option<i64> {
        self.channel_header.timestamp.as_ref().map(|t| t.seconds)
    }

    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// What each approval signed (checked to decode when parsed).
    pub fn signed_data(&self) -> Vec<SignedData> {
        signed_data(&self.update_envelope).unwrap_or_default()
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
    let config_envelope = ConfigEnvelope::decode(data).map_err(|e| format!("ConfigEnvelope: {e}"))?;
    if config_envelope.config.is_none() {
        return Err("the ConfigEnvelope holds no configuration".into());
    }
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
