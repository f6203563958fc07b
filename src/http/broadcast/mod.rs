//! Broadcast: clients hand envelopes to a channel and are answered once Kafka acknowledged each
//! one (`acks=all`), or told why not. Three forms share the steps below (decode, check, relay):
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
use std::time::{Duration, Instant};

use crate::actors::{Broadcast, BroadcastBatch, BroadcastError, ChannelHandle, Enqueued};
use crate::core::envelope::check_broadcast;
use crate::proto::{BroadcastResponse, Envelope, Status};

/// Room for framing and JSON's base64 (4/3) around an envelope of AbsoluteMaxBytes.
pub fn body_limit(absolute_max_bytes: u32, format: Format) -> usize {
    let max = absolute_max_bytes as usize;
    match format {
        Format::Protobuf => max + 16 * 1024,
        Format::Json => max / 3 * 4 + 64 * 1024,
    }
}

pub fn answer(status: Status, info: impl Into<String>) -> BroadcastResponse {
    BroadcastResponse { status: status as i32, info: info.into() }
}

pub fn success() -> BroadcastResponse {
    answer(Status::Success, "")
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

/// Decodes and checks one envelope for `ch`; the bytes to relay, or the answer refusing it.
pub fn accept(ch: &ChannelHandle, format: Format, raw: Bytes) -> Result<Bytes, BroadcastResponse> {
    let (envelope, marshaled) = decode_envelope(format, raw).map_err(|info| answer(Status::BadRequest, info))?;
    check_broadcast(&envelope, &ch.name, ch.batch_size().absolute_max_bytes)
        .map_err(|invalid| answer(invalid.status(), invalid.to_string()))?;
    Ok(marshaled)
}

/// How long past the enqueue timeout the HTTP side waits for the actor's answer before giving up
/// on an actor that stopped answering altogether.
const ACTOR_GRACE: Duration = Duration::from_secs(5);

/// Sends a broadcast message to the channel actor. The actor itself refuses messages it takes
/// from the mailbox after `deadline` ([`BroadcastError::Busy`]), so a client told "busy" can
/// retry without its envelope also being ordered behind its back.
async fn to_actor<M>(
    state: &AppState,
    ch: &ChannelHandle,
    msg: impl FnOnce(Instant) -> M,
) -> Result<M::Result, BroadcastResponse>
where
    M: actix::Message + Send + 'static,
    M::Result: Send,
    crate::actors::ChannelActor: actix::Handler<M>,
{
    let deadline = Instant::now() + state.http.enqueue_timeout;
    match tokio::time::timeout(state.http.enqueue_timeout + ACTOR_GRACE, ch.addr.send(msg(deadline))).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(_)) => {
            Err(answer(Status::ServiceUnavailable, format!("channel '{}' is restarting; retry later", ch.name)))
        }
        Err(_) => Err(answer(
            Status::ServiceUnavailable,
            format!(
                "channel '{}' did not answer within {:?}; the envelope may or may not be ordered",
                ch.name,
                state.http.enqueue_timeout + ACTOR_GRACE
            ),
        )),
    }
}

fn refused(e: BroadcastError) -> BroadcastResponse {
    answer(Status::ServiceUnavailable, e.to_string())
}

/// Hands one checked envelope to the channel actor (waiting at most `enqueue_timeout` for room).
pub async fn enqueue(state: &AppState, ch: &ChannelHandle, envelope: Bytes) -> Result<Enqueued, BroadcastResponse> {
    to_actor(state, ch, |deadline| Broadcast { envelope, deadline }).await?.map_err(refused)
}

/// Hands checked envelopes to the channel actor in one message; one result per envelope.
pub async fn enqueue_all(
    state: &AppState,
    ch: &ChannelHandle,
    envelopes: Vec<Bytes>,
) -> Vec<Result<Enqueued, BroadcastResponse>> {
    let count = envelopes.len();
    match to_actor(state, ch, |deadline| BroadcastBatch { envelopes, deadline }).await {
        Ok(results) => results.into_iter().map(|r| r.map_err(refused)).collect(),
        Err(resp) => (0..count).map(|_| Err(resp.clone())).collect(),
    }
}

/// Kafka's acknowledgement of an enqueued envelope, as the client's answer.
pub async fn acknowledged(enqueued: Enqueued) -> BroadcastResponse {
    match enqueued.acknowledged().await {
        Ok(_) => success(),
        Err(e) => refused(e),
    }
}

/// The HTTP code mirroring a Fabric status.
pub fn http_code(status: i32) -> StatusCode {
    Status::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s.http_code()).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

pub async fn broadcast(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let channel = path.into_inner();
    let in_format = request_format(&req);
    let out = response_format(&req, *in_format.as_ref().unwrap_or(&Format::Json));
    let ch = match state.channel(&channel, out) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let in_format = match in_format {
        Ok(f) => f,
        Err(info) => return fail(out, Status::BadRequest, info),
    };
    let limit = body_limit(ch.batch_size().absolute_max_bytes, in_format);
    let body = match read_body(&req, payload, limit).await {
        Ok(b) => b,
        Err((status, info)) => return fail(out, status, info),
    };
    let resp = match accept(ch, in_format, body) {
        Err(refusal) => refusal,
        Ok(envelope) => match enqueue(&state, ch, envelope).await {
            Ok(enqueued) => acknowledged(enqueued).await,
            Err(refusal) => refusal,
        },
    };
    respond(out, http_code(resp.status), &resp)
}
