//! Whether a config update is admitted: the one decision for an update of a channel and for a
//! channel's creation on the system channel, made when the request arrives (by the OSN that
//! received it, at its own clock) and again when its record is consumed (by every OSN, at the
//! update's own timestamp, so that all decide alike). A refusal carries the status its sender is
//! answered with; the two stages differ only in what a configuration that no longer derives
//! means: a bad request on arrival, a conflict with the chain's newer state at consumption.

use std::collections::BTreeSet;

use crate::core::access::Access;
use crate::core::brokercheck::HEADROOM;
use crate::core::channelconfig::Bundle;
use crate::core::config::{self, UpdateRequest, MAX_ABSOLUTE_BYTES};
use crate::core::configtx::{self, ConfigtxError, Kind, Validator};
use crate::core::policy::PolicyName;
use crate::proto::common::Config;
use crate::proto::{Envelope, Status};

/// What a CONFIG-class record derives to under the configuration in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub kind: DerivedKind,
    /// The configuration it sets: the channel's next one, or the new channel's first one.
    pub config: Config,
    /// The signed CONFIG_UPDATE envelope it comes from.
    pub last_update: Envelope,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DerivedKind {
    /// An update of this channel's configuration.
    Update { channel: String },
    /// The creation of a channel, on the system channel.
    Create { channel: String },
}

impl DerivedKind {
    pub fn channel(&self) -> &str {
        match self {
            DerivedKind::Update { channel } | DerivedKind::Create { channel } => channel,
        }
    }
}

/// Why a config update or a channel creation is refused, when it arrives or when its record is
/// consumed (then the same decision on every OSN), with the status its sender is answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Malformed, inconsistent, or not the configuration its update derives to: BAD_REQUEST.
    #[error("{0}")]
    Invalid(String),
    /// Its creator may not write to the channel (an expired certificate, a bad signature, not a
    /// writer): FORBIDDEN, as Fabric's signature filter answers.
    #[error("{0}")]
    Forbidden(String),
    /// Its approvals do not satisfy the mod_policy of what it changes (or the consortium's
    /// ChannelCreationPolicy), or the channel limit forbids it: HTTP 403 with Fabric's status
    /// BAD_REQUEST, which Fabric's Broadcast answers for what its configtx validator and system
    /// channel filter refuse.
    #[error("{0}")]
    NotApproved(String),
    /// The chain moved on since the request was checked on arrival: the channel exists by now,
    /// or the update no longer applies to the configuration in force. A conflict (HTTP 409,
    /// Fabric status BAD_REQUEST): checked again against the new state, it may succeed.
    #[error("{0}")]
    Conflict(String),
}

impl From<String> for Refusal {
    fn from(reason: String) -> Self {
        Refusal::Invalid(reason)
    }
}

impl From<&str> for Refusal {
    fn from(reason: &str) -> Self {
        Refusal::Invalid(reason.to_owned())
    }
}

impl Refusal {
    /// The Fabric status of the answer.
    pub fn status(&self) -> Status {
        match self {
            Refusal::Invalid(_) | Refusal::Conflict(_) | Refusal::NotApproved(_) => Status::BadRequest,
            Refusal::Forbidden(_) => Status::Forbidden,
        }
    }

    /// The HTTP code of the answer: 400, 403 (refused by the policies or the channel limit), or
    /// 409 for a conflict.
    pub fn http_code(&self) -> u16 {
        match self {
            Refusal::Conflict(_) => 409,
            Refusal::NotApproved(_) => 403,
            _ => self.status().http_code(),
        }
    }

    /// A signer check that failed: FORBIDDEN, or BAD_REQUEST for a timestamp (its own status).
    pub(crate) fn denied(denied: crate::core::access::Denied) -> Self {
        match denied.status() {
            Status::Forbidden => Refusal::Forbidden(denied.to_string()),
            _ => Refusal::Invalid(denied.to_string()),
        }
    }
}

/// When the decision is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// On the OSN that received the request, before ordering it.
    Arrival,
    /// On every OSN, when the ordered record is consumed.
    Consumption,
}

/// The channel a request is checked on: the channel itself for an update, the system channel
/// for a creation.
pub struct Target<'a> {
    pub channel: &'a str,
    pub bundle: &'a Bundle,
    pub access: &'a Access,
    /// On the system channel: the channels that exist.
    pub existing: Option<Existing<'a>>,
    /// The largest record the Kafka brokers accept for the channel's topic, when known (on
    /// arrival): an AbsoluteMaxBytes that leaves less than [`HEADROOM`] under it is refused.
    pub record_limit: Option<u64>,
}

/// The channels that exist, as the decision knows them: on arrival every channel the OSN runs,
/// at consumption those the system channel created.
pub struct Existing<'a> {
    pub names: &'a BTreeSet<String>,
    /// How many the system channel created (what ChannelRestrictions' max_count limits).
    pub created: usize,
}

/// A configtx refusal as the sender is answered: unauthorised is FORBIDDEN; anything else a bad
/// request on arrival, and at consumption a conflict with the chain's newer state (it passed on
/// arrival).
fn refusal(e: ConfigtxError, stage: Stage) -> Refusal {
    match (e.kind, stage) {
        (Kind::Unauthorized, _) => Refusal::NotApproved(e.message),
        (Kind::Invalid, Stage::Arrival) => Refusal::Invalid(e.message),
        (Kind::Invalid, Stage::Consumption) => Refusal::Conflict(e.message),
    }
}

/// Admits `request` as `kind` on `target` at time `now` (seconds): the derivation to order or
/// apply, or why not, as Fabric's message processors decide it.
///
/// - An update (Fabric's standard channel): the envelope's creator must satisfy
///   `/Channel/Writers` (certificate, signature, chain, policy; on arrival at the OSN's clock, at
///   consumption at the update's own timestamp), then Fabric's configtx rules with the
///   approvals that verify, the new configuration's own checks, and what it may not change.
/// - A creation (Fabric's system channel): a valid, new name, then the consortium's template
///   with the update applied under its ChannelCreationPolicy, the new configuration's checks,
///   and ChannelRestrictions' max_count.
///
/// On arrival the update's timestamp must also be within the OSN's time window, and an
/// AbsoluteMaxBytes over what the producer sends is refused.
pub fn admit(
    request: &UpdateRequest,
    kind: DerivedKind,
    target: &Target<'_>,
    now: i64,
    stage: Stage,
) -> Result<Derived, Refusal> {
    let channel = kind.channel();
    if request.update.channel_id != channel {
        return Err(Refusal::Invalid(format!(
            "the config update is for channel '{}', not '{channel}'",
            request.update.channel_id
        )));
    }
    let (signers, dropped) = target.access.config_signers(&request.signed_data());
    let with_dropped = |r: Refusal| match (r, dropped.is_empty()) {
        (Refusal::NotApproved(m), false) => Refusal::NotApproved(format!("{m} (not counted: {})", dropped.join("; "))),
        (r, _) => r,
    };
    let config = match &kind {
        DerivedKind::Update { .. } => {
            if channel != target.channel {
                return Err(Refusal::Invalid(format!(
                    "a config update of channel '{channel}' on channel '{}'",
                    target.channel
                )));
            }
            let env = request.envelope();
            let req = crate::core::access::Request {
                payload: &env.payload,
                signature: &env.signature,
                creator: &request.creator,
                timestamp: request.timestamp(),
            };
            match stage {
                Stage::Arrival => target.access.check(&req, PolicyName::Writers, now).map(|_| ()),
                Stage::Consumption => target.access.revalidate(&req),
            }
            .map_err(Refusal::denied)?;
            let next = target.bundle.propose(&request.update_envelope, &signers).map_err(|e| refusal(e, stage));
            next.map_err(with_dropped)?.config
        }
        DerivedKind::Create { .. } => {
            let Some(existing) = &target.existing else {
                return Err(Refusal::Invalid(format!(
                    "channel '{}' is not a system channel: it creates no channels",
                    target.channel
                )));
            };
            config::validate_channel_id(channel)?;
            if channel == target.channel {
                return Err(Refusal::Invalid(format!("'{channel}' is the system channel")));
            }
            if existing.names.contains(channel) {
                return Err(Refusal::Conflict(format!("channel '{channel}' already exists")));
            }
            if stage == Stage::Arrival {
                target.access.check_timestamp(request.timestamp(), now).map_err(Refusal::denied)?;
            }
            let template = configtx::channel_template(&target.bundle.config, channel, &request.update)
                .map_err(|e| refusal(e, stage))?;
            let validator = Validator::new(channel, &template).map_err(|e| refusal(e, stage))?;
            let config =
                validator.propose(&request.update_envelope, &signers).map_err(|e| with_dropped(refusal(e, stage)))?;
            Bundle::new(channel, config.clone()).map_err(|e| match stage {
                Stage::Arrival => Refusal::Invalid(format!("the new channel's configuration: {e}")),
                Stage::Consumption => Refusal::Conflict(format!("the new channel's configuration: {e}")),
            })?;
            // Fabric's system channel filter, after the creation policy: ChannelRestrictions.
            let limit = target.bundle.values.max_channels;
            if limit > 0 && existing.created as u64 >= limit {
                return Err(Refusal::NotApproved(format!(
                    "channel creation would exceed the maximum number of channels: {limit} ({} created)",
                    existing.created
                )));
            }
            config
        }
    };
    if stage == Stage::Arrival {
        if let DerivedKind::Update { .. } = kind {
            target.access.check_timestamp(request.timestamp(), now).map_err(Refusal::denied)?;
        }
        let absolute = crate::core::channelconfig::OrderingValues::read(&config)
            .map(|v| v.batch_size.absolute_max_bytes)
            .unwrap_or_default();
        if absolute > MAX_ABSOLUTE_BYTES {
            return Err(Refusal::Invalid(format!(
                "AbsoluteMaxBytes {absolute} is over {MAX_ABSOLUTE_BYTES}, the largest record OSN's producer sends"
            )));
        }
        if let Some(limit) = target.record_limit.filter(|limit| u64::from(absolute) + HEADROOM > *limit) {
            return Err(Refusal::Invalid(format!(
                "AbsoluteMaxBytes {absolute} is more than the Kafka brokers accept: they take records of at most {limit} bytes (message.max.bytes, or the topic's max.message.bytes), and Fabric's guide asks for 1 MiB of room above AbsoluteMaxBytes; raise the brokers' limits first"
            )));
        }
    }
    Ok(Derived { kind, config, last_update: request.envelope().clone() })
}
