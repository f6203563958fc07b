//! `GET /v1/channels` and `GET /v1/channels/{channel}`: what channels this OSN serves and where
//! each stands, as `osn.ChannelList` and `osn.ChannelInfo` (JSON or protobuf by Accept); and
//! `GET /v1/channels/{channel}/config`: the configuration in force (`osn.ChannelConfig`), to a
//! reader of the channel. `POST /v1/channels` creates a channel and `POST
//! /v1/channels/{channel}/config` changes one: both take a signed CONFIG_UPDATE envelope, check
//! it, derive the configuration, order a CONFIG record signed by this OSN, and answer once it is
//! consumed (every OSN applies it at the same block).

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::broadcast::decode_envelope;
use super::negotiate::{fail, read_body, request_format, respond, response_format, Format};
use super::AppState;
use crate::actors::{ChannelHandle, EnqueueConfig, MailboxSlot, Phase};
use crate::core::chain::{Applied, Derived, DerivedKind, Refusal};
use crate::core::config::{self, UpdateRequest};
use crate::core::policy::PolicyName;
use crate::identity::envelope::config_record;
use crate::proto::osn::{channel_info, ChannelInfo, ChannelList, ChannelSummary, KafkaPosition};
use crate::proto::{BroadcastResponse, Status};
use crate::verify::unix_now;

/// Largest config transaction accepted (organisations carry their CA certificates).
const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;
/// How long a config transaction's sender waits for it to be consumed.
const CONSUME_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a channel creation waits for the new channel to be ready, before answering anyway.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

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
    if let Err(refusal) = super::blocks::authorise_reader(&ch, &req) {
        return refusal.response(out);
    }
    respond(out, StatusCode::OK, &*ch.config())
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
        config_sequence: ch.config().sequence,
    }
}

/// An error answer: the Fabric status (and its HTTP code) with what was wrong.
fn refuse(out: Format, status: Status, info: impl Into<String>) -> HttpResponse {
    fail(out, status, info)
}

/// A config transaction that lost to the chain's state when it was consumed (the channel exists
/// by then, another update changed what it needs; `Refusal::Conflict`): HTTP 409 CONFLICT with
/// Fabric status BAD_REQUEST. The other refusals at consumption keep their own status (403, 400).
fn conflict(out: Format, info: impl Into<String>) -> HttpResponse {
    respond(out, StatusCode::CONFLICT, &BroadcastResponse { status: Status::BadRequest as i32, info: info.into() })
}

/// Reads and decodes the signed CONFIG_UPDATE envelope of a config route.
async fn read_update(req: &HttpRequest, payload: web::Payload, out: Format) -> Result<UpdateRequest, HttpResponse> {
    let format = request_format(req).map_err(|info| refuse(out, Status::BadRequest, info))?;
    let body = read_body(req, payload, MAX_CONFIG_BYTES).await.map_err(|(status, info)| refuse(out, status, info))?;
    let (envelope, _) = decode_envelope(format, body).map_err(|info| refuse(out, Status::BadRequest, info))?;
    UpdateRequest::parse(&envelope)
        .map_err(|info| refuse(out, Status::BadRequest, format!("not a valid config update: {info}")))
}

#[allow(clippy::result_large_err)] // a ready response on a cold path, as AppState::channel
/// Checks the update's timestamp and signatures against `ch`'s configuration in force and its
/// `policy`; the sequence of that configuration.
fn authorise_update(
    ch: &ChannelHandle,
    request: &UpdateRequest,
    policy: PolicyName,
    out: Format,
) -> Result<u64, HttpResponse> {
    let access = ch.status.access();
    let now = unix_now();
    // Fabric's order: certificates, signatures, chains and the policy, then the timestamp.
    request.authorise(&access, policy, now).map_err(|d| refuse(out, d.status(), d.to_string()))?;
    access.check_timestamp(request.timestamp(), now).map_err(|d| refuse(out, d.status(), d.to_string()))?;
    Ok(access.sequence())
}

/// Orders a CONFIG record this OSN derived on `ch` and waits until it is consumed; what it came
/// to, or the answer to send.
async fn order_config(
    state: &AppState,
    ch: &ChannelHandle,
    derived: &Derived,
    config_seq: u64,
    out: Format,
) -> Result<Applied, HttpResponse> {
    let Some(signer) = state.signer.as_ref() else {
        return Err(refuse(out, Status::ServiceUnavailable, "this OSN has no identity to sign the configuration with"));
    };
    let system = state.channels.system().map(|s| s.name).unwrap_or_default();
    let record = config_record(signer, derived, &system);
    let deadline = Instant::now() + state.http.enqueue_timeout;
    let msg = EnqueueConfig { slot: MailboxSlot::new(&ch.status), record, config_seq, deadline };
    let unavailable = |info: String| refuse(out, Status::ServiceUnavailable, info);
    let enqueued = match ch.addr.send(msg).await {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => return Err(unavailable(e.to_string())),
        Err(_) => return Err(unavailable(format!("channel '{}' is restarting; retry later", ch.name))),
    };
    let offset = enqueued.acknowledged().await.map_err(|e| unavailable(e.to_string()))?;
    match ch.status.outcome(offset, CONSUME_TIMEOUT).await {
        Some(Ok(applied)) => Ok(applied),
        Some(Err(Refusal::Conflict(reason))) => Err(conflict(out, reason)),
        Some(Err(Refusal::Forbidden(reason))) => Err(refuse(out, Status::Forbidden, reason)),
        Some(Err(Refusal::Invalid(reason))) => Err(refuse(out, Status::BadRequest, reason)),
        None => Err(unavailable(format!(
            "the config transaction was ordered on channel '{}' at offset {offset} but not consumed within {}s; check the channel's configuration before retrying",
            ch.name,
            CONSUME_TIMEOUT.as_secs()
        ))),
    }
}

/// `POST /v1/channels`: creates a channel. The body is a CONFIG_UPDATE envelope for the new
/// channel whose signers satisfy the system channel's Writers policy (an admin of an organisation
/// allowed to create channels). Answers 201 with the new channel's info.
pub async fn create(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let out = response_format(&req, Format::Json);
    let Some(system) = state.channels.system() else {
        return refuse(
            out,
            Status::NotImplemented,
            "this OSN runs no system channel (it has no identity.dir), so it cannot create channels",
        );
    };
    let request = match read_update(&req, payload, out).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let name = request.update.channel_id.clone();
    if let Err(info) = config::validate_channel_id(&name) {
        return refuse(out, Status::BadRequest, info);
    }
    if name == system.name {
        return refuse(out, Status::BadRequest, format!("'{name}' is the system channel"));
    }
    if state.channels.get(&name).is_some() {
        return conflict(out, format!("channel '{name}' already exists"));
    }
    let config_seq = match authorise_update(&system, &request, PolicyName::Writers, out) {
        Ok(seq) => seq,
        Err(resp) => return resp,
    };
    let system_config = system.config();
    if system_config.max_channels > 0 {
        // A quick refusal; the system channel's chain enforces the limit for every OSN.
        let created = state.channels.created_count();
        if created >= system_config.max_channels as usize {
            let info =
                format!("the channel limit of {} is reached ({created} channels created)", system_config.max_channels);
            return refuse(out, Status::Forbidden, info);
        }
    }
    let genesis = match config::new_channel(&system_config, &request.update) {
        Ok(c) => c,
        Err(info) => return refuse(out, Status::BadRequest, info),
    };
    let derived = Derived {
        kind: DerivedKind::Create { channel: name.clone() },
        config: genesis,
        last_update: request.envelope().clone(),
    };
    match order_config(&state, &system, &derived, config_seq, out).await {
        Ok(_) => {}
        Err(resp) => return resp,
    }
    // The system channel's actor started the channel before it wrote its block; wait for it to
    // accept broadcasts.
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(ch) = state.channels.get(&name) {
            if ch.status.phase().0 == Phase::Ready || Instant::now() >= deadline {
                return respond(out, StatusCode::CREATED, &describe(&ch));
            }
        } else if Instant::now() >= deadline {
            return refuse(
                out,
                Status::InternalServerError,
                format!("channel '{name}' was created but has not started on this OSN"),
            );
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `POST /v1/channels/{channel}/config`: changes a channel's configuration. The body is a
/// CONFIG_UPDATE envelope whose signers satisfy the channel's Admins policy. Answers 200 with the
/// configuration now in force.
pub async fn update(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let out = response_format(&req, Format::Json);
    let ch = match state.channel(&path, out) {
        Ok(ch) => ch,
        Err(resp) => return resp,
    };
    let request = match read_update(&req, payload, out).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if request.update.channel_id != ch.name {
        let info = format!("the config update is for channel '{}', not '{}'", request.update.channel_id, ch.name);
        return refuse(out, Status::BadRequest, info);
    }
    let config_seq = match authorise_update(&ch, &request, PolicyName::Admins, out) {
        Ok(seq) => seq,
        Err(resp) => return resp,
    };
    let current = ch.config();
    if current.sequence != config_seq {
        return refuse(out, Status::ServiceUnavailable, "the channel's configuration is changing; retry");
    }
    let next = match config::apply(&current, &request.update) {
        Ok(c) => c,
        Err(info) => return refuse(out, Status::BadRequest, info),
    };
    let derived = Derived {
        kind: DerivedKind::Update { channel: ch.name.clone() },
        config: next,
        last_update: request.envelope().clone(),
    };
    match order_config(&state, &ch, &derived, config_seq, out).await {
        Ok(Applied::Config(config)) => respond(out, StatusCode::OK, &*config),
        Ok(Applied::Created { .. }) => {
            refuse(out, Status::InternalServerError, "the update was taken for a channel creation")
        }
        Err(resp) => resp,
    }
}
