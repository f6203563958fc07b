//! `GET /v1/channels/{channel}/blocks/{number}`: one block, where number is an integer, `newest`
//! or `oldest`; JSON or protobuf by Accept (JSON by default).

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
        Err(resp) => return resp,
    };
    let height = ch.ledger.height();
    let n = match number.as_str() {
        "newest" => height - 1,
        "oldest" => 0,
        s => match s.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                return fail(
                    out,
                    Status::BadRequest,
                    format!("block number '{s}' is not a non-negative integer, 'newest' or 'oldest'"),
                )
            }
        },
    };
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
