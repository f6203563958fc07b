//! Whether a config update is admitted: the one decision for an update of a channel and for a
//! channel's creation on the system channel, made when the request arrives (by the OSN that
//! received it, at its own clock) and again when its record is consumed (by every OSN, at the
//! update's own timestamp, so that all decide alike). A refusal carries the status its sender is
//! answered with; the two stages differ only in what a configuration that no longer derives
//! means: a bad request on arrival, a conflict with the chain's newer state at consumption.

use std::collections::BTreeSet;

use crate::core::access::Access;
use crate::core::config::{self, UpdateRequest};
use crate::core::policy::PolicyName;
use crate::proto::osn::ChannelConfig;
use crate::proto::{Envelope, Status};

/// What a CONFIG-class record derives to under the configuration in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    pub kind: DerivedKind,
    /// The configuration it sets: the channel's next one, or the new channel's genesis one.
    pub config: ChannelConfig,
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
    /// Its signers do not satisfy the policy, or the channel limit forbids it: FORBIDDEN (as the
    /// same checks answer when the request arrives).
    #[error("{0}")]
    Forbidden(String),
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
            Refusal::Invalid(_) | Refusal::Conflict(_) => Status::BadRequest,
            Refusal::Forbidden(_) => Status::Forbidden,
        }
    }

    /// The HTTP code of the answer: 400, 403, or 409 for a conflict.
    pub fn http_code(&self) -> u16 {
        match self {
            Refusal::Conflict(_) => 409,
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
    pub config: &'a ChannelConfig,
    pub access: &'a Access,
    /// On the system channel: the channels that exist.
    pub existing: Option<Existing<'a>>,
}

/// The channels that exist, as the decision knows them: on arrival every channel the OSN runs,
/// at consumption those the system channel created.
pub struct Existing<'a> {
    pub names: &'a BTreeSet<String>,
    /// How many the system channel created (what `max_channels` limits).
    pub created: usize,
}

/// Admits `request` as `kind` on `target` at time `now` (seconds): the derivation to order or
/// apply, or why not. The checks, in order: the channel names and existence (creations), the
/// signers against the policy (Admins for an update, Writers for a creation), the timestamp, the
/// channel limit (creations), then the configuration the update derives to.
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
    let policy = match &kind {
        DerivedKind::Update { .. } => {
            if channel != target.channel {
                return Err(Refusal::Invalid(format!(
                    "a config update of channel '{channel}' on channel '{}'",
                    target.channel
                )));
            }
            PolicyName::Admins
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
            PolicyName::Writers
        }
    };
    // Fabric's order: certificates, signatures, chains and the policy, then the timestamp.
    request.authorise(target.access, policy, now).map_err(Refusal::denied)?;
    target.access.check_timestamp(request.timestamp(), now).map_err(Refusal::denied)?;
    if let Some(existing) = &target.existing {
        let limit = target.config.max_channels;
        if limit > 0 && existing.created >= limit as usize {
            return Err(Refusal::Forbidden(format!(
                "the channel limit of {limit} is reached ({} channels created)",
                existing.created
            )));
        }
    }
    let derived = match &kind {
        DerivedKind::Update { .. } => config::apply(target.config, &request.update),
        DerivedKind::Create { .. } => config::new_channel(target.config, &request.update),
    };
    let config = derived.map_err(|reason| match stage {
        Stage::Arrival => Refusal::Invalid(reason),
        // It derived when it arrived; if it no longer does, the chain changed since.
        Stage::Consumption => Refusal::Conflict(reason),
    })?;
    Ok(Derived { kind, config, last_update: request.envelope().clone() })
}
