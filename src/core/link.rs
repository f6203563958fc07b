//! A channel's link to its Kafka partition, as pure logic: whether the channel is connected,
//! since when and why its consumer has been failing, whether a probe of Kafka is running, whether
//! its consumer has stalled, and whether it stopped on something only an operator can fix. It
//! takes events with the time they happened (`now`) and returns [`Action`]s; the ChannelActor
//! carries them out (sets the phase, starts a probe, replaces the consumer, counts errors) and
//! reads no clock for these decisions itself.
//!
//! The rules:
//! - a consumer error starts (or continues) "trouble"; any record consumed clears it, and so
//!   does the consumer seen connected to its brokers after its last error (an idle channel has
//!   no record to consume once the broker is back);
//! - trouble lasting `error_timeout`, or a record Kafka did not acknowledge, errors the channel
//!   and starts one probe (CONNECT records on the retry schedule) unless one runs;
//! - the probe's answer makes the channel ready again and replaces the consumer right after the
//!   last record handled (it may hold a fetch lost in the outage);
//! - a consumer that delivers nothing for `error_timeout` (at least [`MIN_CONSUMER_STALL`]) while
//!   the partition holds records this OSN wrote beyond its position, with the channel ready and
//!   no trouble, is replaced;
//! - an offset out of range (the records the ledger needs are gone) is fatal: the channel stays
//!   errored, no probe clears it, nothing is replaced.

use std::time::{Duration, Instant};

/// A channel's phase, as HTTP, health and metrics show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Starting,
    Ready,
    Errored,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Errored => "errored",
        })
    }
}

/// The shortest silence of a consumer that is taken for a stall, whatever `error_timeout` is (a
/// consumer created or reconnecting takes a few seconds before its first fetch answers).
pub const MIN_CONSUMER_STALL: Duration = Duration::from_secs(5);

/// What the link decided; the actor carries it out, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The channel is errored, for this reason (logged as an error).
    Errored(String),
    /// Kafka answers again: the channel is ready.
    Ready,
    /// Produce CONNECT records on the retry schedule until Kafka answers; then call
    /// [`Link::probe_answered`].
    StartProbe,
    /// Drop the consumer and start one right after the last record handled, for this reason.
    ReplaceConsumer(String),
    /// Count a Kafka error of this kind (`osn_kafka_errors_total{operation}`).
    CountError(&'static str),
}

/// A consumer failing: since when, why, when it last reported an error, and whether every
/// error was the connection's (brokers unreachable), which the consumer connected again ends.
#[derive(Debug, Clone)]
struct Trouble {
    since: Instant,
    reason: String,
    last: Instant,
    connection_only: bool,
}

/// The state of a channel's link to Kafka.
#[derive(Debug, Clone)]
pub struct Link {
    error_timeout: Duration,
    /// Whether the connect sequence finished (a consumer runs).
    connected: bool,
    /// Since when, and why, the consumer has been failing, and its last error (cleared by the
    /// next record, or by the consumer seen connected after that error).
    trouble: Option<Trouble>,
    /// The offset the consumer had last delivered when records beyond it were first seen in the
    /// partition, and when.
    stalled_at: Option<(i64, Instant)>,
    /// Whether a probe of Kafka runs.
    probing: bool,
    /// Stopped on something only an operator can fix (offset out of range).
    fatal: bool,
}

impl Link {
    pub fn new(error_timeout: Duration) -> Self {
        Link { error_timeout, connected: false, trouble: None, stalled_at: None, probing: false, fatal: false }
    }

    /// The channel (re)starts: connecting again, nothing known of Kafka yet.
    pub fn reset(&mut self) {
        *self = Link::new(self.error_timeout);
    }

    /// The partition accepted the channel's CONNECT and its consumer runs.
    pub fn connected(&mut self) {
        self.connected = true;
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether nothing needs watching: connected, no trouble, no probe, no stall being timed, and
    /// every record Kafka acknowledged to this OSN (`written`) consumed. A quiet link only changes
    /// on an event the actor sees (its own write, a consumer error), so it can be looked at less
    /// often.
    pub fn quiet(&self, written: i64, consumed: i64) -> bool {
        self.connected
            && !self.fatal
            && self.trouble.is_none()
            && !self.probing
            && self.stalled_at.is_none()
            && written <= consumed
    }

    pub fn is_fatal(&self) -> bool {
        self.fatal
    }

    pub fn is_probing(&self) -> bool {
        self.probing
    }

    /// The consumer delivered a record: whatever failed before is over.
    pub fn record(&mut self) {
        self.trouble = None;
    }

    /// The consumer reported an error at `now`. `out_of_range`: the partition no longer holds the
    /// offset the ledger resumes from (`resume_offset`). `connection`: the error is the
    /// connection's (a broker unreachable), not the partition's.
    pub fn consumer_error(
        &mut self,
        now: Instant,
        error: &str,
        out_of_range: bool,
        resume_offset: i64,
        connection: bool,
    ) -> Vec<Action> {
        if out_of_range {
            self.fatal = true;
            return vec![
                Action::CountError("offset_out_of_range"),
                Action::Errored(format!(
                    "offset {resume_offset} is out of range on the partition (retention or topic deletion?)"
                )),
            ];
        }
        let trouble = self.trouble.get_or_insert_with(|| Trouble {
            since: now,
            reason: error.to_owned(),
            last: now,
            connection_only: true,
        });
        trouble.last = now;
        trouble.connection_only &= connection;
        vec![Action::CountError("consume")]
    }

    /// The periodic look at Kafka's health, at `now`: `phase` is the channel's phase,
    /// `produce_failure` a record Kafka did not acknowledge since the last look, `written` the
    /// highest offset Kafka acknowledged to this OSN, `consumed` the last offset its consumer
    /// delivered, and `connected_at` when the consumer was last seen connected to its brokers.
    pub fn tick(
        &mut self,
        now: Instant,
        mut phase: Phase,
        produce_failure: Option<String>,
        written: i64,
        consumed: i64,
        connected_at: Option<Instant>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if !self.connected || self.fatal {
            return actions;
        }
        // Connected again after the last of its connection errors: a consumer with nothing to
        // deliver is healthy.
        let reconnected = |t: &Trouble| t.connection_only && connected_at.is_some_and(|at| at > t.last);
        if !self.probing && self.trouble.as_ref().is_some_and(reconnected) {
            self.trouble = None;
        }
        if let Some(reason) = produce_failure {
            self.trouble(&mut phase, format!("a record was not acknowledged: {reason}"), &mut actions);
        }
        if let Some(Trouble { since, reason, .. }) = self.trouble.clone() {
            let failing_for = now.saturating_duration_since(since);
            if failing_for >= self.error_timeout {
                let secs = failing_for.as_secs();
                self.trouble(&mut phase, format!("the consumer has been failing for {secs}s: {reason}"), &mut actions);
            }
        }
        self.check_progress(now, phase, written, consumed, &mut actions);
        actions
    }

    /// The probe reached Kafka.
    pub fn probe_answered(&mut self) -> Vec<Action> {
        self.probing = false;
        self.trouble = None;
        if self.fatal {
            return Vec::new();
        }
        self.stalled_at = None;
        vec![Action::Ready, Action::ReplaceConsumer("Kafka answers again after trouble".into())]
    }

    /// Kafka failed the channel: errored (unless a probe already runs and said so), and a probe.
    fn trouble(&mut self, phase: &mut Phase, reason: String, actions: &mut Vec<Action>) {
        if self.fatal {
            return;
        }
        if *phase == Phase::Ready || !self.probing {
            *phase = Phase::Errored;
            actions.push(Action::Errored(format!("Kafka: {reason}; retrying")));
        }
        if !self.probing {
            self.probing = true;
            actions.push(Action::StartProbe);
        }
    }

    /// A consumer stuck behind records the partition holds is replaced.
    fn check_progress(&mut self, now: Instant, phase: Phase, written: i64, consumed: i64, actions: &mut Vec<Action>) {
        let failing = self.trouble.is_some() || self.probing || phase != Phase::Ready;
        if written <= consumed || failing {
            self.stalled_at = None;
            return;
        }
        match self.stalled_at {
            Some((at, since)) if at == consumed => {
                let stalled_for = now.saturating_duration_since(since);
                if stalled_for >= self.error_timeout.max(MIN_CONSUMER_STALL) {
                    self.stalled_at = None;
                    let secs = stalled_for.as_secs_f64();
                    actions.push(Action::CountError("consumer_stalled"));
                    actions.push(Action::ReplaceConsumer(format!(
                        "it delivered nothing for {secs:.1}s while the partition holds records up to offset {written}, beyond offset {consumed}"
                    )));
                }
            }
            _ => self.stalled_at = Some((consumed, now)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn link() -> (Link, Instant) {
        let mut link = Link::new(TIMEOUT);
        link.connected();
        (link, Instant::now())
    }

    fn kinds(actions: &[Action]) -> Vec<&'static str> {
        actions
            .iter()
            .map(|a| match a {
                Action::Errored(_) => "errored",
                Action::Ready => "ready",
                Action::StartProbe => "probe",
                Action::ReplaceConsumer(_) => "replace",
                Action::CountError(kind) => kind,
            })
            .collect()
    }

    #[test]
    fn nothing_is_decided_before_the_channel_is_connected() {
        let mut link = Link::new(TIMEOUT);
        let t0 = Instant::now();
        assert_eq!(link.consumer_error(t0, "broker down", false, 0, true), vec![Action::CountError("consume")]);
        assert!(link.tick(t0 + s(60), Phase::Starting, Some("timed out".into()), 10, 0, None).is_empty());
    }

    /// A broker outage: consumer errors, the channel errored after `error_timeout` with one
    /// probe, errors going on change nothing, the probe's answer makes it ready and replaces the
    /// consumer (which may hold a fetch lost in the outage).
    #[test]
    fn an_outage_errors_the_channel_once_probes_once_and_the_answer_makes_it_ready() {
        let (mut link, t0) = link();
        let table: &[(u64, Phase, &[&str])] = &[
            (1, Phase::Ready, &[]),                    // failing for 0 s
            (9, Phase::Ready, &[]),                    // 8 s
            (11, Phase::Ready, &["errored", "probe"]), // 10 s: errored, one probe
            (12, Phase::Errored, &[]),                 // the probe runs: nothing more
            (30, Phase::Errored, &[]),
        ];
        link.consumer_error(t0 + s(1), "broker down", false, 0, true);
        for (at, phase, want) in table {
            link.consumer_error(t0 + s(*at), "broker still down", false, 0, true);
            assert_eq!(kinds(&link.tick(t0 + s(*at), *phase, None, 5, 5, None)), *want, "at {at} s");
        }
        assert!(link.is_probing());
        let answer = link.probe_answered();
        assert_eq!(kinds(&answer), ["ready", "replace"]);
        assert_eq!(answer[1], Action::ReplaceConsumer("Kafka answers again after trouble".into()));
        assert!(!link.is_probing());
        // Trouble was cleared by the answer: a later tick is quiet.
        assert!(link.tick(t0 + s(31), Phase::Ready, None, 5, 5, None).is_empty());
    }

    /// Quiet (looked at less often): connected with nothing of its own unconsumed and nothing
    /// wrong; an error, a probe, a stall being timed or an unconsumed own record is not quiet.
    #[test]
    fn a_link_is_quiet_only_when_nothing_needs_watching() {
        assert!(!Link::new(TIMEOUT).quiet(0, 0), "not connected yet");
        let (mut link, t0) = link();
        assert!(link.quiet(5, 5));
        assert!(!link.quiet(6, 5), "an own record not consumed yet");
        link.tick(t0, Phase::Ready, None, 6, 5, None);
        assert!(!link.quiet(6, 6), "a stall is being timed until the next look");
        link.tick(t0 + s(1), Phase::Ready, None, 6, 6, None);
        assert!(link.quiet(6, 6));
        link.consumer_error(t0 + s(2), "broker down", false, 0, true);
        assert!(!link.quiet(6, 6), "trouble");
        link.tick(t0 + s(13), Phase::Ready, None, 6, 6, None);
        assert!(link.is_probing() && !link.quiet(6, 6), "a probe runs");
        link.probe_answered();
        assert!(link.quiet(6, 6));
    }

    /// Issue 18: an idle channel through a 5 s outage. Its consumer has nothing to deliver once
    /// the broker is back, so no record ends the trouble; the consumer seen connected after its
    /// last error does, and the channel is never errored. A partition's own errors (the
    /// consumer connected all along) are not ended that way.
    #[test]
    fn an_idle_consumer_connected_again_after_an_outage_ends_the_trouble() {
        let (mut link, t0) = link();
        for at in 1..=5 {
            link.consumer_error(t0 + s(at), "Local: Broker transport failure", false, 0, true);
        }
        let connected = Some(t0 + s(7));
        assert!(
            link.tick(t0 + s(6), Phase::Ready, None, 5, 5, Some(t0 + s(3))).is_empty(),
            "seen before the last error"
        );
        assert!(!link.quiet(5, 5));
        assert!(link.tick(t0 + s(8), Phase::Ready, None, 5, 5, connected).is_empty());
        assert!(link.quiet(5, 5), "the trouble is over");
        assert!(link.tick(t0 + s(12), Phase::Ready, None, 5, 5, connected).is_empty(), "never errored");

        let (mut partition, t0) = self::link();
        for at in 1..=11 {
            partition.consumer_error(t0 + s(at), "Broker: Not leader for partition", false, 0, false);
            let connected = Some(t0 + s(at) + Duration::from_millis(1));
            let actions = partition.tick(t0 + s(at), Phase::Ready, None, 5, 5, connected);
            if at == 11 {
                assert_eq!(kinds(&actions), ["errored", "probe"], "a partition's errors still count");
            }
        }
    }

    #[test]
    fn the_reason_names_how_long_the_consumer_failed_and_why() {
        let (mut link, t0) = link();
        link.consumer_error(t0, "Broker: Not leader for partition", false, 0, true);
        let actions = link.tick(t0 + s(12), Phase::Ready, None, 0, 0, None);
        assert_eq!(
            actions[0],
            Action::Errored(
                "Kafka: the consumer has been failing for 12s: Broker: Not leader for partition; retrying".into()
            )
        );
    }

    #[test]
    fn a_record_consumed_ends_the_trouble() {
        let (mut link, t0) = link();
        link.consumer_error(t0, "transient", false, 0, true);
        link.record();
        assert!(link.tick(t0 + s(60), Phase::Ready, None, 5, 5, None).is_empty());
    }

    /// A record Kafka did not acknowledge errors the channel at the next look, with a probe;
    /// another while the probe runs errors it no further.
    #[test]
    fn an_unacknowledged_record_errors_the_channel_and_probes_once() {
        let (mut link, t0) = link();
        let first = link.tick(t0, Phase::Ready, Some("Message timed out".into()), 3, 3, None);
        assert_eq!(
            first,
            vec![
                Action::Errored("Kafka: a record was not acknowledged: Message timed out; retrying".into()),
                Action::StartProbe
            ]
        );
        assert!(link.tick(t0 + s(1), Phase::Errored, Some("Message timed out".into()), 3, 3, None).is_empty());
        // Were the channel somehow READY again while the probe runs, it is errored again.
        assert_eq!(kinds(&link.tick(t0 + s(2), Phase::Ready, Some("again".into()), 3, 3, None)), ["errored"]);
    }

    /// A stalled consumer (the partition holds this OSN's records beyond the consumer's position,
    /// and nothing comes): replaced after the stall time, the clock starting at the first look
    /// that saw it; progress restarts the clock.
    #[test]
    fn a_consumer_stalled_behind_own_records_is_replaced() {
        let (mut link, t0) = link();
        assert!(link.tick(t0, Phase::Ready, None, 20, 10, None).is_empty(), "first seen behind: the clock starts");
        assert!(link.tick(t0 + s(9), Phase::Ready, None, 20, 10, None).is_empty());
        assert!(link.tick(t0 + s(10), Phase::Ready, None, 25, 12, None).is_empty(), "progress: the clock starts again");
        assert!(link.tick(t0 + s(19), Phase::Ready, None, 25, 12, None).is_empty());
        let actions = link.tick(t0 + s(20), Phase::Ready, None, 25, 12, None);
        assert_eq!(kinds(&actions), ["consumer_stalled", "replace"]);
        assert_eq!(
            actions[1],
            Action::ReplaceConsumer(
                "it delivered nothing for 10.0s while the partition holds records up to offset 25, beyond offset 12"
                    .into()
            )
        );
        assert!(
            link.tick(t0 + s(21), Phase::Ready, None, 25, 12, None).is_empty(),
            "the new consumer gets its own time"
        );
    }

    #[test]
    fn the_stall_time_is_at_least_five_seconds_whatever_the_error_timeout() {
        let mut link = Link::new(Duration::from_millis(500));
        link.connected();
        let t0 = Instant::now();
        link.tick(t0, Phase::Ready, None, 20, 10, None);
        assert!(link.tick(t0 + s(4), Phase::Ready, None, 20, 10, None).is_empty());
        assert_eq!(kinds(&link.tick(t0 + s(5), Phase::Ready, None, 20, 10, None)), ["consumer_stalled", "replace"]);
    }

    /// Caught up, in trouble, probing or not ready: not a stall (those have their own path).
    #[test]
    fn no_stall_while_caught_up_failing_probing_or_not_ready() {
        let (mut link, t0) = link();
        for at in 0..30 {
            assert!(link.tick(t0 + s(at), Phase::Ready, None, 10, 10, None).is_empty(), "caught up");
        }
        for at in 30..60 {
            assert!(link.tick(t0 + s(at), Phase::Starting, None, 20, 10, None).is_empty(), "not ready");
        }
        link.consumer_error(t0 + s(60), "down", false, 0, true);
        for at in 60..70 {
            assert!(link.tick(t0 + s(at), Phase::Ready, None, 20, 10, None).is_empty(), "in trouble, not yet errored");
        }
        assert_eq!(kinds(&link.tick(t0 + s(70), Phase::Ready, None, 20, 10, None)), ["errored", "probe"]);
        for at in 71..90 {
            assert!(link.tick(t0 + s(at), Phase::Errored, None, 20, 10, None).is_empty(), "probing");
        }
    }

    /// The records the ledger needs are gone: errored for good, no probe, no replacement, and
    /// a probe's late answer does not make it ready.
    #[test]
    fn an_offset_out_of_range_is_fatal() {
        let (mut link, t0) = link();
        link.consumer_error(t0, "down", false, 0, true);
        let actions = link.consumer_error(t0 + s(1), "Broker: Offset out of range", true, 42, true);
        assert_eq!(
            actions,
            vec![
                Action::CountError("offset_out_of_range"),
                Action::Errored("offset 42 is out of range on the partition (retention or topic deletion?)".into()),
            ]
        );
        assert!(link.is_fatal());
        assert!(link.tick(t0 + s(60), Phase::Errored, Some("timed out".into()), 99, 41, None).is_empty());
        assert!(link.probe_answered().is_empty());
        // Only a restart of the channel (from its ledger) starts over.
        link.reset();
        assert!(!link.is_fatal() && !link.is_connected());
    }

    /// A probe that started before the channel went fatal answers after: still nothing.
    #[test]
    fn a_probe_answering_after_the_channel_went_fatal_changes_nothing() {
        let (mut link, t0) = link();
        assert_eq!(kinds(&link.tick(t0, Phase::Ready, Some("timed out".into()), 3, 3, None)), ["errored", "probe"]);
        link.consumer_error(t0 + s(1), "gone", true, 4, true);
        assert!(link.probe_answered().is_empty());
        assert!(!link.is_probing());
    }
}
