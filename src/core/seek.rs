//! Resolution of a Deliver `SeekInfo` against a ledger height, with Fabric's semantics:
//! oldest = block 0, newest = the last block at the time of the request, specified = that number;
//! a start beyond the next block to be written is NOT_FOUND; a stop before the start is
//! BAD_REQUEST; with FAIL_IF_NOT_READY a block not yet written is NOT_FOUND when it is reached;
//! with STRICT (the default) a channel that is not consuming Kafka answers SERVICE_UNAVAILABLE,
//! with BEST_EFFORT the ledger is served regardless.

use crate::proto::orderer::seek_info::{SeekBehavior, SeekErrorResponse};
use crate::proto::{seek_position, SeekInfo, SeekPosition, Status};

/// The blocks a Deliver request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeekRange {
    pub start: u64,
    /// Inclusive; `u64::MAX` streams forever.
    pub stop: u64,
    /// Wait for blocks not written yet (BLOCK_UNTIL_READY), or answer NOT_FOUND.
    pub wait: bool,
    /// STRICT: stop with SERVICE_UNAVAILABLE whenever the channel is not ready.
    pub strict: bool,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SeekError {
    #[error("seek info has no start position")]
    NoStart,
    #[error("seek info has no stop position")]
    NoStop,
    #[error("start block {start} is beyond the next block to be written ({height})")]
    StartBeyondHeight { start: u64, height: u64 },
    #[error("stop block {stop} is before start block {start}")]
    StopBeforeStart { start: u64, stop: u64 },
    #[error("block {number} is not written yet and the request asked FAIL_IF_NOT_READY")]
    NotReady { number: u64 },
    #[error(
        "the channel is not serving consistently ({reason}); retry, or ask BEST_EFFORT to read the ledger as it is"
    )]
    Unavailable { reason: String },
}

impl SeekError {
    pub fn status(&self) -> Status {
        match self {
            SeekError::NoStart | SeekError::NoStop | SeekError::StopBeforeStart { .. } => Status::BadRequest,
            SeekError::StartBeyondHeight { .. } | SeekError::NotReady { .. } => Status::NotFound,
            SeekError::Unavailable { .. } => Status::ServiceUnavailable,
        }
    }
}

fn position(pos: &Option<SeekPosition>, height: u64) -> Option<u64> {
    match pos.as_ref()?.r#type.as_ref()? {
        seek_position::Type::Oldest(_) => Some(0),
        seek_position::Type::Newest(_) => Some(height.saturating_sub(1)),
        seek_position::Type::Specified(s) => Some(s.number),
    }
}

/// Resolves `seek` against a ledger of `height` blocks (a channel always has its genesis block,
/// so `height ≥ 1`).
pub fn resolve(seek: &SeekInfo, height: u64) -> Result<SeekRange, SeekError> {
    let start = position(&seek.start, height).ok_or(SeekError::NoStart)?;
    let stop = position(&seek.stop, height).ok_or(SeekError::NoStop)?;
    if start > height {
        return Err(SeekError::StartBeyondHeight { start, height });
    }
    if stop < start {
        return Err(SeekError::StopBeforeStart { start, stop });
    }
    let wait = seek.behavior() == SeekBehavior::BlockUntilReady;
    if !wait && start >= height {
        return Err(SeekError::NotReady { number: start });
    }
    let strict = seek.error_response() == SeekErrorResponse::Strict;
    Ok(SeekRange { start, stop, wait, strict })
}

/// Whether a request may be served now: a STRICT request needs a channel that is consuming its
/// partition (`not_ready` is `Some(reason)` when it is not); BEST_EFFORT is always served.
pub fn check_available(range: &SeekRange, not_ready: Option<&str>) -> Result<(), SeekError> {
    match not_ready {
        Some(reason) if range.strict => Err(SeekError::Unavailable { reason: reason.to_owned() }),
        _ => Ok(()),
    }
}

/// A SeekPosition for a block number.
pub fn specified(number: u64) -> SeekPosition {
    SeekPosition { r#type: Some(seek_position::Type::Specified(crate::proto::orderer::SeekSpecified { number })) }
}

pub fn oldest() -> SeekPosition {
    SeekPosition { r#type: Some(seek_position::Type::Oldest(Default::default())) }
}

pub fn newest() -> SeekPosition {
    SeekPosition { r#type: Some(seek_position::Type::Newest(Default::default())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seek(start: SeekPosition, stop: SeekPosition, behavior: SeekBehavior) -> SeekInfo {
        SeekInfo { start: Some(start), stop: Some(stop), behavior: behavior as i32, error_response: 0 }
    }

    #[test]
    fn strict_needs_a_ready_channel_best_effort_does_not() {
        let mut s = seek(oldest(), newest(), SeekBehavior::BlockUntilReady);
        let strict = resolve(&s, 3).unwrap();
        assert!(strict.strict, "STRICT is the default (0)");
        assert_eq!(check_available(&strict, None), Ok(()));
        let err = check_available(&strict, Some("Kafka unreachable")).unwrap_err();
        assert_eq!(err.status(), Status::ServiceUnavailable);
        assert!(err.to_string().contains("Kafka unreachable"), "{err}");
        s.error_response = SeekErrorResponse::BestEffort as i32;
        let best_effort = resolve(&s, 3).unwrap();
        assert_eq!(check_available(&best_effort, Some("Kafka unreachable")), Ok(()));
    }

    fn check(s: SeekInfo, height: u64, want: Result<(u64, u64, bool), Status>) {
        let got = resolve(&s, height).map(|r| (r.start, r.stop, r.wait)).map_err(|e| e.status());
        assert_eq!(got, want, "{s:?} at height {height}");
    }

    #[test]
    fn seek_table() {
        use SeekBehavior::*;
        check(seek(oldest(), newest(), BlockUntilReady), 5, Ok((0, 4, true)));
        check(seek(newest(), newest(), BlockUntilReady), 5, Ok((4, 4, true)));
        check(seek(specified(2), specified(3), FailIfNotReady), 5, Ok((2, 3, false)));
        check(seek(specified(5), specified(u64::MAX), BlockUntilReady), 5, Ok((5, u64::MAX, true)));
        check(seek(specified(6), specified(u64::MAX), BlockUntilReady), 5, Err(Status::NotFound));
        check(seek(specified(5), specified(9), FailIfNotReady), 5, Err(Status::NotFound));
        check(seek(specified(3), specified(2), BlockUntilReady), 5, Err(Status::BadRequest));
        check(seek(specified(3), oldest(), BlockUntilReady), 5, Err(Status::BadRequest));
        check(SeekInfo::default(), 5, Err(Status::BadRequest));
        check(seek(oldest(), SeekPosition::default(), BlockUntilReady), 5, Err(Status::BadRequest));
    }
}
