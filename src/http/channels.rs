//! `GET /v1/channels` and `GET /v1/channels/{channel}`: what channels this OSN serves and where
//! each stands, as `osn.ChannelList` and `osn.ChannelInfo` (JSON or protobuf by Accept); and
//! `GET /v1/channels/{channel}/config`: the configuration in force (Fabric's `common.Config`:
//! protobuf, or JSON as `configtxlator proto_decode` shows it), to a reader of the channel. `POST /v1/channels` creates a channel and `POST
//! /v1/channels/{channel}/config` changes one: both take a signed CONFIG_UPDATE envelope, which
//! the service admits, orders as a CONFIG record signed by this OSN, and answers once it is
//! consumed (every OSN applies it at the same block); refusals come with their exact code.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::broadcast::decode_envelope;
use super::negotiate::{read_body, request_format, respond, response_format, Format};
use super::{ApiError, AppState};
use crate::actors::{ChannelHandle, Phase};
use crate::core::config::UpdateRequest;
use crate::proto::osn::{channel_info, ChannelInfo, ChannelList, ChannelSummary, KafkaPosition};
use crate::proto::Status;
use crate::service::ServiceError;

/// Largest config transaction accepted (organisations carry their CA certificates).
const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

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
        Ok(ch) => respond(out, StatusCode::OK, &describe(&ch)),
        Err(e) => e.into(),
    }
}

/// The channel's configuration in force: Fabric's `common.Config` (its organisations' MSPs,
/// policies, batch size, Kafka brokers, capabilities, sequence), as protobuf or as
/// `configtxlator proto_decode --type common.Config` shows it. Readers only: the request carries
/// the signed `Authorization` envelope the blocks route takes.
pub async fn config(state: web::Data<AppState>, path: web::Path<String>, req: HttpRequest) -> HttpResponse {
    let out = response_format(&req, Format::Json);
    let ch = match state.channel(&path, out) {
        Ok(ch) => ch,
        Err(e) => return e.into(),
    };
    if let Err(refusal) = super::blocks::authorise_reader(&ch, &req) {
        return refusal.response(out);
    }
    config_response(out, StatusCode::OK, &ch.config().config)
}

/// A configuration in the negotiated format: `common.Config` bytes, or configtxlator's JSON.
fn config_response(out: Format, code: StatusCode, config: &crate::proto::common::Config) -> HttpResponse {
    use prost::Message as _;
    match out {
        Format::Protobuf => HttpResponse::build(code).content_type(out.content_type()).body(config.encode_to_vec()),
        Format::Json => match crate::core::configtree::json::config(config) {
            Ok(json) => HttpResponse::build(code).content_type(out.content_type()).body(json.to_string()),
            Err(e) => HttpResponse::InternalServerError().body(format!("cannot show the configuration: {e}")),
        },
    }
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
        batch_timeout: humantime::format_duration(ch.batch_timeout()).to_string(),
        kafka: Some(KafkaPosition {
            topic: ch.name.clone(),
            partition: crate::kafka::PARTITION,
            last_offset_persisted: tip.kafka.last_offset_persisted,
        }),
        restarts: ch.status.restarts.load(std::sync::atomic::Ordering::Relaxed),
        lag_bytes: ch.status.lag_bytes(),
        config_sequence: ch.config().values.sequence,
    }
}

/// Reads and decodes the signed CONFIG_UPDATE envelope of a config route.
async fn read_update(req: &HttpRequest, payload: web::Payload, out: Format) -> Result<UpdateRequest, ApiError> {
    let bad = |info: String| ApiError { out, error: ServiceError::BadRequest(info) };
    let format = request_format(req).map_err(bad)?;
    let body = read_body(req, payload, MAX_CONFIG_BYTES).await.map_err(|(status, info)| ApiError {
        out,
        error: if status == Status::RequestEntityTooLarge {
            ServiceError::TooLarge(info)
        } else {
            ServiceError::BadRequest(info)
        },
    })?;
    let (envelope, _) = decode_envelope(format, body).map_err(bad)?;
    UpdateRequest::parse(&envelope).map_err(|info| bad(format!("not a valid config update: {info}")))
}

/// `POST /v1/channels`: creates a channel through the system channel, as `peer channel create`
/// does over Broadcast. The body is the CONFIG_UPDATE envelope (as `configtxgen
/// -outputCreateChannelTx` makes it, or `osn channel create`), approved by admins of the
/// consortium's member organisations it names (their ChannelCreationPolicy). Answers 201 with
/// the new channel's info.
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let out = response_format(&req, Format::Json);
    let request = read_update(&req, payload, out).await?;
    let ch = state.create_channel(&request).await.map_err(|error| ApiError { out, error })?;
    Ok(respond(out, StatusCode::CREATED, &describe(&ch)))
}

/// `POST /v1/channels/{channel}/config`: changes a channel's configuration, as `peer channel
/// update` does over Broadcast. The body is a CONFIG_UPDATE envelope (a ConfigUpdate as
/// `configtxlator compute_update` makes it) from a writer of the channel, approved by signatures
/// that satisfy the mod_policy of every element it changes. Answers 200 with the configuration
/// now in force.
pub async fn update(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let out = response_format(&req, Format::Json);
    let ch = state.channel(&path, out)?;
    let request = read_update(&req, payload, out).await?;
    let bundle = state.update_config(&ch, &request).await.map_err(|error| ApiError { out, error })?;
    Ok(config_response(out, StatusCode::OK, &bundle.config))
}
