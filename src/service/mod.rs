//! The ordering service as every front end sees it: find a channel, broadcast envelopes to it
//! ([`broadcast`]), read its blocks ([`deliver`]), create a channel or change one's configuration ([`Service::create_channel`],
//! [`Service::update_config`]). Front ends (HTTP, its websockets, and later gRPC) only decode
//! requests and encode answers; backpressure, deadlines, mailbox slots and the admission of
//! config updates are decided here, once. Errors are a [`ServiceError`] that knows its Fabric
//! status and HTTP code.

pub mod broadcast;
pub mod deliver;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::actors::{ChannelHandle, Channels, EnqueueConfig, MailboxSlot, Phase};
use crate::core::admission::{admit, Derived, DerivedKind, Existing, Refusal, Stage, Target};
use crate::core::chain::Applied;
use crate::core::channelconfig::Bundle;
use crate::core::config::UpdateRequest;
use crate::identity::envelope::config_record;
use crate::identity::SigningIdentity;
use crate::proto::Status;
use crate::verify::{unix_now, Verifier};

/// How long a config transaction's sender waits for it to be consumed.
const CONSUME_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a channel creation waits for the new channel to be ready, before answering anyway.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many channel names a "no such channel" answer lists.
const NAMES_LISTED: usize = 10;

/// What every front end shares. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    pub channels: Arc<Channels>,
    /// Where signed requests are checked.
    pub verifier: Arc<Verifier>,
    /// This OSN's identity: it signs the CONFIG envelopes it derives from config updates.
    pub signer: Option<Arc<SigningIdentity>>,
    /// How long a request waits for room in a channel's backlog and mailbox (`http.enqueue-timeout`).
    pub enqueue_timeout: Duration,
    /// The Kafka cluster's settings as last read (the brokers' record limit bounds AbsoluteMaxBytes).
    pub kafka_settings: Arc<crate::kafka::settings::KafkaSettings>,
}

/// Why the service did not do what was asked, with the answer's Fabric status and HTTP code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// Malformed or inconsistent: 400.
    #[error("{0}")]
    BadRequest(String),
    /// Over a size limit: 413.
    #[error("{0}")]
    TooLarge(String),
    /// No such channel on this OSN: 404.
    #[error("{0}")]
    NotFound(String),
    /// Not now (the channel is not ready, Kafka is unavailable, a timeout): 503; a retry may work.
    #[error("{0}")]
    Unavailable(String),
    /// This OSN cannot do it at all: 501.
    #[error("{0}")]
    NotImplemented(String),
    /// A bug or an inconsistent state: 500.
    #[error("{0}")]
    Internal(String),
    /// A config update or a creation refused by the admission rules (400, 403 or 409).
    #[error("{0}")]
    Refused(Refusal),
}

impl ServiceError {
    /// The Fabric status of the answer.
    pub fn status(&self) -> Status {
        match self {
            ServiceError::BadRequest(_) => Status::BadRequest,
            ServiceError::TooLarge(_) => Status::RequestEntityTooLarge,
            ServiceError::NotFound(_) => Status::NotFound,
            ServiceError::Unavailable(_) => Status::ServiceUnavailable,
            ServiceError::NotImplemented(_) => Status::NotImplemented,
            ServiceError::Internal(_) => Status::InternalServerError,
            ServiceError::Refused(r) => r.status(),
        }
    }

    /// The HTTP code of the answer (Fabric's status's, but 409 for a conflict).
    pub fn http_code(&self) -> u16 {
        match self {
            ServiceError::Refused(r) => r.http_code(),
            other => other.status().http_code(),
        }
    }
}

impl From<Refusal> for ServiceError {
    fn from(r: Refusal) -> Self {
        ServiceError::Refused(r)
    }
}

impl Service {
    /// The channel called `name`: 400 for a name that is not a channel ID, 404 for a channel this
    /// OSN does not have.
    pub fn lookup(&self, name: &str) -> Result<ChannelHandle, ServiceError> {
        if let Some(ch) = self.channels.get(name) {
            return Ok(ch);
        }
        crate::core::config::validate_channel_id(name).map_err(ServiceError::BadRequest)?;
        let known = self.channels.names();
        let listed = known.iter().take(NAMES_LISTED).cloned().collect::<Vec<_>>().join(", ");
        let more = known.len().saturating_sub(NAMES_LISTED);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        Err(ServiceError::NotFound(format!("channel '{name}' does not exist on this OSN (channels: {listed}{more})")))
    }

    /// Creates a channel through the system channel: admits the CONFIG_UPDATE (`core::admission`,
    /// at arrival), orders the creation, waits until the system channel consumed it (every OSN
    /// applies it there, by the same rules), then (at most 10 s) until the channel is ready here.
    pub async fn create_channel(&self, request: &UpdateRequest) -> Result<ChannelHandle, ServiceError> {
        let Some(system) = self.channels.system() else {
            return Err(ServiceError::Unavailable("the system channel has not started yet; retry".into()));
        };
        let name = request.update.channel_id.clone();
        let names = self.channels.names();
        let existing = Existing { names: &names, created: self.channels.created_count() };
        let (derived, config_seq) =
            self.admit(&system, request, DerivedKind::Create { channel: name.clone() }, Some(existing))?;
        self.order_config(&system, &derived, config_seq).await?;
        // The system channel's actor started the channel before it wrote its block; wait for it
        // to accept broadcasts.
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.channels.get(&name) {
                Some(ch) if ch.status.phase().0 == Phase::Ready || Instant::now() >= deadline => return Ok(ch),
                None if Instant::now() >= deadline => {
                    return Err(ServiceError::Internal(format!(
                        "channel '{name}' was created but has not started on this OSN"
                    )))
                }
                _ => actix_rt::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Changes `ch`'s configuration: admits the CONFIG_UPDATE at arrival, orders the CONFIG
    /// record, and answers with the configuration in force once it is consumed.
    pub async fn update_config(
        &self,
        ch: &ChannelHandle,
        request: &UpdateRequest,
    ) -> Result<Arc<Bundle>, ServiceError> {
        let kind = DerivedKind::Update { channel: ch.name.clone() };
        let (derived, config_seq) = self.admit(ch, request, kind, None)?;
        match self.order_config(ch, &derived, config_seq).await? {
            Applied::Config(config) => Ok(config),
            Applied::Created { .. } => {
                Err(ServiceError::Internal("the update was taken for a channel creation".into()))
            }
        }
    }

    /// The admission decision at arrival, on `ch`'s configuration in force and this OSN's clock;
    /// the derivation and the sequence of the configuration it was made under.
    fn admit(
        &self,
        ch: &ChannelHandle,
        request: &UpdateRequest,
        kind: DerivedKind,
        existing: Option<Existing<'_>>,
    ) -> Result<(Derived, u64), ServiceError> {
        let access = ch.status.access();
        let bundle = ch.config();
        if bundle.values.sequence != access.sequence() {
            return Err(ServiceError::Unavailable("the channel's configuration is changing; retry".into()));
        }
        let record_limit = self.kafka_settings.record_limit(kind.channel());
        let target = Target { channel: &ch.name, bundle: &bundle, access: &access, existing, record_limit };
        let derived = admit(request, kind, &target, unix_now(), Stage::Arrival)?;
        Ok((derived, access.sequence()))
    }

    /// Orders a CONFIG record this OSN derived on `ch` and waits until it is consumed; what it
    /// came to there (the same decision on every OSN).
    async fn order_config(
        &self,
        ch: &ChannelHandle,
        derived: &Derived,
        config_seq: u64,
    ) -> Result<Applied, ServiceError> {
        let Some(signer) = self.signer.as_ref() else {
            return Err(ServiceError::Unavailable("this OSN has no identity to sign the configuration with".into()));
        };
        let system = self.channels.system().map(|s| s.name).unwrap_or_default();
        let record = config_record(signer, derived, &system);
        let deadline = Instant::now() + self.enqueue_timeout;
        let msg = EnqueueConfig { slot: MailboxSlot::new(&ch.status), record, config_seq, deadline };
        let enqueued = match ch.addr.send(msg).await {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => return Err(ServiceError::Unavailable(e.to_string())),
            Err(_) => {
                return Err(ServiceError::Unavailable(format!("channel '{}' is restarting; retry later", ch.name)))
            }
        };
        let offset = enqueued.acknowledged().await.map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        match ch.status.outcome(offset, CONSUME_TIMEOUT).await {
            Some(result) => Ok(result?),
            None => Err(ServiceError::Unavailable(format!(
                "the config transaction was ordered on channel '{}' at offset {offset} but not consumed within {}s; check the channel's configuration before retrying",
                ch.name,
                CONSUME_TIMEOUT.as_secs()
            ))),
        }
    }
}
