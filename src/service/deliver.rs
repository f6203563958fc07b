//! Deliver, whatever the transport: a request (a signed DELIVER_SEEK_INFO envelope) checked
//! against the channel's Readers and resolved against its ledger, then the blocks it asked for,
//! read from the ledger behind the height watch, ending with a status. The reader is checked
//! again when the channel's configuration changes and when its certificate expires; STRICT
//! requests end when the channel is not ready. Front ends only decode requests and encode
//! [`Item`]s.

use std::sync::Arc;

use tokio::sync::watch;

use crate::actors::{ChannelHandle, ChannelStatus, Phase};
use crate::core::access::{Access, Request, Verified};
use crate::core::envelope::{check_seek_request, SeekRequest};
use crate::core::policy::PolicyName;
use crate::core::seek::{check_available, resolve, SeekRange};
use crate::ledger::Ledger;
use crate::metrics::metrics;
use crate::proto::{Envelope, Status};
use crate::verify::unix_now;

/// What a subscription yields.
#[derive(Debug)]
pub enum Item {
    /// A stored block: its protobuf bytes, framed for deliver streams when it is one of the
    /// newest.
    Block(crate::ledger::BlockBytes),
    /// The final status: SUCCESS after the stop block, or why the stream ended early.
    End(Status, String),
}

/// One Deliver request being served.
pub struct Subscription {
    channel: String,
    ledger: Arc<Ledger>,
    height: watch::Receiver<u64>,
    phase: watch::Receiver<(Phase, String)>,
    access: watch::Receiver<Arc<Access>>,
    /// The access control `reader` was last checked against.
    checked: Arc<Access>,
    reader: Verified,
    range: SeekRange,
    next: u64,
    ended: bool,
}

/// Checks a DELIVER_SEEK_INFO envelope (structure, then its creator against the channel's
/// Readers under `access`): the seek request and the reader, or the status and info refusing it.
/// Deliver requests and the `Authorization` envelope of the block and config reads share it.
pub fn check_reader(
    access: &Access,
    envelope: &Envelope,
    channel: &str,
) -> Result<(SeekRequest, Verified), (Status, String)> {
    let seek = check_seek_request(envelope, channel).map_err(|e| (e.status(), e.to_string()))?;
    let request = Request {
        payload: &envelope.payload,
        signature: &envelope.signature,
        creator: &seek.creator,
        timestamp: seek.timestamp(),
    };
    let reader = access.check(&request, PolicyName::Readers, unix_now()).map_err(|d| (d.status(), d.to_string()))?;
    Ok((seek, reader))
}

/// Why the channel cannot serve a STRICT request right now, if it cannot.
fn not_ready(phase: &(Phase, String)) -> Option<String> {
    match phase {
        (Phase::Ready, _) => None,
        (p, reason) if reason.is_empty() => Some(format!("channel is {p}")),
        (p, reason) => Some(format!("channel is {p}: {reason}")),
    }
}

/// One deliver stream (a websocket session or a streamed POST): counted in
/// `deliver_streams_opened` when made and `deliver_streams_closed` when dropped; a websocket one
/// also in `osn_deliver_websocket_subscribers`.
pub struct StreamGuard {
    websocket: Option<String>,
}

impl StreamGuard {
    pub fn new(websocket_channel: Option<&str>) -> Self {
        let m = metrics();
        m.deliver_streams_opened.inc();
        if let Some(channel) = websocket_channel {
            m.deliver_websocket_subscribers.with_label_values(&[channel]).inc();
        }
        StreamGuard { websocket: websocket_channel.map(str::to_owned) }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let m = metrics();
        m.deliver_streams_closed.inc();
        if let Some(channel) = &self.websocket {
            m.deliver_websocket_subscribers.with_label_values(&[channel]).dec();
        }
    }
}

/// Fabric's labels of a deliver request: blocks, not filtered.
fn request_labels(channel: &str) -> [&str; 3] {
    [channel, "false", "block"]
}

impl Subscription {
    /// Checks and resolves a request (its Envelope as the front end decoded it, or why it did
    /// not decode) against the channel as it is now.
    pub fn open(ch: &ChannelHandle, request: Result<Envelope, String>) -> Result<Self, (Status, String)> {
        Self::open_on(&ch.name, &ch.ledger, &ch.status, request)
    }

    /// [`Subscription::open`] on a channel's parts.
    pub fn open_on(
        channel: &str,
        ledger: &Arc<Ledger>,
        status: &ChannelStatus,
        request: Result<Envelope, String>,
    ) -> Result<Self, (Status, String)> {
        let m = metrics();
        m.deliver_requests_received.with_label_values(&request_labels(channel)).inc();
        let opened = Self::check_and_resolve(channel, ledger, status, request);
        if opened.is_err() {
            let [c, filtered, data_type] = request_labels(channel);
            m.deliver_requests_completed.with_label_values(&[c, filtered, data_type, "false"]).inc();
        }
        opened
    }

    fn check_and_resolve(
        channel: &str,
        ledger: &Arc<Ledger>,
        status: &ChannelStatus,
        request: Result<Envelope, String>,
    ) -> Result<Self, (Status, String)> {
        let envelope = request.map_err(|info| (Status::BadRequest, info))?;
        let mut access = status.watch_access();
        let checked = access.borrow_and_update().clone();
        let (seek, reader) = check_reader(&checked, &envelope, channel)?;
        let height = ledger.subscribe();
        let range = resolve(&seek.seek_info, *height.borrow()).map_err(|e| (e.status(), e.to_string()))?;
        let phase = status.watch();
        check_available(&range, not_ready(&phase.borrow()).as_deref()).map_err(|e| (e.status(), e.to_string()))?;
        Ok(Subscription {
            channel: channel.to_owned(),
            ledger: ledger.clone(),
            height,
            phase,
            access,
            checked,
            reader,
            range,
            next: range.start,
            ended: false,
        })
    }

    /// Whether the creator may still read: its certificate is valid, and the channel's current
    /// access control (re-checked when it changed) still lets it.
    fn still_authorised(&mut self) -> Result<(), String> {
        let now = unix_now();
        if now > self.reader.valid_until {
            return Err(format!(
                "the creator's certificate (or a CA on its chain) expired at unix time {}",
                self.reader.valid_until
            ));
        }
        // Compared by identity, not by the watch's "changed" flag: awaiting `changed()` while idle
        // marks the new value seen before this runs.
        let current = self.access.borrow_and_update().clone();
        if !Arc::ptr_eq(&current, &self.checked) {
            self.reader = current
                .recheck(&self.reader, PolicyName::Readers, now)
                .map_err(|d| format!("the channel's configuration changed: {d}"))?;
            self.checked = current;
        }
        Ok(())
    }

    /// The next block, or the final status; `None` once the final status was returned.
    ///
    /// Cancel-safe: it only awaits watch changes, so dropping the future (to serve a client
    /// message instead) loses nothing.
    pub async fn next(&mut self) -> Option<Item> {
        if self.ended {
            return None;
        }
        loop {
            if let Err(info) = self.still_authorised() {
                return Some(self.end(Status::Forbidden, info));
            }
            let not_ready = not_ready(&self.phase.borrow_and_update());
            if let Err(e) = check_available(&self.range, not_ready.as_deref()) {
                return Some(self.end(e.status(), e.to_string()));
            }
            if self.next > self.range.stop {
                return Some(self.end(Status::Success, String::new()));
            }
            let height = *self.height.borrow_and_update();
            if self.next < height {
                let number = self.next;
                return Some(match self.ledger.stored_block(number) {
                    Ok(Some(raw)) => {
                        self.next += 1;
                        metrics().deliver_blocks_sent.with_label_values(&request_labels(&self.channel)).inc();
                        Item::Block(raw)
                    }
                    Ok(None) => {
                        self.end(Status::InternalServerError, format!("block {number} is missing from the ledger"))
                    }
                    Err(e) => self.end(Status::InternalServerError, format!("cannot read block {number}: {e}")),
                });
            }
            if !self.range.wait {
                let info = format!(
                    "block {} is not written yet (height {height}) and the request asked FAIL_IF_NOT_READY",
                    self.next
                );
                return Some(self.end(Status::NotFound, info));
            }
            let strict = self.range.strict;
            let expiry =
                std::time::Duration::from_secs(self.reader.valid_until.saturating_sub(unix_now()).max(0) as u64 + 1);
            tokio::select! {
                _ = tokio::time::sleep(expiry) => {},
                changed = self.access.changed() => if changed.is_err() {
                    return Some(self.end(Status::ServiceUnavailable, "the channel was stopped".into()));
                },
                changed = self.height.changed() => if changed.is_err() {
                    return Some(self.end(Status::ServiceUnavailable, "the channel's ledger was closed".into()));
                },
                changed = self.phase.changed(), if strict => if changed.is_err() {
                    return Some(self.end(Status::ServiceUnavailable, "the channel was stopped".into()));
                },
            }
        }
    }

    fn end(&mut self, status: Status, info: String) -> Item {
        self.ended = true;
        let [c, filtered, data_type] = request_labels(&self.channel);
        let success = if status == Status::Success { "true" } else { "false" };
        metrics().deliver_requests_completed.with_label_values(&[c, filtered, data_type, success]).inc();
        Item::End(status, info)
    }
}
