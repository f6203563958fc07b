//! Broadcast, whatever the transport: structural checks of a decoded envelope, the access checks
//! on the verification pool, the channel's backlog bound (`max-lag-bytes`) and mailbox, one
//! actor message per request, and each accepted envelope answered once Kafka acknowledged it.
//! Every answer is a Fabric `BroadcastResponse`; front ends only decode requests and encode
//! these answers.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Service;
use crate::actors::{BroadcastBatch, BroadcastError, ChannelHandle, Enqueued, MailboxSlot, Taken};
use crate::core::config::UpdateRequest;
use crate::core::envelope::{channel_header_of, check_broadcast};
use crate::core::policy::PolicyName;
use crate::metrics::{metrics, secs};
use crate::proto::{BroadcastResponse, Envelope, HeaderType, Status};
use crate::verify::Signed;

pub fn answer(status: Status, info: impl Into<String>) -> BroadcastResponse {
    BroadcastResponse { status: status as i32, info: info.into() }
}

pub fn success() -> BroadcastResponse {
    answer(Status::Success, "")
}

/// Where an envelope goes on a transport that names no channel (gRPC Broadcast), by its channel
/// header, as Fabric's orderer routes it.
pub enum Route {
    /// To be ordered on this channel (the broadcast checks follow).
    Order(ChannelHandle),
    /// A CONFIG_UPDATE of this channel.
    Update(ChannelHandle),
    /// A CONFIG_UPDATE naming a channel this OSN does not have: a channel creation, through the
    /// system channel.
    Create,
}

impl Service {
    /// Routes an envelope by its channel header: a header that does not decode is 400, a CONFIG
    /// or ORDERER_TRANSACTION (which only OSNs order) 400, a CONFIG_UPDATE an update or a
    /// creation, anything else goes to its channel (404 if this OSN has none of that name).
    pub fn route(&self, envelope: &Envelope) -> Result<Route, BroadcastResponse> {
        let header = channel_header_of(envelope).map_err(|e| answer(e.status(), e.to_string()))?;
        match HeaderType::try_from(header.r#type) {
            Ok(t @ (HeaderType::Config | HeaderType::OrdererTransaction)) => Err(answer(
                Status::BadRequest,
                format!("header type {} is ordered by OSNs only: broadcast a CONFIG_UPDATE instead", t.as_str_name()),
            )),
            Ok(HeaderType::ConfigUpdate) => {
                Ok(self.channels.get(&header.channel_id).map_or(Route::Create, Route::Update))
            }
            _ => self.lookup(&header.channel_id).map(Route::Order).map_err(|e| answer(e.status(), e.to_string())),
        }
    }

    /// A CONFIG_UPDATE envelope routed to [`Route::Update`] or [`Route::Create`]: admitted,
    /// ordered and consumed (the answer says what it came to: SUCCESS once the new configuration
    /// or channel is in force here).
    pub async fn config_transaction(&self, route: &Route, envelope: &Envelope) -> BroadcastResponse {
        let request = match UpdateRequest::parse(envelope) {
            Ok(r) => r,
            Err(info) => return answer(Status::BadRequest, info),
        };
        let result = match route {
            Route::Update(ch) => self.update_config(ch, &request).await.map(|_| ()),
            Route::Create => self.create_channel(&request).await.map(|_| ()),
            Route::Order(ch) => Err(super::ServiceError::Internal(format!(
                "an envelope for channel '{}' was taken for a config transaction",
                ch.name
            ))),
        };
        match result {
            Ok(()) => success(),
            Err(e) => answer(e.status(), e.to_string()),
        }
    }
}

/// An envelope that passed the structural checks: the bytes to relay and its signed parts.
pub struct Candidate {
    marshaled: Bytes,
    signed: Signed,
    /// The header type's name (metric label).
    kind: &'static str,
}

/// The structural checks of a decoded envelope.
pub fn checked(ch: &ChannelHandle, envelope: Envelope, marshaled: Bytes) -> Result<Candidate, BroadcastResponse> {
    let checked = check_broadcast(&envelope, &ch.name, ch.batch_size().absolute_max_bytes)
        .map_err(|invalid| answer(invalid.status(), invalid.to_string()))?;
    let timestamp = checked.timestamp();
    let signed =
        Signed { payload: envelope.payload, signature: envelope.signature, creator: checked.creator, timestamp };
    Ok(Candidate { marshaled, signed, kind: checked.header_type.as_str_name() })
}

/// Envelopes checked by one configuration: in order, the bytes to relay or the answer refusing
/// each, and the sequence of the configuration (they are enqueued under it).
pub struct Authorised {
    pub config_seq: u64,
    pub results: Vec<Result<Bytes, BroadcastResponse>>,
    /// Each envelope's header type (UNKNOWN when it did not decode), for metrics.
    pub kinds: Vec<&'static str>,
}

/// Runs the access checks (certificate, signature, chain, Writers, timestamp) of every candidate
/// on the verification pool, by the channel's configuration in force.
pub async fn authorise(
    service: &Service,
    ch: &ChannelHandle,
    candidates: Vec<Result<Candidate, BroadcastResponse>>,
) -> Authorised {
    let mut signed = Vec::with_capacity(candidates.len());
    let kinds: Vec<&'static str> = candidates.iter().map(|c| c.as_ref().map_or("UNKNOWN", |c| c.kind)).collect();
    let relayable: Vec<Result<Bytes, BroadcastResponse>> = candidates
        .into_iter()
        .map(|c| {
            c.map(|c| {
                signed.push(c.signed);
                c.marshaled
            })
        })
        .collect();
    let access = ch.status.access();
    let config_seq = access.sequence();
    let started = Instant::now();
    let mut verdicts = service.verifier.check_all(access, signed, PolicyName::Writers).await.into_iter();
    let validated = started.elapsed();
    let results: Vec<Result<Bytes, BroadcastResponse>> = relayable
        .into_iter()
        .map(|marshaled| {
            let marshaled = marshaled?;
            match verdicts.next() {
                Some(Ok(_)) => Ok(marshaled),
                Some(Err(denied)) => Err(answer(denied.status(), denied.to_string())),
                None => Err(answer(Status::InternalServerError, "the envelope was not verified")),
            }
        })
        .collect();
    let validated = secs(validated);
    for (result, kind) in results.iter().zip(&kinds) {
        match result {
            Ok(_) if *kind == "ENDORSER_TRANSACTION" => ch.status.metrics.transaction_validate.observe(validated),
            _ => {
                let status = result.as_ref().err().map_or("SUCCESS", status_label);
                let labels = [ch.name.as_str(), kind, status];
                metrics().broadcast_validate_duration.with_label_values(&labels).observe(validated);
            }
        }
    }
    Authorised { config_seq, results, kinds }
}

/// The status name of an answer, as a metric label.
fn status_label(resp: &BroadcastResponse) -> &'static str {
    Status::try_from(resp.status).map_or("UNKNOWN", |s| s.as_str_name())
}

/// How long past the enqueue timeout the HTTP side waits for the actor's answer before giving up
/// on an actor that stopped answering altogether.
const ACTOR_GRACE: Duration = Duration::from_secs(5);

fn refused(e: BroadcastError) -> BroadcastResponse {
    answer(Status::ServiceUnavailable, e.to_string())
}

/// Waits, until `deadline`, while `size` more bytes would take the channel's backlog (what its
/// consumer is behind what clients sent) over `max-lag-bytes`: a client faster than the channel
/// orders is slowed to its pace instead of growing a backlog (which the in-memory dev broker
/// would drop). Returns at once when nothing is behind, so any batch can make progress.
async fn wait_for_room(ch: &ChannelHandle, size: u64, deadline: Instant) -> Result<(), BroadcastResponse> {
    let limit = ch.settings.max_lag_bytes;
    if limit == 0 {
        return Ok(());
    }
    loop {
        let mut notified = std::pin::pin!(ch.status.room());
        notified.as_mut().enable();
        let lag = ch.status.lag_bytes();
        if lag == 0 || lag + size <= limit {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(refused(BroadcastError::Behind { channel: ch.name.clone(), lag, limit }));
        }
        // Woken as soon as the actor consumed more records, and at least every few milliseconds
        // (a failed record leaves the backlog without being consumed).
        let wake = tokio::time::Instant::from_std(deadline.min(Instant::now() + Duration::from_millis(5)));
        let _ = tokio::time::timeout_at(wake, notified).await;
    }
}

/// Hands checked envelopes to the channel actor, in order; one result per envelope. Waits (at
/// most `http.enqueue-timeout`) for room in the channel's backlog and mailbox: the actor takes
/// the envelopes that fit in the backlog bound and gives back the rest, which are sent again,
/// from the first of them, once there is room. The actor refuses a message it takes from
/// its mailbox after that deadline, so a client told "busy" can retry without its envelopes
/// also being ordered behind its back.
pub async fn enqueue_all(
    service: &Service,
    ch: &ChannelHandle,
    envelopes: Vec<Bytes>,
    config_seq: u64,
) -> Vec<Result<Enqueued, BroadcastResponse>> {
    let mut answers = Vec::with_capacity(envelopes.len());
    let mut pending = envelopes;
    let deadline = Instant::now() + service.enqueue_timeout;
    while !pending.is_empty() {
        let count = pending.len();
        let all = |resp: BroadcastResponse| (0..count).map(move |_| Err(resp.clone()));
        // Room for the first envelope at least: the actor takes as many as fit.
        if let Err(resp) = wait_for_room(ch, pending[0].len() as u64, deadline).await {
            answers.extend(all(resp));
            break;
        }
        let msg = BroadcastBatch { slot: MailboxSlot::new(&ch.status), envelopes: pending, config_seq, deadline };
        let Taken { answers: taken, rest } =
            match tokio::time::timeout(service.enqueue_timeout + ACTOR_GRACE, ch.addr.send(msg)).await {
                Ok(Ok(taken)) => taken,
                Ok(Err(_)) => {
                    answers.extend(all(answer(
                        Status::ServiceUnavailable,
                        format!("channel '{}' is restarting; retry later", ch.name),
                    )));
                    break;
                }
                Err(_) => {
                    answers.extend(all(answer(
                        Status::ServiceUnavailable,
                        format!(
                            "channel '{}' did not answer within {:?}; the envelopes may or may not be ordered",
                            ch.name,
                            service.enqueue_timeout + ACTOR_GRACE
                        ),
                    )));
                    break;
                }
            };
        answers.extend(taken.into_iter().map(|r| r.map_err(refused)));
        // What did not fit (another sender took the room first, or the batch is larger than the
        // room left) waits for room and goes again; past the deadline `wait_for_room` refuses it.
        pending = rest;
    }
    answers
}

/// The answers to checked envelopes, in order: each refusal as it is, and every accepted one
/// relayed (in one actor message, or several when the backlog bound takes them in parts) and
/// answered when Kafka acknowledges it.
pub async fn relay_in_order(
    service: &Service,
    ch: &ChannelHandle,
    checked: Authorised,
) -> Vec<impl Future<Output = BroadcastResponse>> {
    let Authorised { config_seq, results: checked, kinds } = checked;
    let valid: Vec<Bytes> = checked.iter().filter_map(|c| c.as_ref().ok().cloned()).collect();
    let started = Instant::now();
    let mut enqueued =
        if valid.is_empty() { Vec::new() } else { enqueue_all(service, ch, valid, config_seq).await }.into_iter();
    checked
        .into_iter()
        .zip(kinds)
        .map(|(c, kind)| {
            let next = c.map(|_| {
                enqueued.next().unwrap_or_else(|| {
                    Err(answer(Status::InternalServerError, "the channel gave no answer for this envelope"))
                })
            });
            let channel = ch.status.clone();
            async move {
                let (resp, enqueue) = match next {
                    Err(refusal) => (refusal, false),
                    Ok(Err(refusal)) => (refusal, true),
                    Ok(Ok(e)) => (acknowledged(e).await, true),
                };
                let elapsed = secs(started.elapsed());
                if kind == "ENDORSER_TRANSACTION" && resp.status == Status::Success as i32 {
                    channel.metrics.transaction_enqueue.observe(elapsed);
                    channel.metrics.transaction_processed.inc();
                } else {
                    let m = metrics();
                    let labels = [channel.name.as_str(), kind, status_label(&resp)];
                    if enqueue {
                        m.broadcast_enqueue_duration.with_label_values(&labels).observe(elapsed);
                    }
                    m.broadcast_processed_count.with_label_values(&labels).inc();
                }
                resp
            }
        })
        .collect()
}

/// Kafka's acknowledgement of an enqueued envelope, as the client's answer.
pub async fn acknowledged(enqueued: Enqueued) -> BroadcastResponse {
    match enqueued.acknowledged().await {
        Ok(_) => success(),
        Err(e) => refused(e),
    }
}
