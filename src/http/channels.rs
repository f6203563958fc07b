//! `GET /v1/channels` and `GET /v1/channels/{channel}`: what channels this OSN serves and where
//! each stands, as `osn.ChannelList` and `osn.ChannelInfo` (JSON or protobuf by Accept); and
//! `GET /v1/channels/{channel}/config`: the configuration in force (`osn.ChannelConfig`), to a
//! reader of the channel.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::negotiate::{respond, response_format, Format};
use super::AppState;
use crate::actors::{ChannelHandle, Phase};
use crate::proto::osn::{channel_info, ChannelInfo, ChannelList, ChannelSummary, KafkaPosition};

pub async fn list(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let out = response_format(&req, Format::Json);
    let channels = state
        .channels
        .iter()
        .map(|c| ChannelSummary {
            name: c.name.clone(),
            height: c.ledger.height(),
            status: phase(c.status.phase().0) as i32,
        })
        .collect();
    respond(out, StatusCode::OK, &ChannelList { channels })
}

pub async fn info(state: web::Data<AppState>, path: web::Path<String>, req: HttpRequest) -> HttpResponse {
    let out = response_format(&req, Format::Json);
    match state.channel(&path, out) {
        Ok(ch) => respond(out, StatusCode::OK, &describe(ch)),
        Err(resp) => resp,
    }
}

/// The channel's configuration in force: organisations (with their CA certificates), policies,
/// batch size, orderer organisations and sequence. Readers only: the request carries the signed
/// `Authorization` envelope the blocks route takes.
pub async fn config(state: web::Data<AppState>, path: web::Path<String>, req: HttpRequest) -> HttpResponse {
    let out = response_format(&req, Format::Json);
    let ch = match state.channel(&path, out) {
        Ok(ch) => ch,
        Err(resp) => return resp,
    };
    if let Err((status, info)) = super::blocks::authorise_reader(ch, &req) {
        return super::negotiate::fail(out, status, info);
    }
    respond(out, StatusCode::OK, ch.ledger.config())
}

fn phase(p: Phase) -> channel_info::Phase {
    match p {
        Phase::Starting => channel_info::Phase::Starting,
        Phase::Ready => channel_info::Phase::Ready,
        Phase::Errored => channel_info::Phase::Errored,
    }
}

fn describe(ch: &ChannelHandle) -> ChannelInfo {
    let tip = ch.ledger.tip();
    let (p, reason) = ch.status.phase();
    ChannelInfo {
        name: ch.name.clone(),
        height: tip.next_number,
        status: phase(p) as i32,
        status_reason: reason,
        last_config: tip.last_config,
        batch_size: Some(ch.batch_size()),
        batch_timeout: humantime::format_duration(ch.settings.batch_timeout).to_string(),
        kafka: Some(KafkaPosition {
            topic: ch.name.clone(),
            partition: crate::kafka::PARTITION,
            last_offset_persisted: tip.kafka.last_offset_persisted,
        }),
        restarts: ch.status.restarts.load(std::sync::atomic::Ordering::Relaxed),
        lag_bytes: ch.status.lag_bytes(),
    }
}
