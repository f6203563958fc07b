//! `POST /v1/channels/{channel}/broadcast`: one Envelope in, one BroadcastResponse out, answered
//! SUCCESS only after Kafka acknowledged the record (`acks=all`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use prost::Message as _;

use super::negotiate::{decode, fail, read_body, request_format, respond, response_format, Format};
use super::AppState;
use crate::actors::{Broadcast, BroadcastError};
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
    let max = ch.batch_size().absolute_max_bytes;
    let body = match read_body(&req, payload, body_limit(max, in_format)).await {
        Ok(b) => b,
        Err(info) => return fail(out, Status::RequestEntityTooLarge, info),
    };
    let envelope: Envelope = match decode(in_format, body.clone(), "common.Envelope") {
        Ok(e) => e,
        Err(info) => return fail(out, Status::BadRequest, info),
    };
    if let Err(invalid) = check_broadcast(&envelope, &channel, max) {
        return fail(out, invalid.status(), invalid.to_string());
    }
    // A protobuf body already is the marshaled envelope: relay it as received (every OSN orders
    // the bytes in the partition, so nothing depends on re-encoding). JSON is encoded once here.
    let marshaled = match in_format {
        Format::Protobuf => body,
        Format::Json => envelope.encode_to_vec().into(),
    };
    let send = ch.addr.send(Broadcast { envelope: marshaled });
    let enqueued = match tokio::time::timeout(state.enqueue_timeout, send).await {
        Err(_) => {
            return fail(
                out,
                Status::ServiceUnavailable,
                format!(
                    "channel '{channel}' is busy: its queue stayed full for {:?}; retry later",
                    state.enqueue_timeout
                ),
            )
        }
        Ok(Err(e)) => {
            return fail(
                out,
                Status::ServiceUnavailable,
                format!("channel '{channel}' is restarting ({e}); retry later"),
            )
        }
        Ok(Ok(Err(e))) => return broadcast_error(out, e),
        Ok(Ok(Ok(enqueued))) => enqueued,
    };
    match enqueued.acknowledged().await {
        Ok(_) => {
            respond(out, StatusCode::OK, &BroadcastResponse { status: Status::Success as i32, info: String::new() })
        }
        Err(e) => broadcast_error(out, e),
    }
}

fn broadcast_error(out: Format, e: BroadcastError) -> HttpResponse {
    fail(out, Status::ServiceUnavailable, e.to_string())
}
