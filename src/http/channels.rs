//! `GET /v1/channels` and `GET /v1/channels/{channel}`: what channels this OSN serves and where
//! each stands (JSON).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::negotiate::{response_format, Format};
use super::AppState;
use crate::actors::{ChannelHandle, Phase};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChannelSummary {
    name: String,
    height: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChannelInfo {
    name: String,
    height: u64,
    status: Phase,
    #[serde(skip_serializing_if = "String::is_empty")]
    status_reason: String,
    last_config: u64,
    batch_size: BatchSizeInfo,
    batch_timeout: String,
    kafka: KafkaInfo,
    restarts: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchSizeInfo {
    max_message_count: u32,
    absolute_max_bytes: u32,
    preferred_max_bytes: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KafkaInfo {
    topic: String,
    partition: i32,
    last_offset_persisted: i64,
}

pub async fn list(state: web::Data<AppState>) -> HttpResponse {
    let list: Vec<ChannelSummary> =
        state.channels.iter().map(|c| ChannelSummary { name: c.name.clone(), height: c.ledger.height() }).collect();
    HttpResponse::Ok().json(serde_json::json!({ "channels": list }))
}

pub async fn info(state: web::Data<AppState>, path: web::Path<String>, req: HttpRequest) -> HttpResponse {
    let out = response_format(&req, Format::Json);
    match state.channel(&path, out) {
        Ok(ch) => HttpResponse::Ok().json(describe(ch)),
        Err(resp) => resp,
    }
}

fn describe(ch: &ChannelHandle) -> ChannelInfo {
    let tip = ch.ledger.tip();
    let (phase, reason) = ch.status.phase();
    let bs = ch.batch_size();
    ChannelInfo {
        name: ch.name.clone(),
        height: tip.next_number,
        status: phase,
        status_reason: reason,
        last_config: tip.last_config,
        batch_size: BatchSizeInfo {
            max_message_count: bs.max_message_count,
            absolute_max_bytes: bs.absolute_max_bytes,
            preferred_max_bytes: bs.preferred_max_bytes,
        },
        batch_timeout: humantime::format_duration(ch.settings.batch_timeout).to_string(),
        kafka: KafkaInfo {
            topic: ch.name.clone(),
            partition: crate::kafka::PARTITION,
            last_offset_persisted: tip.kafka.last_offset_persisted,
        },
        restarts: ch.status.restarts.load(std::sync::atomic::Ordering::Relaxed),
    }
}
