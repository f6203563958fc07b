//! Building signed envelopes: transactions, seek requests, config updates (with the approvals of
//! other admins), and the CONFIG envelopes an OSN derives from an update and orders.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message as _;
use rand::RngCore;

use super::SigningIdentity;
use crate::core::block::hex;
use crate::core::chain::{Derived, DerivedKind};
use crate::core::config::config_signature_input;
use crate::proto::common::{ConfigEnvelope, ConfigSignature, ConfigUpdate, ConfigUpdateEnvelope};
use crate::proto::{ChannelHeader, Envelope, Header, HeaderType, Payload, SignatureHeader};

fn now() -> pbjson_types::Timestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    pbjson_types::Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// Signs a payload: the envelope holding it and the signer's signature over its bytes.
pub fn sign(signer: &SigningIdentity, payload: &Payload) -> Envelope {
    let payload: Bytes = payload.encode_to_vec().into();
    let signature = signer.sign(&payload).into();
    Envelope { payload, signature }
}

/// The signature header naming `signer`, with a fresh nonce.
pub fn signature_header(signer: &SigningIdentity) -> SignatureHeader {
    SignatureHeader { creator: signer.serialized(), nonce: Bytes::copy_from_slice(&random::<24>()) }
}

/// A payload of `kind` for `channel`, created by `signer` now, with a random transaction ID.
pub fn payload(signer: &SigningIdentity, channel: &str, kind: HeaderType, data: Bytes) -> Payload {
    let channel_header = ChannelHeader {
        r#type: kind as i32,
        version: 0,
        timestamp: Some(now()),
        channel_id: channel.to_owned(),
        tx_id: hex(&random::<32>()),
        epoch: 0,
        extension: Bytes::new(),
        tls_cert_hash: Bytes::new(),
    };
    Payload {
        header: Some(Header {
            channel_header: channel_header.encode_to_vec().into(),
            signature_header: signature_header(signer).encode_to_vec().into(),
        }),
        data,
    }
}

/// One approval of a marshaled config update.
pub fn config_signature(signer: &SigningIdentity, config_update: &[u8]) -> ConfigSignature {
    let header: Bytes = signature_header(signer).encode_to_vec().into();
    let signature = signer.sign(&config_signature_input(&header, config_update)).into();
    ConfigSignature { signature_header: header, signature }
}

/// A CONFIG_UPDATE envelope for `update.channel_id`, as `peer channel create | update` sends it:
/// created and signed by `signer`, and approved by `signer` and each of `approvers` (a config
/// signature each: only these count for the update's policies, as in Fabric).
pub fn config_update(signer: &SigningIdentity, update: &ConfigUpdate, approvers: &[&SigningIdentity]) -> Envelope {
    let config_update: Bytes = update.encode_to_vec().into();
    let signatures =
        std::iter::once(signer).chain(approvers.iter().copied()).map(|a| config_signature(a, &config_update)).collect();
    let data = ConfigUpdateEnvelope { config_update, signatures }.encode_to_vec().into();
    sign(signer, &payload(signer, &update.channel_id, HeaderType::ConfigUpdate, data))
}

/// A CONFIG_UPDATE envelope approved by `signer` too, as `peer channel signconfigtx` (and
/// `peer channel update | create`, before sending) makes it: the update's bytes kept as they
/// are, `signer`'s config signature appended unless it approved already, and the envelope made
/// again for the channel it names and signed by `signer`. Whether an approval was added.
pub fn approve(signer: &SigningIdentity, envelope: &Envelope) -> Result<(Envelope, bool), String> {
    let request = crate::core::config::UpdateRequest::parse(envelope)?;
    let channel = request.channel_header.channel_id.clone();
    if channel.is_empty() {
        return Err("the config update envelope names no channel".into());
    }
    let mut approved = request.update_envelope;
    let creator = signer.serialized();
    let already = approved
        .signatures
        .iter()
        .any(|s| SignatureHeader::decode(s.signature_header.clone()).is_ok_and(|h| h.creator == creator));
    if !already {
        let signature = config_signature(signer, &approved.config_update);
        approved.signatures.push(signature);
    }
    let data = approved.encode_to_vec().into();
    Ok((sign(signer, &payload(signer, &channel, HeaderType::ConfigUpdate, data)), !already))
}

/// The record an OSN orders for a derived config update, signed by the OSN as Fabric's
/// `CreateSignedEnvelope` makes it (channel header version 0, the time in whole seconds, no
/// transaction ID, epoch 0): the channel's CONFIG envelope `ConfigEnvelope{config, last_update}`;
/// for a channel creation, that envelope (the new channel's, which becomes its block 0) wrapped
/// in an ORDERER_TRANSACTION envelope of the system channel `system_channel`.
pub fn config_record(signer: &SigningIdentity, derived: &Derived, system_channel: &str) -> Bytes {
    let data: Bytes =
        ConfigEnvelope { config: Some(derived.config.clone()), last_update: Some(derived.last_update.clone()) }
            .encode_to_vec()
            .into();
    let config = sign(signer, &orderer_payload(signer, derived.kind.channel(), HeaderType::Config, data));
    match derived.kind {
        DerivedKind::Update { .. } => config.encode_to_vec().into(),
        DerivedKind::Create { .. } => {
            let wrapped =
                orderer_payload(signer, system_channel, HeaderType::OrdererTransaction, config.encode_to_vec().into());
            sign(signer, &wrapped).encode_to_vec().into()
        }
    }
}

/// A payload as Fabric's orderer makes its own: version 0, whole seconds, no transaction ID.
fn orderer_payload(signer: &SigningIdentity, channel: &str, kind: HeaderType, data: Bytes) -> Payload {
    let mut payload = payload(signer, channel, kind, data);
    if let Some(header) = payload.header.as_mut() {
        let mut channel_header = ChannelHeader::decode(header.channel_header.clone()).unwrap_or_default();
        channel_header.tx_id = String::new();
        if let Some(t) = channel_header.timestamp.as_mut() {
            t.nanos = 0;
        }
        header.channel_header = channel_header.encode_to_vec().into();
    }
    payload
}
