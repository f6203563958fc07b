//! Structural validation of a broadcast envelope, in Fabric's order of checks: empty payload,
//! size, payload, header, channel header, channel ID, header type, signature header. Signatures,
//! certificates and policies are checked by [`super::access`], after these.

use bytes::Bytes;
use prost::Message as _;

use crate::proto::{ChannelHeader, Envelope, HeaderType, Payload, SignatureHeader, Status};

/// Why an envelope was refused, with the Fabric status it maps to.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Invalid {
    #[error("envelope has an empty payload")]
    EmptyPayload,
    #[error("envelope is {size} bytes (payload + signature), over the channel's AbsoluteMaxBytes of {max} bytes")]
    TooLarge { size: usize, max: u32 },
    #[error("envelope payload does not decode as a common.Payload: {0}")]
    BadPayload(String),
    #[error("envelope payload has no header")]
    MissingHeader,
    #[error("envelope payload header has no channel header")]
    MissingChannelHeader,
    #[error("channel header does not decode as a common.ChannelHeader: {0}")]
    BadChannelHeader(String),
    #[error("channel header names channel '{got}' but the envelope was sent to channel '{want}'")]
    WrongChannel { got: String, want: String },
    #[error("header type {0} is not accepted by broadcast: {1}")]
    WrongType(String, &'static str),
    #[error("envelope payload header has no signature header (it names the creator)")]
    MissingSignatureHeader,
    #[error("signature header does not decode as a common.SignatureHeader: {0}")]
    BadSignatureHeader(String),
}

impl Invalid {
    pub fn status(&self) -> Status {
        match self {
            Invalid::TooLarge { .. } => Status::RequestEntityTooLarge,
            _ => Status::BadRequest,
        }
    }
}

/// An envelope that passed the structural checks.
#[derive(Debug, Clone)]
pub struct Checked {
    pub channel_header: ChannelHeader,
    pub header_type: HeaderType,
    /// payload + signature length.
    pub size: usize,
    /// The SignatureHeader's creator (a marshaled `msp.SerializedIdentity`).
    pub creator: Bytes,
}

impl Checked {
    /// The ChannelHeader timestamp in whole seconds since the Unix epoch.
    pub fn timestamp(&self) -> Option<i64> {
        self.channel_header.timestamp.as_ref().map(|t| t.seconds)
    }
}

/// A Deliver request that passed the structural checks.
#[derive(Debug, Clone)]
pub struct SeekRequest {
    pub seek_info: crate::proto::SeekInfo,
    pub channel_header: ChannelHeader,
    pub creator: Bytes,
}

impl SeekRequest {
    pub fn timestamp(&self) -> Option<i64> {
        self.channel_header.timestamp.as_ref().map(|t| t.seconds)
    }
}

/// Checks an envelope broadcast to `channel` whose limit is `absolute_max_bytes`.
pub fn check_broadcast(envelope: &Envelope, channel: &str, absolute_max_bytes: u32) -> Result<Checked, Invalid> {
    if envelope.payload.is_empty() {
        return Err(Invalid::EmptyPayload);
    }
    let size = envelope.payload.len() + envelope.signature.len();
    if size > absolute_max_bytes as usize {
        return Err(Invalid::TooLarge { size, max: absolute_max_bytes });
    }
    let Opened { channel_header, signature_header, .. } = open(envelope)?;
    if channel_header.channel_id != channel {
        return Err(Invalid::WrongChannel { got: channel_header.channel_id.clone(), want: channel.to_owned() });
    }
    let header_type = HeaderType::try_from(channel_header.r#type);
    let name = || header_type.map(|t| t.as_str_name().to_owned()).unwrap_or_else(|_| channel_header.r#type.to_string());
    let header_type =
        match header_type {
            Ok(HeaderType::DeliverSeekInfo) => {
                return Err(Invalid::WrongType(name(), "send DELIVER_SEEK_INFO envelopes to the deliver route"))
            }
            Ok(HeaderType::ConfigUpdate) => return Err(Invalid::WrongType(
                name(),
                "send config updates to POST /v1/channels/{channel}/config, and channel creations to POST /v1/channels",
            )),
            Ok(HeaderType::Config | HeaderType::OrdererTransaction) => {
                return Err(Invalid::WrongType(
                    name(),
                    "only OSNs order these; send a CONFIG_UPDATE envelope to POST /v1/channels/{channel}/config",
                ))
            }
            Ok(t) => t,
            // Fabric orders header types it does not know as plain messages; so do we.
            Err(_) => HeaderType::Message,
        };
    let creator = creator(signature_header)?;
    Ok(Checked { channel_header, header_type, size, creator })
}

/// The creator of a payload header's signature header.
fn creator(signature_header: Bytes) -> Result<Bytes, Invalid> {
    if signature_header.is_empty() {
        return Err(Invalid::MissingSignatureHeader);
    }
    SignatureHeader::decode(signature_header).map(|h| h.creator).map_err(|e| Invalid::BadSignatureHeader(e.to_string()))
}

/// The channel header of an envelope, decoded: what a transport without a channel in its
/// address (gRPC) routes the envelope by.
pub fn channel_header_of(envelope: &Envelope) -> Result<ChannelHeader, Invalid> {
    open(envelope).map(|opened| opened.channel_header)
}

/// An envelope's payload opened, in Fabric's order of checks (payload, header, channel header):
/// the decoded channel header, the signature header's bytes and the data.
struct Opened {
    channel_header: ChannelHeader,
    signature_header: Bytes,
    data: Bytes,
}

fn open(envelope: &Envelope) -> Result<Opened, Invalid> {
    if envelope.payload.is_empty() {
        return Err(Invalid::EmptyPayload);
    }
    let payload = Payload::decode(envelope.payload.clone()).map_err(|e| Invalid::BadPayload(e.to_string()))?;
    let header = payload.header.ok_or(Invalid::MissingHeader)?;
    if header.channel_header.is_empty() {
        return Err(Invalid::MissingChannelHeader);
    }
    let channel_header = decode_channel_header(header.channel_header)?;
    Ok(Opened { channel_header, signature_header: header.signature_header, data: payload.data })
}

/// Decodes the channel header bytes of a payload header.
pub fn decode_channel_header(raw: Bytes) -> Result<ChannelHeader, Invalid> {
    ChannelHeader::decode(raw).map_err(|e| Invalid::BadChannelHeader(e.to_string()))
}

/// Checks a Deliver request envelope and returns its SeekInfo, channel header and creator.
pub fn check_seek_request(envelope: &Envelope, channel: &str) -> Result<SeekRequest, Invalid> {
    let Opened { channel_header, signature_header, data } = open(envelope)?;
    if channel_header.channel_id != channel {
        return Err(Invalid::WrongChannel { got: channel_header.channel_id, want: channel.to_owned() });
    }
    if channel_header.r#type != HeaderType::DeliverSeekInfo as i32 {
        return Err(Invalid::WrongType(
            channel_header.r#type.to_string(),
            "deliver expects a DELIVER_SEEK_INFO envelope",
        ));
    }
    let seek_info = crate::proto::SeekInfo::decode(data).map_err(|e| Invalid::BadPayload(format!("SeekInfo: {e}")))?;
    let creator = creator(signature_header)?;
    Ok(SeekRequest { seek_info, channel_header, creator })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Header;

    fn envelope(channel_header: Option<ChannelHeader>, data: &[u8]) -> Envelope {
        let payload = Payload {
            header: Some(Header {
                channel_header: channel_header.map(|c| c.encode_to_vec().into()).unwrap_or_default(),
                signature_header: SignatureHeader { creator: Bytes::from_static(b"me"), nonce: Bytes::new() }
                    .encode_to_vec()
                    .into(),
            }),
            data: Bytes::copy_from_slice(data),
        };
        Envelope { payload: payload.encode_to_vec().into(), signature: Bytes::from_static(b"sig") }
    }

    fn header(t: HeaderType, channel: &str) -> Option<ChannelHeader> {
        Some(ChannelHeader { r#type: t as i32, channel_id: channel.into(), ..Default::default() })
    }

    fn check(env: Envelope, max: u32, want: Result<HeaderType, Status>) {
        let got = check_broadcast(&env, "ch", max).map(|c| c.header_type).map_err(|e| e.status());
        assert_eq!(got, want, "{:?}", check_broadcast(&env, "ch", max).err());
    }

    #[test]
    fn broadcast_checks() {
        check(
            envelope(header(HeaderType::EndorserTransaction, "ch"), b"tx"),
            1000,
            Ok(HeaderType::EndorserTransaction),
        );
        check(envelope(header(HeaderType::Message, "ch"), b"tx"), 1000, Ok(HeaderType::Message));
        check(Envelope::default(), 1000, Err(Status::BadRequest));
        check(envelope(header(HeaderType::Message, "ch"), &[0; 2000]), 1000, Err(Status::RequestEntityTooLarge));
        check(
            Envelope { payload: Bytes::from_static(b"\xff\xff\xff"), signature: Bytes::new() },
            1000,
            Err(Status::BadRequest),
        );
        check(
            Envelope { payload: Payload::default().encode_to_vec().into(), signature: Bytes::new() },
            1000,
            Err(Status::BadRequest),
        );
        check(envelope(None, b"tx"), 1000, Err(Status::BadRequest));
        check(envelope(header(HeaderType::Message, "other"), b"tx"), 1000, Err(Status::BadRequest));
        check(envelope(header(HeaderType::DeliverSeekInfo, "ch"), b""), 1000, Err(Status::BadRequest));
        check(envelope(header(HeaderType::ConfigUpdate, "ch"), b""), 1000, Err(Status::BadRequest));
        check(envelope(header(HeaderType::Config, "ch"), b""), 1000, Err(Status::BadRequest));
        let unsigned = Payload {
            header: Some(Header {
                channel_header: header(HeaderType::Message, "ch").unwrap().encode_to_vec().into(),
                signature_header: Bytes::new(),
            }),
            data: Bytes::new(),
        };
        let unsigned = Envelope { payload: unsigned.encode_to_vec().into(), signature: Bytes::new() };
        assert_eq!(check_broadcast(&unsigned, "ch", 1000).unwrap_err(), Invalid::MissingSignatureHeader);
        assert_eq!(
            check_broadcast(&envelope(header(HeaderType::Message, "ch"), b"tx"), "ch", 1000).unwrap().creator,
            Bytes::from_static(b"me")
        );
        let info = check_broadcast(&envelope(header(HeaderType::Message, "other"), b"tx"), "ch", 1000)
            .unwrap_err()
            .to_string();
        assert!(info.contains("'other'") && info.contains("'ch'"), "{info}");
    }
}
