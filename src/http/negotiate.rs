//! Content negotiation and error answers. Every body is either `application/json` (the canonical
//! protobuf JSON mapping) or `application/x-protobuf` (also `application/protobuf`): the request
//! format comes from Content-Type, the response format from Accept (defaulting to the request's).
//! Errors are answered as `{status, info}` (a BroadcastResponse) with the HTTP code of the Fabric
//! status.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::proto::{BroadcastResponse, Status};

pub const PROTOBUF: &str = "application/x-protobuf";
pub const JSON: &str = "application/json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Protobuf,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => JSON,
            Format::Protobuf => PROTOBUF,
        }
    }
}

/// The format a media type (with or without parameters) names, if it is one we speak.
pub fn media_type(value: &str) -> Option<Format> {
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Some(Format::Json),
        "application/x-protobuf" | "application/protobuf" | "application/vnd.google.protobuf" => Some(Format::Protobuf),
        _ => None,
    }
}

/// The format of the request body, from its Content-Type.
pub fn request_format(req: &HttpRequest) -> Result<Format, String> {
    match req.headers().get(header::CONTENT_TYPE).map(HeaderValue::to_str) {
        None => Err(format!("missing Content-Type: send {PROTOBUF} or {JSON}")),
        Some(Err(_)) => Err("unreadable Content-Type header".into()),
        Some(Ok(v)) => {
            media_type(v).ok_or_else(|| format!("unsupported Content-Type '{v}': send {PROTOBUF} or {JSON}"))
        }
    }
}

/// The format to answer in: the first supported type in Accept, else `default`.
pub fn response_format(req: &HttpRequest, default: Format) -> Format {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').find_map(media_type))
        .unwrap_or(default)
}

/// Encodes a message in `format` with an HTTP status.
pub fn respond<M: prost::Message + Serialize>(format: Format, code: StatusCode, msg: &M) -> HttpResponse {
    let body = match format {
        Format::Protobuf => Bytes::from(msg.encode_to_vec()),
        Format::Json => match serde_json::to_vec(msg) {
            Ok(v) => Bytes::from(v),
            Err(e) => return HttpResponse::InternalServerError().body(format!("cannot encode JSON: {e}")),
        },
    };
    HttpResponse::build(code).content_type(format.content_type()).body(body)
}

/// A Fabric status with its HTTP code and a message saying what was wrong.
pub fn fail(format: Format, status: Status, info: impl Into<String>) -> HttpResponse {
    let code = StatusCode::from_u16(status.http_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    respond(format, code, &BroadcastResponse { status: status as i32, info: info.into() })
}

/// Decodes a message from a body in `format`.
pub fn decode<M: prost::Message + Default + DeserializeOwned>(
    format: Format,
    body: Bytes,
    what: &str,
) -> Result<M, String> {
    match format {
        Format::Protobuf => M::decode(body).map_err(|e| format!("body is not a valid protobuf {what}: {e}")),
        Format::Json => serde_json::from_slice(&body).map_err(|e| format!("body is not a valid JSON {what}: {e}")),
    }
}

/// The most a declared Content-Length reserves before the bytes arrive (a larger body grows
/// its buffer as it comes).
const PREALLOCATE_MAX: usize = 8 << 20;

/// Reads a request body of at most `limit` bytes. A declared Content-Length over the limit is
/// refused before anything is read; a chunked body is refused as soon as it passes the limit.
/// Errors come with their status: REQUEST_ENTITY_TOO_LARGE, or BAD_REQUEST for a broken body.
pub async fn read_body(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<Bytes, (Status, String)> {
    let too_large = |n: usize| {
        let info = format!("request body of {n} bytes or more exceeds this route's limit of {limit} bytes");
        (Status::RequestEntityTooLarge, info)
    };
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if let Some(len) = declared {
        if len > limit {
            return Err(too_large(len));
        }
    }
    let read_error =
        |e: actix_web::error::PayloadError| (Status::BadRequest, format!("error reading the request body: {e}"));
    // A body that arrives in one chunk is that chunk, not a copy; a longer one is gathered into
    // a buffer of its declared length, so it is copied once and never re-allocated on the way.
    let first = match payload.next().await {
        None => return Ok(Bytes::new()),
        Some(chunk) => chunk.map_err(read_error)?,
    };
    if first.len() > limit {
        return Err(too_large(first.len()));
    }
    let Some(second) = payload.next().await else { return Ok(first) };
    let second = second.map_err(read_error)?;
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0).min(PREALLOCATE_MAX).max(first.len() + second.len()));
    body.extend_from_slice(&first);
    let mut next = Some(second);
    while let Some(chunk) = next {
        if body.len() + chunk.len() > limit {
            return Err(too_large(body.len() + chunk.len()));
        }
        body.extend_from_slice(&chunk);
        next = match payload.next().await {
            None => None,
            Some(chunk) => Some(chunk.map_err(read_error)?),
        };
    }
    Ok(body.freeze())
}
