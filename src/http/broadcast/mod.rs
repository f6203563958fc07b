//! Broadcast over HTTP: clients hand envelopes to a channel and are answered once Kafka
//! acknowledged each one (`acks=all`), or told why not. Three forms decode requests and encode
//! the answers of the service's broadcast steps (`service::broadcast`: check, authorise, relay):
//!
//! - `POST /v1/channels/{channel}/broadcast`: one Envelope in, one BroadcastResponse out;
//! - [`batch`]: `POST /v1/channels/{channel}/broadcast:batch`, many envelopes, one answer each;
//! - [`websocket`]: `GET /v1/channels/{channel}/broadcast`, a stream of envelopes and answers.

pub mod batch;
pub mod websocket;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use prost::Message as _;

use super::negotiate::{decode, fail, read_body, request_format, respond, response_format, Format};
use super::AppState;

use crate::actors::ChannelHandle;
use crate::proto::{BroadcastResponse, Envelope, Status};
pub use crate::service::broadcast::{
    acknowledged, answer, authorise, checked, relay_in_order, success, Authorised, Candidate,
};

/// Room for framing and JSON's base64 (4/3) around an envelope of AbsoluteMaxBytes.
pub fn body_limit(absolute_max_bytes: u32, format: Format) -> usize {
    let max = absolute_max_bytes as usize;
    match format {
        Format::Protobuf => max + 16 * 1024,
        Format::Json => max / 3 * 4 + 64 * 1024,
    }
}

/// Decodes one envelope sent in `format`; returns it with the bytes to relay. A protobuf body
/// already is the marshaled envelope and is relayed as received (every OSN orders the bytes in
/// the partition, so nothing depends on re-encoding); JSON is encoded once here.
pub fn decode_envelope(format: Format, raw: Bytes) -> Result<(Envelope, Bytes), String> {
    let envelope: Envelope = decode(format, raw.clone(), "common.Envelope")?;
    let marshaled = match format {
        Format::Protobuf => raw,
        Format::Json => envelope.encode_to_vec().into(),
    };
    Ok((envelope, marshaled))
}

/// Decodes one envelope for `ch` and runs the structural checks; or the answer refusing it.
pub fn precheck(ch: &ChannelHandle, format: Format, raw: Bytes) -> Result<Candidate, BroadcastResponse> {
    let (envelope, marshaled) = decode_envelope(format, raw).map_err(|info| answer(Status::BadRequest, info))?;
    checked(ch, envelope, marshaled)
}

/// The HTTP code mirroring a Fabric status.
pub fn http_code(status: i32) -> StatusCode {
    Status::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s.http_code()).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A POST request to a broadcast route, read: its channel, body, and request and answer formats.
pub struct Request {
    pub ch: ChannelHandle,
    pub format: Format,
    pub out: Format,
    pub body: Bytes,
}

/// Finds the channel, negotiates the formats and reads the body within `limit(channel, format)`;
/// or the error answer to send.
pub async fn read_request(
    state: &AppState,
    channel: &str,
    req: &HttpRequest,
    payload: web::Payload,
    limit: impl Fn(&ChannelHandle, Format) -> usize,
) -> Result<Request, HttpResponse> {
    let format = request_format(req);
    let out = response_format(req, *format.as_ref().unwrap_or(&Format::Json));
    let ch = state.channel(channel, out)?;
    let format = format.map_err(|info| fail(out, Status::BadRequest, info))?;
    let body = read_body(req, payload, limit(&ch, format)).await.map_err(|(status, info)| fail(out, status, info))?;
    Ok(Request { ch, format, out, body })
}

pub async fn broadcast(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let limit = |ch: &ChannelHandle, format| body_limit(ch.batch_size().absolute_max_bytes, format);
    let Request { ch, format, out, body } = match read_request(&state, &path, &req, payload, limit).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let candidate = precheck(&ch, format, body);
    let authorised = authorise(&state, &ch, vec![candidate]).await;
    let resp = match relay_in_order(&state, &ch, authorised).await.pop() {
        Some(answer) => answer.await,
        None => answer(Status::InternalServerError, "the envelope was not checked"),
    };
    respond(out, http_code(resp.status), &resp)
}
