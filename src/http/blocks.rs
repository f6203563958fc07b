//! `GET /v1/channels/{channel}/blocks/{number}`: one block, where number is an integer, `newest`
//! or `oldest`; JSON or protobuf by Accept (JSON by default).
//!
//! Reading a block needs what Deliver needs: a creator satisfying the channel's Readers policy.
//! A GET has no body, so the proof travels in a header, `Authorization: Envelope <base64>`: a
//! signed DELIVER_SEEK_INFO envelope for the channel (its SeekInfo is not used), checked like a
//! deliver request (certificate, signature, organisation, Readers, timestamp window). One such
//! envelope serves any number of reads while its timestamp is within the window.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::negotiate::{fail, respond, response_format, Format};
use super::AppState;
use crate::proto::{Block, Status};

pub async fn get_block(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> HttpResponse {
    let (channel, number) = path.into_inner();
    let out = response_format(&req, Format::Json);
    let ch = match state.channel(&channel, out) {
        Ok(c) => c,
        Err(e) => return e.into(),
    };
    let height = ch.ledger.height();
    let n = match number.as_str() {
        "newest" => height - 1,
        "oldest" => 0,
        // Digits only (no sign), at most 19 of them: the document's pattern, and always a u64.
        s => match s.parse::<u64>() {
            Ok(n) if s.len() <= MAX_NUMBER_DIGITS && s.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return fail(
                    out,
                    Status::BadRequest,
                    format!(
                        "block number '{s}' is not a non-negative integer of at most {MAX_NUMBER_DIGITS} digits, \
                         'newest' or 'oldest'"
                    ),
                )
            }
        },
    };
    if let Err(refusal) = authorise_reader(&ch, &req) {
        return refusal.response(out);
    }
    let raw = match ch.ledger.block_bytes(n) {
        Ok(Some(raw)) => raw,
        Ok(None) => {
            return fail(
                out,
                Status::NotFound,
                format!("block {n} does not exist yet: channel '{channel}' has {height} blocks (0..={})", height - 1),
            )
        }
        Err(e) => return fail(out, Status::InternalServerError, e.to_string()),
    };
    match out {
        Format::Protobuf => HttpResponse::Ok().content_type(out.content_type()).body(raw),
        Format::Json => match <Block as prost::Message>::decode(raw) {
            Ok(block) => respond(out, StatusCode::OK, &block),
            Err(e) => fail(out, Status::InternalServerError, format!("stored block {n} does not decode: {e}")),
        },
    }
}

/// The most digits a block number may have (`^([0-9]{1,19}|newest|oldest)$` in the API document):
/// every such number fits a u64, and no chain is that long.
pub const MAX_NUMBER_DIGITS: usize = 19;

/// The scheme of the `Authorization` header that carries a signed DELIVER_SEEK_INFO envelope.
pub const AUTHORIZATION_SCHEME: &str = "Envelope";

/// Why a read was refused. Without credentials this OSN can use (no `Authorization` header; one
/// that is not an `Envelope` holding a protobuf envelope in base64; an envelope that is not a
/// DELIVER_SEEK_INFO for this channel within the time window), HTTP's answer is 401 with a
/// `WWW-Authenticate` challenge naming the scheme, and the Fabric status in the body: FORBIDDEN
/// without a header, BAD_REQUEST otherwise. Every other refusal (a creator the Readers policy
/// refuses, a signature that fails) is its Fabric status.
#[derive(Debug)]
pub enum ReadRefusal {
    Unauthenticated(Status, String),
    Refused(Status, String),
}

impl ReadRefusal {
    pub fn response(self, out: super::negotiate::Format) -> HttpResponse {
        match self {
            ReadRefusal::Refused(status, info) => fail(out, status, info),
            ReadRefusal::Unauthenticated(status, info) => {
                let body = crate::proto::BroadcastResponse { status: status as i32, info };
                let mut resp = super::negotiate::respond(out, StatusCode::UNAUTHORIZED, &body);
                resp.headers_mut().insert(
                    actix_web::http::header::WWW_AUTHENTICATE,
                    actix_web::http::header::HeaderValue::from_static(AUTHORIZATION_SCHEME),
                );
                resp
            }
        }
    }
}

/// Checks the request's `Authorization: Envelope <base64>` against the channel's Readers.
pub fn authorise_reader(ch: &crate::actors::ChannelHandle, req: &HttpRequest) -> Result<(), ReadRefusal> {
    use base64::Engine as _;
    let how = format!(
        "reading a channel's blocks or configuration needs an `Authorization: {AUTHORIZATION_SCHEME} <base64>` header holding a signed \
         DELIVER_SEEK_INFO envelope for channel '{}' (protobuf, base64)",
        ch.name
    );
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| ReadRefusal::Unauthenticated(Status::Forbidden, format!("no Authorization header: {how}")))?;
    let unreadable = |info: String| ReadRefusal::Unauthenticated(Status::BadRequest, info);
    let encoded = header
        .to_str()
        .ok()
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(AUTHORIZATION_SCHEME))
        .map(|(_, value)| value.trim())
        .ok_or_else(|| unreadable(format!("the Authorization header is not of the Envelope scheme: {how}")))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')))
        .map_err(|e| unreadable(format!("the Authorization envelope is not base64: {e}")))?;
    let envelope = <crate::proto::Envelope as prost::Message>::decode(raw.as_slice())
        .map_err(|e| unreadable(format!("the Authorization envelope is not a common.Envelope: {e}")))?;
    // An envelope that cannot serve as credentials here (another channel, another type, outside
    // the time window: BAD_REQUEST) is no credentials, as above; one that can, but whose creator
    // may not read (or whose signature fails), is refused.
    super::deliver::check_reader(&ch.status.access(), &envelope, &ch.name).map(drop).map_err(|(status, info)| {
        let info = format!("the Authorization envelope: {info}");
        match status {
            Status::BadRequest => ReadRefusal::Unauthenticated(status, info),
            _ => ReadRefusal::Refused(status, info),
        }
    })
}
