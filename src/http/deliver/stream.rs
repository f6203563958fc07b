//! `POST /v1/channels/{channel}/deliver`: one DELIVER_SEEK_INFO Envelope in the body (JSON or
//! protobuf by Content-Type), DeliverResponses out as a chunked stream: NDJSON
//! (`application/x-ndjson`, one JSON object per line) or length-delimited protobuf (each message
//! preceded by its length as a varint). A request refused before any block is sent answers the
//! HTTP code of its status, with the one DeliverResponse saying why, in the same framing.
//!
//! The body is pulled by the connection: a slow reader slows only its own subscription, and a
//! client that goes away drops it.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};

use super::{encode, Item, Subscription, MAX_REQUEST};
use crate::http::negotiate::{media_type, read_body, request_format, Format};
use crate::http::AppState;
use crate::proto::Status;

pub const NDJSON: &str = "application/x-ndjson";

/// The framing of a streamed response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One JSON DeliverResponse per line.
    Ndjson,
    /// Varint length, then a protobuf DeliverResponse.
    Delimited,
}

impl Framing {
    pub fn content_type(self) -> &'static str {
        match self {
            Framing::Ndjson => NDJSON,
            Framing::Delimited => crate::http::negotiate::PROTOBUF,
        }
    }

    /// One item, framed.
    pub fn frame(self, item: Item) -> Bytes {
        match self {
            Framing::Ndjson => {
                let json = encode(Format::Json, item);
                let mut out = BytesMut::with_capacity(json.len() + 1);
                out.extend_from_slice(&json);
                out.extend_from_slice(b"\n");
                out.freeze()
            }
            Framing::Delimited => {
                let msg = encode(Format::Protobuf, item);
                let mut out = BytesMut::with_capacity(msg.len() + 10);
                prost::encoding::encode_varint(msg.len() as u64, &mut out);
                out.extend_from_slice(&msg);
                out.freeze()
            }
        }
    }
}

/// The framing asked for by Accept (NDJSON for `application/x-ndjson` or `application/json`),
/// else the one matching the request's format.
pub fn response_framing(req: &HttpRequest, request: Option<Format>) -> Framing {
    let accepted = req.headers().get(header::ACCEPT).and_then(|v: &HeaderValue| v.to_str().ok()).and_then(|v| {
        v.split(',').find_map(|t| {
            if t.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(NDJSON) {
                return Some(Framing::Ndjson);
            }
            media_type(t).map(|f| match f {
                Format::Json => Framing::Ndjson,
                Format::Protobuf => Framing::Delimited,
            })
        })
    });
    accepted.unwrap_or(match request {
        Some(Format::Protobuf) => Framing::Delimited,
        _ => Framing::Ndjson,
    })
}

pub async fn stream(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let channel = path.into_inner();
    let format = request_format(&req);
    let framing = response_framing(&req, format.as_ref().ok().copied());
    let refuse = |status: Status, info: String| {
        let code = StatusCode::from_u16(status.http_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        HttpResponse::build(code).content_type(framing.content_type()).body(framing.frame(Item::End(status, info)))
    };
    let ch = match state.lookup(&channel) {
        Ok(ch) => ch,
        Err(e) => return refuse(e.status(), e.to_string()),
    };
    let format = match format {
        Ok(f) => f,
        Err(info) => return refuse(Status::BadRequest, info),
    };
    let body = match read_body(&req, payload, MAX_REQUEST).await {
        Ok(b) => b,
        Err((status, info)) => return refuse(status, info),
    };
    let sub = match Subscription::open(&ch, super::decode_request(format, body)) {
        Ok(sub) => sub,
        Err((status, info)) => return refuse(status, info),
    };
    let guard = super::StreamGuard::new(None);
    let body = futures_util::stream::unfold(Some((sub, guard)), move |state| async move {
        let (mut sub, guard) = state?;
        let item = sub.next().await?;
        let last = matches!(item, Item::End(..));
        Some((Ok::<_, std::convert::Infallible>(framing.frame(item)), (!last).then_some((sub, guard))))
    });
    HttpResponse::Ok()
        .content_type(framing.content_type())
        // Proxies must pass blocks on as they come.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}
