//! What the CLI clients share: building envelopes and seek requests, and URLs.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message as _;
use rand::RngCore;

use crate::core::block::hex;
use crate::proto::{ChannelHeader, Envelope, Header, HeaderType, Payload, SeekInfo, SignatureHeader};

/// Bytes of an envelope that are not the payload data (headers, framing), roughly.
const OVERHEAD: usize = 160;

fn now() -> pbjson_types::Timestamp {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    pbjson_types::Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

fn payload(channel: &str, kind: HeaderType, data: Bytes) -> Payload {
    let mut rng = rand::rng();
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let mut txid = [0u8; 32];
    rng.fill_bytes(&mut txid);
    let channel_header = ChannelHeader {
        r#type: kind as i32,
        version: 0,
        timestamp: Some(now()),
        channel_id: channel.to_owned(),
        tx_id: hex(&txid),
        epoch: 0,
        extension: Bytes::new(),
        tls_cert_hash: Bytes::new(),
    };
    let signature_header = SignatureHeader { creator: Bytes::new(), nonce: Bytes::copy_from_slice(&nonce) };
    Payload {
        header: Some(Header {
            channel_header: channel_header.encode_to_vec().into(),
            signature_header: signature_header.encode_to_vec().into(),
        }),
        data,
    }
}

/// An unsigned transaction envelope of about `size` bytes (signatures come with identities).
pub fn transaction(channel: &str, size: usize) -> Envelope {
    let mut data = vec![0u8; size.saturating_sub(OVERHEAD)];
    rand::rng().fill_bytes(&mut data);
    let payload = payload(channel, HeaderType::EndorserTransaction, data.into());
    Envelope { payload: payload.encode_to_vec().into(), signature: Bytes::new() }
}

/// A DELIVER_SEEK_INFO envelope.
pub fn seek_request(channel: &str, seek: &SeekInfo) -> Envelope {
    let payload = payload(channel, HeaderType::DeliverSeekInfo, seek.encode_to_vec().into());
    Envelope { payload: payload.encode_to_vec().into(), signature: Bytes::new() }
}

/// `base` without a trailing slash.
pub fn base_url(base: &str) -> String {
    base.trim_end_matches('/').to_owned()
}

/// The websocket URL of an http(s) base URL.
pub fn ws_url(base: &str) -> String {
    let base = base_url(base);
    if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_is_about_the_asked_size_and_valid() {
        for size in [200, 1024, 4096] {
            let env = transaction("ch", size);
            let len = env.encoded_len();
            assert!(len.abs_diff(size) < 64, "asked {size}, got {len}");
            crate::core::envelope::check_broadcast(&env, "ch", 1 << 20).unwrap();
        }
    }

    #[test]
    fn urls() {
        assert_eq!(ws_url("http://127.0.0.1:7050/"), "ws://127.0.0.1:7050");
        assert_eq!(ws_url("https://osn:7050"), "wss://osn:7050");
    }
}
