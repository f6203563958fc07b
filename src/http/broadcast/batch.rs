//! `POST /v1/channels/{channel}/broadcast:batch`: many envelopes in one request, the HTTP form of
//! Fabric's streaming Broadcast. The body is a JSON array of Envelopes (`application/json`) or
//! length-delimited protobuf Envelopes (`application/x-protobuf`: each preceded by its length as
//! a varint). The answer is one BroadcastResponse per envelope, in order, in the same framing,
//! with 200: each envelope has its own status, and a refused one does not stop the others. A
//! request that is not a sequence of envelopes (not an array, an item that is not a
//! `common.Envelope` object with only its two fields, bytes that do not decode as one) is answered
//! BAD_REQUEST with a single BroadcastResponse naming the first such item, like every other
//! error: the API document's schema for the body says the same, so what it calls valid is taken.
//!
//! All envelopes of a request reach the channel actor in one message, so they are relayed in
//! order with one mailbox hop.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Buf, Bytes, BytesMut};
use prost::Message as _;
use serde_json::value::RawValue;

use super::{authorise, body_limit, checked, decode_envelope, read_request, relay_in_order, Request};
use crate::actors::ChannelHandle;
use crate::http::negotiate::{fail, Format};
use crate::http::AppState;
use crate::proto::{BroadcastResponse, Status};

/// Splits a batch body into the raw envelopes it holds.
pub fn split(format: Format, mut body: Bytes) -> Result<Vec<Bytes>, String> {
    match format {
        Format::Json => {
            let items: Vec<&RawValue> = serde_json::from_slice(&body)
                .map_err(|e| format!("body is not a JSON array of common.Envelope objects: {e}"))?;
            Ok(items.into_iter().map(|raw| Bytes::copy_from_slice(raw.get().as_bytes())).collect())
        }
        Format::Protobuf => {
            let mut items = Vec::new();
            while body.has_remaining() {
                let at = items.len();
                let len = prost::encoding::decode_varint(&mut body)
                    .map_err(|e| format!("envelope {at}: unreadable length prefix: {e}"))?;
                if len > body.remaining() as u64 {
                    return Err(format!(
                        "envelope {at}: length prefix says {len} bytes but only {} remain; send each envelope \
                         preceded by its length as a varint",
                        body.remaining()
                    ));
                }
                items.push(body.split_to(len as usize));
            }
            Ok(items)
        }
    }
}

/// The answers, in the request's framing.
pub fn encode_answers(format: Format, answers: &[BroadcastResponse]) -> Bytes {
    match format {
        Format::Json => serde_json::to_vec(answers).map(Bytes::from).unwrap_or_default(),
        Format::Protobuf => {
            let mut out = BytesMut::new();
            for a in answers {
                // Encoding into a growable buffer cannot fail.
                let _ = a.encode_length_delimited(&mut out);
            }
            out.freeze()
        }
    }
}

pub async fn batch(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    // Never less than one envelope of the channel's AbsoluteMaxBytes needs.
    let max_batch = state.http.max_batch_bytes;
    let limit = |ch: &ChannelHandle, format| max_batch.max(body_limit(ch.batch_size().absolute_max_bytes, format));
    let Request { ch, format: in_format, out, body } = match read_request(&state, &path, &req, payload, limit).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let raws = match split(in_format, body) {
        Ok(r) if r.is_empty() => return fail(out, Status::BadRequest, "the batch holds no envelope"),
        Ok(r) => r,
        Err(info) => return fail(out, Status::BadRequest, info),
    };
    let max = state.http.max_batch_envelopes;
    if raws.len() > max {
        let info = format!("the batch holds {} envelopes, over this OSN's limit of {max} per request", raws.len());
        return fail(out, Status::RequestEntityTooLarge, info);
    }

    // Every item must be an envelope; then check each one, and relay the valid ones in one
    // message, in order.
    let mut candidates = Vec::with_capacity(raws.len());
    for (i, raw) in raws.into_iter().enumerate() {
        match decode_envelope(in_format, raw) {
            Ok((envelope, marshaled)) => candidates.push(checked(&ch, envelope, marshaled)),
            Err(info) => return fail(out, Status::BadRequest, format!("envelope {i} of the batch: {info}")),
        }
    }
    let checked = authorise(&state, &ch, candidates).await;
    let answers = futures_util::future::join_all(relay_in_order(&state, &ch, checked).await).await;
    HttpResponse::build(StatusCode::OK).content_type(out.content_type()).body(encode_answers(out, &answers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Envelope;

    #[test]
    fn splits_both_framings() {
        let envs: Vec<Envelope> = (1..=3u8)
            .map(|i| Envelope { payload: vec![i; i as usize].into(), signature: Default::default() })
            .collect();
        let mut delimited = BytesMut::new();
        for e in &envs {
            e.encode_length_delimited(&mut delimited).unwrap();
        }
        let parts = split(Format::Protobuf, delimited.freeze()).unwrap();
        let decoded: Vec<Envelope> = parts.into_iter().map(|p| Envelope::decode(p).unwrap()).collect();
        assert_eq!(decoded, envs);

        let json = serde_json::to_vec(&envs).unwrap();
        let parts = split(Format::Json, json.into()).unwrap();
        let decoded: Vec<Envelope> = parts.iter().map(|p| serde_json::from_slice(p).unwrap()).collect();
        assert_eq!(decoded, envs);

        // Splitting looks at the framing only; the handler decodes each item.
        let parts = split(Format::Json, Bytes::from_static(br#"[{"payload":"AQ=="}, 7, {"bogus":1}]"#)).unwrap();
        assert_eq!(parts.len(), 3);

        assert!(split(Format::Json, Bytes::from_static(b"{}")).unwrap_err().contains("JSON array"));
        let err = split(Format::Protobuf, Bytes::from_static(&[0x05, 1, 2])).unwrap_err();
        assert!(err.contains("envelope 0") && err.contains("5 bytes"), "{err}");
        assert!(split(Format::Protobuf, Bytes::new()).unwrap().is_empty());
    }

    #[test]
    fn answers_encode_in_order() {
        let answers = vec![super::super::success(), super::super::answer(Status::BadRequest, "no")];
        let mut delimited = encode_answers(Format::Protobuf, &answers);
        let mut got = Vec::new();
        while delimited.has_remaining() {
            got.push(BroadcastResponse::decode_length_delimited(&mut delimited).unwrap());
        }
        assert_eq!(got, answers);
        let json: Vec<BroadcastResponse> = serde_json::from_slice(&encode_answers(Format::Json, &answers)).unwrap();
        assert_eq!(json, answers);
    }
}
