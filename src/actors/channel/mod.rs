//! The ChannelActor: one per channel. It owns the channel's producer handle, its consumer stream,
//! its ordering [`Chain`] (cutter + block builder) and its ledger, and is a thin shell over them:
//! Kafka records in → `Chain::consume` → blocks appended to the ledger (the commit point) →
//! height watch. It also relays broadcasts into the partition and proposes time-to-cut.
//!
//! - [`messages`]: what front ends send it (broadcast batches, config records), with their
//!   mailbox slots, refusals and acknowledgements;
//! - [`status`]: what HTTP reads of a channel without a mailbox hop (phase, access, backlog,
//!   config outcomes);
//! - [`panic`]: how a panic that drops the actor reaches the supervisor.

mod messages;
mod panic;
mod status;

use messages::Acks;
pub use messages::{BroadcastBatch, BroadcastError, EnqueueConfig, Enqueued, MailboxSlot, Taken};
pub use panic::{capture_panics, OnPanic};
pub use status::{ChannelStatus, Phase};

use panic::PanicWatch;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use futures_util::StreamExt as _;
use prost::Message as _;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tracing::Instrument as _;

use crate::config::ChannelSettings;
use crate::core::block::{header_hash, hex};
use crate::core::chain::{Applied, Chain, InForce, Outcome, Resubmit, Skip, SystemState};
use crate::core::link::{Action, Link};
use crate::core::ttc::TtcTimer;
use crate::identity::SigningIdentity;
use crate::kafka::{self, Record};
use crate::ledger::{created_channels, Ledger, LedgerError, WriteFailure, WriteJob, Written};
use crate::metrics::{metrics, secs};
use crate::proto::{kafka_message, kafka_message_regular::Class, Block, KafkaMessage};

pub struct ChannelActor {
    name: String,
    settings: ChannelSettings,
    kafka: kafka::Clients,
    ledger: Arc<Ledger>,
    status: Arc<ChannelStatus>,
    /// This OSN's identity: it signs every block before the ledger write.
    signer: Arc<SigningIdentity>,
    /// How far (seconds) a request's timestamp may be from this OSN's clock.
    time_window: i64,
    /// An application channel, or the system channel with what starts the channels it creates.
    role: Role,
    chain: Option<Chain>,
    timer: TtcTimer,
    timer_handle: Option<SpawnHandle>,
    /// Header hash of the channel's genesis block, sent in CONNECT.
    genesis_hash: Bytes,
    /// Every log line of the actor is inside this span, which carries `channel`.
    span: tracing::Span,
    /// Since when a batch is pending (blockcutter_block_fill_duration).
    pending_since: Option<Instant>,
    /// The link to Kafka: connected, trouble, probe, stall, fatal (`core::link`).
    link: Link,
    /// The consumer stream, while one runs.
    consumer: Option<SpawnHandle>,
    /// The offset after the last record handled (what a new consumer starts at).
    next_offset: Option<i64>,
    /// The next look at Kafka's health (`check_kafka`) and when it is due.
    next_check: Option<(SpawnHandle, Instant)>,
    /// Re-submissions decided while replaying the partition (before it caught up with the end
    /// measured when it connected), by the offset of the record they copy: dropped when a copy
    /// of that record (or of a later one) is consumed, produced in order once caught up.
    deferred: std::collections::BTreeMap<i64, KafkaMessage>,
    /// Since when the ledger cannot write (a full disk): the channel consumes nothing until it
    /// can, then resumes from the ledger ([`Self::storage_failed`]).
    storage_trouble: Option<Instant>,
    /// The ledger's write generation the blocks this actor cuts build on ([`Ledger::settle`]);
    /// 0 while none does (after a failed write, until the chain is rebuilt from the ledger).
    generation: u64,
    /// Config outcomes waiting for their block to be durable, by the height that makes it so:
    /// published (and so answered to the REST client waiting for them) only then.
    awaiting: std::collections::VecDeque<(u64, Outcome)>,
    /// Reports a panic in the actor's handling when the panic drops the actor.
    _panic_watch: PanicWatch,
}

/// How often a channel looks at Kafka's health while anything of its own is in flight or the
/// link is in trouble (`ChannelActor::check_kafka`).
pub const KAFKA_CHECK: Duration = Duration::from_millis(500);
/// How often it looks while the link is quiet (`core::link::Link::quiet`): an idle channel. Its
/// own writes and consumer errors bring the next look within [`KAFKA_CHECK`].
pub const KAFKA_CHECK_QUIET: Duration = Duration::from_secs(5);
/// How often a channel whose ledger cannot write tries again (a probe write, then a reopen of
/// the database shared by every channel; see `ledger::rocks`).
pub const STORAGE_RETRY: Duration = Duration::from_secs(1);

/// The system channel's power over other channels: starting the ones it creates. The supervisor's
/// `Starter` implements it, so this module does not depend on the supervisor.
pub trait ChannelCreator: Send + Sync {
    /// Starts a channel the system channel created, from its genesis CONFIG envelope (writing its
    /// genesis block if its ledger is new); false if it runs already.
    fn create(&self, name: &str, genesis_envelope: Bytes) -> anyhow::Result<bool>;
}

/// What a channel is: an application channel, or the system channel, which creates channels.
#[derive(Clone)]
pub enum Role {
    Application,
    System(Arc<dyn ChannelCreator>),
}

impl Role {
    pub fn is_system(&self) -> bool {
        matches!(self, Role::System(_))
    }
}

impl ChannelActor {
    // Each is a different thing the actor owns or shares; a struct around them would only move the list.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: ChannelSettings,
        kafka: kafka::Clients,
        ledger: Arc<Ledger>,
        status: Arc<ChannelStatus>,
        signer: Arc<SigningIdentity>,
        time_window: i64,
        role: Role,
        on_panic: OnPanic,
    ) -> Self {
        let error_timeout = kafka.config.error_timeout;
        ChannelActor {
            span: tracing::info_span!("channel", channel = %settings.name),
            genesis_hash: genesis_hash(&ledger),
            name: settings.name.clone(),
            timer: TtcTimer::new(ledger.config().values.batch_timeout),
            time_window,
            role,
            settings,
            kafka,
            ledger,
            status,
            signer,
            chain: None,
            timer_handle: None,
            pending_since: None,
            link: Link::new(error_timeout),
            consumer: None,
            next_offset: None,
            next_check: None,
            deferred: Default::default(),
            storage_trouble: None,
            generation: 0,
            awaiting: Default::default(),
            _panic_watch: PanicWatch(on_panic),
        }
    }

    /// Back-off before (re)connecting: none at first start, then growing with restarts.
    fn backoff(&self) -> Duration {
        let restarts = self.status.restarts.load(Ordering::Relaxed);
        if restarts == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(250u64 << restarts.min(5)).min(Duration::from_secs(10))
        }
    }

    /// Rebuilds the ordering state from the ledger and starts the connect sequence: CONNECT at
    /// the first start; after a restart only the topic check, so that a channel restarting in a
    /// loop (a ledger it cannot read, a consumer it cannot create) writes nothing into Kafka.
    fn start_up(&mut self, ctx: &mut Context<Self>) {
        if !self.rebuild(ctx) {
            return;
        }
        self.status.set(Phase::Starting, "connecting to Kafka");
        let kafka = self.kafka.clone();
        let topic = self.name.clone();
        let backoff = self.backoff();
        let first = self.status.restarts.load(Ordering::Relaxed) == 0;
        let connect = first.then(|| KafkaMessage::connect(self.genesis_hash.clone()).encode_to_vec());
        let status = self.status.clone();
        ctx.spawn(
            async move {
                tokio::time::sleep(backoff).await;
                // A topic created since the hub looked (by CONNECT or CreateTopics) is learnt
                // again, so its leader is known before the partition is assigned.
                if !reach_kafka(&kafka, &topic, connect.as_deref(), &status, true).await {
                    if let Err(e) = kafka.hub.learn(&topic).await {
                        tracing::debug!(channel = %topic, error = %e, "metadata request failed");
                    }
                }
            }
            .instrument(self.span.clone())
            .into_actor(self)
            .map(|(), act, ctx| act.connected(ctx)),
        );
    }

    /// The ordering state (chain, configuration in force, batch timeout) from the ledger, and
    /// the metrics that show it; false if the ledger cannot give it (the channel is then errored,
    /// or stopping to restart).
    fn rebuild(&mut self, ctx: &mut Context<Self>) -> bool {
        // Blocks still with the ledger's writer are written (or dropped) before the tip is read;
        // the chain rebuilt from it cuts the same blocks again from the same records.
        self.generation = self.ledger.settle();
        self.awaiting.clear();
        self.status.metrics.commits_pending.set(0);
        let tip = self.ledger.tip();
        let config = self.ledger.config();
        let in_force = InForce::new(config.clone(), self.time_window);
        let system = match self.role.is_system().then(|| created_channels(&self.ledger)).transpose() {
            Ok(created) => created.map(|c| SystemState { channels: c.into_iter().map(|(name, _)| name).collect() }),
            Err(e) => {
                self.stop_with(ctx, format!("cannot read the system channel's ledger: {e}"));
                return false;
            }
        };
        self.status.set_access_arc(in_force.access.clone());
        let m = metrics();
        m.channel_config_sequence.with_label_values(&[&self.name]).set(config.values.sequence as i64);
        m.ledger_blockchain_height.with_label_values(&[&self.name]).set(self.ledger.height() as i64);
        m.consensus_kafka_last_offset_persisted.with_label_values(&[&self.name]).set(tip.kafka.last_offset_persisted);
        self.pending_since = None;
        self.link.reset();
        let chain = Chain::new(&self.name, tip, in_force, self.time_window, system);
        self.status.reprocessing.store(chain.reprocessing(), Ordering::Relaxed);
        self.chain = Some(chain);
        self.timer = TtcTimer::new(config.values.batch_timeout);
        if let Some(timer) = self.timer_handle.take() {
            ctx.cancel_future(timer);
        }
        true
    }

    /// The ledger could not write a block (a full disk, an I/O error): the channel stops
    /// consuming, says so (ERRORED with the storage error: broadcasts get 503 naming it), drops
    /// the ordering state that went past the ledger, and tries again every [`STORAGE_RETRY`]
    /// until the storage can write; it then resumes from the ledger without a restart and
    /// without writing to Kafka (the link is fine). Nothing acknowledged is lost: the records
    /// stay in the partition and are consumed again.
    fn storage_failed(&mut self, ctx: &mut Context<Self>, reason: String) {
        if let Some(consumer) = self.consumer.take() {
            ctx.cancel_future(consumer);
        }
        if let Some(timer) = self.timer_handle.take() {
            ctx.cancel_future(timer);
        }
        self.chain = None;
        self.pending_since = None;
        self.generation = 0;
        self.awaiting.clear();
        let first = self.storage_trouble.is_none();
        let since = *self.storage_trouble.get_or_insert_with(Instant::now);
        // Loud once; each retry after that (every second, for as long as the disk stays full) at
        // debug level, the status and `/healthz` saying it meanwhile.
        if first {
            tracing::error!(channel = %self.name, %reason, "the ledger cannot write: the channel waits for storage");
        } else {
            tracing::debug!(channel = %self.name, %reason, failing_for = ?since.elapsed(), "the ledger cannot write: the channel waits for storage");
        }
        self.status.set(Phase::Errored, format!("ledger storage failed, retrying every {STORAGE_RETRY:?}: {reason}"));
        ctx.run_later(STORAGE_RETRY, |act, ctx| act.retry_storage(ctx));
    }

    /// Tries to make the ledger writable again (off the actor's thread: it does I/O).
    fn retry_storage(&mut self, ctx: &mut Context<Self>) {
        let ledger = self.ledger.clone();
        ctx.spawn(
            async move {
                tokio::task::spawn_blocking(move || ledger.recover())
                    .await
                    .unwrap_or_else(|e| Err(LedgerError::Storage { channel: "*".into(), message: e.to_string() }))
            }
            .into_actor(self)
            .map(|recovered, act, ctx| {
                let _span = act.span.clone().entered();
                match recovered {
                    Ok(height) => {
                        let since = act.storage_trouble.take().unwrap_or_else(Instant::now);
                        tracing::info!(channel = %act.name, height, after = ?since.elapsed(), "the ledger can write again: resuming from it");
                        if act.rebuild(ctx) {
                            act.connected(ctx);
                        }
                    }
                    Err(e) => act.storage_failed(ctx, e.to_string()),
                }
            }),
        );
    }

    /// Carries out what the link to Kafka decided (`core::link`).
    fn act(&mut self, ctx: &mut Context<Self>, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Errored(reason) => {
                    tracing::error!(channel = %self.name, %reason, "Kafka trouble: the channel is errored");
                    self.status.set(Phase::Errored, reason);
                }
                Action::Ready => {
                    tracing::info!(channel = %self.name, "Kafka answers again: the channel is ready");
                    self.status.set(Phase::Ready, "");
                }
                Action::StartProbe => self.probe(ctx),
                Action::ReplaceConsumer(why) => self.replace_consumer(ctx, &why),
                Action::CountError(operation) => {
                    metrics().kafka_errors.with_label_values(&[&self.name, operation]).inc();
                }
            }
        }
    }

    /// Produces CONNECT records on the retry schedule until Kafka answers (the channel is
    /// errored meanwhile, so broadcasts get 503 naming Kafka and STRICT deliveries end).
    fn probe(&mut self, ctx: &mut Context<Self>) {
        let (kafka, topic, status) = (self.kafka.clone(), self.name.clone(), self.status.clone());
        let connect = KafkaMessage::connect(self.genesis_hash.clone()).encode_to_vec();
        ctx.spawn(
            async move {
                reach_kafka(&kafka, &topic, Some(&connect), &status, false).await;
            }
            .instrument(self.span.clone())
            .into_actor(self)
            .map(|(), act, ctx| {
                let actions = act.link.probe_answered();
                act.act(ctx, actions);
            }),
        );
    }

    /// Looks at Kafka's health as this channel sees it: records Kafka did not acknowledge, a
    /// consumer failing past `kafka.error-timeout`, a consumer stalled behind records the
    /// partition holds (`core::link`). Every [`KAFKA_CHECK`] while anything is in flight or wrong;
    /// every [`KAFKA_CHECK_QUIET`] while the link is quiet, so that idle channels cost next to
    /// nothing (their own writes and consumer errors bring the next look forward, [`Self::watch_kafka`]).
    fn check_kafka(&mut self, ctx: &mut Context<Self>) {
        let _span = self.span.clone().entered();
        self.next_check = None;
        if !self.link.is_connected() || self.link.is_fatal() || self.storage_trouble.is_some() {
            self.schedule_check(ctx, KAFKA_CHECK);
            return;
        }
        self.flush_deferred(ctx);
        let failure = self.status.take_produce_failure();
        let (written, consumed) = self.status.offsets();
        let connected_at = self.kafka.hub.connected_at(&self.name);
        let actions = self.link.tick(Instant::now(), self.status.phase().0, failure, written, consumed, connected_at);
        self.act(ctx, actions);
        let (written, consumed) = self.status.offsets();
        let quiet = self.link.quiet(written, consumed);
        self.schedule_check(ctx, if quiet { KAFKA_CHECK_QUIET } else { KAFKA_CHECK });
    }

    /// Brings the next look at Kafka's health within [`KAFKA_CHECK`]: something was written or
    /// went wrong.
    fn watch_kafka(&mut self, ctx: &mut Context<Self>) {
        self.schedule_check(ctx, KAFKA_CHECK);
    }

    /// Makes the next look at Kafka's health due in `delay`, unless one is due sooner.
    fn schedule_check(&mut self, ctx: &mut Context<Self>, delay: Duration) {
        let due = Instant::now() + delay;
        if let Some((handle, at)) = self.next_check {
            if at <= due {
                return;
            }
            ctx.cancel_future(handle);
        }
        let handle = ctx.run_later(delay, |act, ctx| act.check_kafka(ctx));
        self.next_check = Some((handle, due));
    }

    /// The partition accepted our CONNECT: start consuming where the ledger ends.
    fn connected(&mut self, ctx: &mut Context<Self>) {
        self.link.connected();
        let Some(chain) = self.chain.as_ref() else { return };
        let from = chain.resume_offset();
        if self.start_consumer(ctx, from, false) {
            tracing::info!(channel = %self.name, from_offset = from, height = self.ledger.height(), "consuming");
            self.status.set(Phase::Ready, "");
            self.measure_replay_end(ctx, from);
        }
    }

    /// Measures how far the channel's partition reached as it connected (the high watermark,
    /// asked with the hub's consumer), retrying every second until Kafka answers. Until the
    /// channel has consumed that far it is replaying: its re-submissions wait (see `deferred`),
    /// and for the system channel, the OSN is not ready (so that every channel created before it
    /// started is known and serving).
    fn measure_replay_end(&mut self, ctx: &mut Context<Self>, from: i64) {
        self.status.set_replay_end(status::NOT_MEASURED);
        let hub = self.kafka.hub.clone();
        let topic = self.name.clone();
        let status = self.status.clone();
        ctx.spawn(
            async move {
                loop {
                    match hub.high_watermark(&topic).await {
                        Ok(high) => {
                            let end = if high > from { high - 1 } else { -1 };
                            tracing::debug!(from_offset = from, last_offset = end, "replaying up to here");
                            status.set_replay_end(end);
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot measure the end of the partition; retrying"),
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            .instrument(self.span.clone())
            .into_actor(self),
        );
    }

    /// Opens the partition's stream at `from` (on a new consumer if `replacing`); false if it
    /// cannot be opened (the actor is then stopping).
    fn start_consumer(&mut self, ctx: &mut Context<Self>, from: i64, replacing: bool) -> bool {
        let opened = if replacing {
            self.kafka.hub.replace(&self.name, from).map(|s| s.ready_chunks(RECORDS_PER_MESSAGE).boxed_local())
        } else {
            self.kafka.hub.stream(&self.name, from).map(|s| s.ready_chunks(RECORDS_PER_MESSAGE).boxed_local())
        };
        match opened {
            Ok(stream) => {
                self.consumer = Some(ctx.add_stream(stream));
                true
            }
            Err(e) => {
                self.stop_with(ctx, format!("cannot create the consumer: {e}"));
                false
            }
        }
    }

    /// Drops the stream and opens one on a new consumer right after the last record handled:
    /// nothing is skipped or read twice, and the pending batch is kept.
    fn replace_consumer(&mut self, ctx: &mut Context<Self>, why: &str) {
        let Some(chain) = self.chain.as_ref() else { return };
        let from = self.next_offset.unwrap_or_else(|| chain.resume_offset());
        if let Some(old) = self.consumer.take() {
            ctx.cancel_future(old);
        }
        if self.start_consumer(ctx, from, true) {
            tracing::warn!(channel = %self.name, from_offset = from, reason = why, "consumer replaced");
        }
    }

    fn stop_with(&mut self, ctx: &mut Context<Self>, reason: String) {
        tracing::error!(channel = %self.name, %reason, "channel actor failing; it will restart from its ledger");
        self.status.set(Phase::Errored, reason);
        ctx.stop();
    }

    /// Re-schedules the time-to-cut wake-up after the timer's deadline changed.
    fn arm_timer(&mut self, ctx: &mut Context<Self>, before: Option<Instant>) {
        let deadline = self.timer.deadline();
        if deadline == before && (deadline.is_none() || self.timer_handle.is_some()) {
            return;
        }
        if let Some(h) = self.timer_handle.take() {
            ctx.cancel_future(h);
        }
        if let Some(deadline) = deadline {
            let wait = deadline.saturating_duration_since(Instant::now());
            self.timer_handle = Some(ctx.run_later(wait, |act, ctx| {
                act.timer_handle = None;
                let _span = act.span.clone().entered();
                let started = Instant::now();
                let before = act.timer.deadline();
                if act.timer.fire(Instant::now()) {
                    act.send_time_to_cut(ctx);
                }
                act.arm_timer(ctx, before);
                act.handled("ttc_timer", started);
            }));
        }
    }

    /// Posts `TimeToCut{next block}` to the partition (fire and forget: a lost TTC is re-sent
    /// when the timer fires again; a duplicate one is ignored by every OSN).
    fn send_time_to_cut(&mut self, ctx: &mut Context<Self>) {
        let Some(next) = self.chain.as_ref().map(|chain| chain.next_number()) else { return };
        self.watch_kafka(ctx);
        let value = KafkaMessage::time_to_cut(next).encode_to_vec();
        metrics().channel_time_to_cut.with_label_values(&[&self.name, "sent"]).inc();
        let producer = self.kafka.producer.clone();
        let topic = self.name.clone();
        let status = self.status.clone();
        ctx.spawn(
            async move {
                match kafka::produce(&producer, &topic, &value).await {
                    Ok(offset) => {
                        status.note_written(offset);
                        tracing::debug!(channel = %topic, block = next, offset, "time-to-cut posted")
                    }
                    Err(e) => tracing::warn!(channel = %topic, block = next, error = %e, "time-to-cut not posted"),
                }
            }
            .into_actor(self),
        );
    }
}

/// Produces CONNECT records on the retry schedule until Kafka acknowledges one (without
/// `connect`, after a restart: until the topic check succeeds). At start-up it also sets the
/// topic up, and reports the channel STARTING, then ERRORED once the trouble lasts past
/// `kafka.error-timeout`. Never gives up: past the schedule's long total it says so and goes
/// on at the long interval. True if the topic was there before the hub asked for it (at start-up:
/// the hub knows it), false if it may have been created since.
async fn reach_kafka(
    clients: &kafka::Clients,
    topic: &str,
    connect: Option<&[u8]>,
    status: &ChannelStatus,
    starting: bool,
) -> bool {
    let (cfg, producer) = (&clients.config, &clients.producer);
    let schedule: crate::core::retry::RetrySchedule = cfg.retry.into();
    let began = Instant::now();
    let mut attempt = 0u32;
    loop {
        let result = async {
            let existed = if starting {
                kafka::ensure_topic(cfg, topic, Some(&clients.hub)).await.map_err(|e| e.to_string())?
            } else {
                true
            };
            let Some(connect) = connect else { return Ok((None, existed)) };
            tokio::time::timeout(cfg.connect_timeout, kafka::produce(producer, topic, connect))
                .await
                .map_err(|_| format!("no acknowledgement of CONNECT within {:?}", cfg.connect_timeout))?
                .map_err(|e| format!("CONNECT not acknowledged: {e}"))
                .map(|offset| (Some(offset), existed))
        }
        .await;
        let reason = match result {
            Ok((Some(offset), existed)) => {
                tracing::info!(channel = %topic, offset, attempts = attempt + 1, "connected to Kafka");
                return existed;
            }
            Ok((None, existed)) => {
                tracing::info!(channel = %topic, attempts = attempt + 1, "the partition is there (restart: no CONNECT)");
                return existed;
            }
            Err(reason) => reason,
        };
        attempt += 1;
        metrics().kafka_errors.with_label_values(&[topic, "connect"]).inc();
        let elapsed = began.elapsed();
        let delay = schedule.delay(elapsed);
        if schedule.exhausted(elapsed) {
            tracing::error!(channel = %topic, attempt, %reason, elapsed = ?elapsed, "Kafka has been unreachable past kafka.retry.long-total; still retrying");
        } else {
            tracing::warn!(channel = %topic, attempt, %reason, retry_in = ?delay, "cannot reach the channel's partition; retrying");
        }
        if starting {
            let phase = if elapsed >= cfg.error_timeout { Phase::Errored } else { Phase::Starting };
            status.set(phase, format!("Kafka unreachable, retrying every {delay:?}: {reason}"));
        }
        tokio::time::sleep(delay).await;
    }
}

/// The header hash of the ledger's genesis block (empty if it cannot be read; the ledger was
/// opened, so it can).
fn genesis_hash(ledger: &Ledger) -> Bytes {
    match ledger.block(0) {
        Ok(Some(genesis)) => genesis.header.as_ref().map(|h| Bytes::from(header_hash(h))).unwrap_or_default(),
        _ => Bytes::new(),
    }
}

impl Actor for ChannelActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let _span = self.span.clone().entered();
        ctx.set_mailbox_capacity(self.settings.mailbox_capacity);
        self.schedule_check(ctx, KAFKA_CHECK);
        metrics().channel_mailbox_capacity.with_label_values(&[&self.name]).set(self.settings.mailbox_capacity as i64);
        self.start_up(ctx);
    }
}

impl Supervised for ChannelActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        let n = self.status.note_restart();
        tracing::warn!(channel = %self.name, restarts = n, "restarting channel actor");
    }
}

/// Records come in runs: whatever the consumer has ready, up to this many, is one message to
/// the actor (its span, clock readings and metrics once per run, not per record).
const RECORDS_PER_MESSAGE: usize = 64;

impl StreamHandler<Vec<Result<Record, KafkaError>>> for ChannelActor {
    fn handle(&mut self, items: Vec<Result<Record, KafkaError>>, ctx: &mut Context<Self>) {
        let _span = self.span.clone().entered();
        let started = Instant::now();
        let stream = self.consumer;
        let mut handled = 0;
        for item in items {
            self.consume(item, ctx);
            handled += 1;
            // A record may replace the consumer or stop the actor: the rest of the run is the
            // old stream's, and is dropped as an unread stream's records are.
            if self.consumer != stream || ctx.state() != ActorState::Running {
                break;
            }
        }
        self.status.wake_waiting_senders();
        let m = &self.status.metrics;
        m.handled_record.inc_by(handled);
        m.handler_record.observe(secs(started.elapsed()));
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.stop_with(ctx, "the consumer stream ended".into());
    }
}

impl ChannelActor {
    /// Counts a handled message and its handling time.
    fn handled(&self, kind: &str, started: Instant) {
        let m = metrics();
        m.channel_messages_handled.with_label_values(&[&self.name, kind]).inc();
        m.channel_handler_duration.with_label_values(&[&self.name, kind]).observe(secs(started.elapsed()));
    }

    /// One consumed record (or consumer error): chain, create, commit, apply, re-submit.
    fn consume(&mut self, item: Result<Record, KafkaError>, ctx: &mut Context<Self>) {
        crate::faults::crash_point("channel.consume");
        let record = match item {
            Ok(r) => r,
            Err(e) => {
                // With auto.offset.reset=error, librdkafka reports a fetch beyond the partition's
                // range as AutoOffsetReset; some paths report OffsetOutOfRange itself.
                let out_of_range = matches!(
                    e,
                    KafkaError::MessageConsumption(
                        RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset
                    ) | KafkaError::MessageConsumptionFatal(
                        RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset
                    )
                );
                let resume = self.chain.as_ref().map(|c| c.resume_offset()).unwrap_or(-1);
                if out_of_range {
                    // The data we need is gone from the partition (retention, deleted topic). Never
                    // skip ahead silently: stay errored and say so loudly.
                    tracing::error!(channel = %self.name, resume_offset = resume, "offset out of range: the partition no longer holds the records this ledger needs");
                } else {
                    tracing::warn!(channel = %self.name, error = %e, "consumer error");
                }
                let connection = kafka::is_connection_error(&e);
                let actions =
                    self.link.consumer_error(Instant::now(), &e.to_string(), out_of_range, resume, connection);
                self.act(ctx, actions);
                self.watch_kafka(ctx);
                return;
            }
        };
        let Some(chain) = self.chain.as_mut() else { return };
        self.link.record();
        self.next_offset = Some(record.offset + 1);
        self.status.note_consumed(record.offset, record.value.len());
        let out = chain.consume_bytes(record.offset, record.value);
        let pending = chain.has_pending();
        self.status.reprocessing.store(chain.reprocessing(), Ordering::Relaxed);
        let cut = !out.blocks.is_empty();
        self.observe_consumed(&out, pending);
        // A created channel exists before the system channel's block that records it.
        if let (
            Some(Outcome { result: Ok(Applied::Created { channel, genesis_envelope }), .. }),
            Role::System(creator),
        ) = (&out.outcome, &self.role)
        {
            match creator.create(channel, genesis_envelope.clone()) {
                Ok(started) => {
                    tracing::info!(channel = %channel, started, offset = record.offset, "channel created through the system channel");
                    crate::faults::crash_point("system.after-create");
                }
                Err(e) if e.downcast_ref::<LedgerError>().is_some_and(LedgerError::is_storage) => {
                    return self.storage_failed(ctx, format!("cannot create channel '{channel}': {e:#}"))
                }
                Err(e) => return self.stop_with(ctx, format!("cannot create channel '{channel}': {e:#}")),
            }
        }
        let m = metrics();
        let resubmitted_config_offset = self.chain.as_ref().map(Chain::last_resubmitted_config_offset);
        let mut blocks = Vec::with_capacity(out.blocks.len());
        for mut block in out.blocks {
            // Only the SIGNATURES slot's signatures differ between OSNs.
            self.signer.sign_block(&mut block);
            blocks.push((block, resubmitted_config_offset));
        }
        // The height at which everything this record made is durable.
        let durable_at = self.chain.as_ref().map_or(0, Chain::next_number);
        if cut {
            self.write(ctx, blocks, record.offset);
            crate::faults::crash_point("channel.commit-queued");
        }
        if let Some(outcome) = out.outcome {
            match &outcome.result {
                Ok(Applied::Config(config)) => {
                    if let Some(chain) = self.chain.as_ref() {
                        self.status.set_access_arc(chain.in_force().access.clone());
                    }
                    self.timer.set_timeout(config.values.batch_timeout);
                    m.channel_config_sequence.with_label_values(&[&self.name]).set(config.values.sequence as i64);
                    tracing::info!(channel = %self.name, sequence = config.values.sequence, block = durable_at.saturating_sub(1), "configuration updated");
                }
                Ok(Applied::Created { .. }) => {}
                Err(reason) => {
                    tracing::warn!(channel = %self.name, offset = record.offset, %reason, "config update refused")
                }
            }
            self.awaiting.push_back((durable_at, outcome));
            self.publish_durable(self.ledger.height());
        }
        if let Some(copied) = out.copy_of {
            self.copy_consumed(copied);
        }
        if let Some(resubmit) = out.resubmit {
            self.resubmit(ctx, resubmit);
        } else {
            self.flush_deferred(ctx);
        }
        match out.skip {
            Some(Skip::Connect(ref theirs)) if !theirs.is_empty() && *theirs != self.genesis_hash => tracing::error!(
                channel = %self.name,
                offset = record.offset,
                theirs = %hex(theirs),
                ours = %hex(&self.genesis_hash),
                "an OSN on this channel has a different genesis block (its batch-size configuration differs): its chain will differ from ours"
            ),
            Some(Skip::Pending) | Some(Skip::Connect(_)) | None => {}
            Some(Skip::Resubmitted { config_seq }) => {
                tracing::info!(channel = %self.name, offset = record.offset, config_seq, "re-submitted a record enqueued under an older configuration")
            }
            Some(Skip::StaleTtc { .. }) => {
                tracing::debug!(channel = %self.name, offset = record.offset, skip = ?out.skip, "ignored stale time-to-cut")
            }
            Some(skip) => tracing::warn!(channel = %self.name, offset = record.offset, ?skip, "record ignored"),
        }
        let before = self.timer.deadline();
        self.timer.on_consumed(Instant::now(), cut, pending);
        self.arm_timer(ctx, before);
    }

    /// The metrics of one consumed record: blocks cut and why, time-to-cut outcomes, skips,
    /// re-submissions, and how long the batch was pending.
    fn observe_consumed(&mut self, out: &crate::core::chain::Consumed, pending: bool) {
        let m = metrics();
        let name = self.name.as_str();
        let cm = &self.status.metrics;
        for reason in &out.reasons {
            cm.blocks_cut[reason.index()].inc();
        }
        let envelopes: usize = out.blocks.iter().map(|b| b.data.as_ref().map_or(0, |d| d.data.len())).sum();
        cm.transactions_ordered.inc_by(envelopes as u64);
        if out.reasons.contains(&crate::core::cutter::CutReason::TimeToCut) {
            cm.ttc_won.inc();
        }
        let skip = match &out.skip {
            Some(Skip::StaleTtc { .. }) => Some(("ttc", "stale")),
            Some(Skip::FutureTtc { .. }) => Some(("ttc", "future")),
            Some(Skip::EmptyTtc { .. }) => Some(("ttc", "empty")),
            Some(Skip::AlreadyProcessed { .. }) => Some(("skip", "already_processed")),
            Some(Skip::ForgedOriginalOffset { .. }) => Some(("skip", "forged_original_offset")),
            Some(Skip::Undecodable(_)) => Some(("skip", "undecodable")),
            Some(Skip::Rejected(_)) => Some(("skip", "rejected")),
            Some(Skip::Resubmitted { .. }) | Some(Skip::Pending) | Some(Skip::Connect(_)) | None => None,
        };
        match skip {
            Some(("ttc", event)) => m.channel_time_to_cut.with_label_values(&[name, event]).inc(),
            Some((_, reason)) => m.channel_records_skipped.with_label_values(&[name, reason]).inc(),
            None => {}
        }
        if out.duplicate {
            m.channel_duplicates.with_label_values(&[name]).inc();
            tracing::warn!(channel = %name, "an envelope was ordered a second time from a re-submitted copy (Fabric 1.4's double re-submission, kept so that blocks stay Fabric's)");
        }
        match &out.resubmit {
            Some(Resubmit::Normal(_)) => m.channel_resubmitted.with_label_values(&[name, "normal"]).inc(),
            Some(Resubmit::Config { .. }) => m.channel_resubmitted.with_label_values(&[name, "config"]).inc(),
            None => {}
        }
        let now = Instant::now();
        if !out.blocks.is_empty() {
            if let Some(since) = self.pending_since.take() {
                cm.block_fill.observe(secs(now - since));
            }
        }
        if pending && self.pending_since.is_none() {
            self.pending_since = Some(now);
        }
    }
}

/// What the ledger's writer reports of a [`WriteJob`], on the actor's mailbox.
#[derive(Message)]
#[rtype(result = "()")]
struct Committed {
    written: Written,
    /// The last block's number and the Kafka offset its metadata persists.
    last: (u64, i64),
    /// The record the blocks were cut from.
    offset: i64,
}

impl ChannelActor {
    /// Hands the blocks cut from the record at `offset` to the ledger's writer: the actor goes
    /// on consuming while they are made durable, and hears back with [`Committed`]. Subscribers
    /// see a block, and a restart resumes after its records, only once it is durable.
    fn write(&mut self, ctx: &mut Context<Self>, blocks: Vec<(Block, Option<i64>)>, offset: i64) {
        let Some((last, _)) = blocks.last() else { return };
        let number = last.header.as_ref().map_or(0, |h| h.number);
        let persisted = crate::core::block::kafka_metadata(last).map_or(-1, |k| k.last_offset_persisted);
        let addr = ctx.address();
        self.status.metrics.commits_pending.inc();
        self.ledger.submit(WriteJob {
            generation: self.generation,
            blocks,
            done: Box::new(move |written| addr.do_send(Committed { written, last: (number, persisted), offset })),
        });
    }

    /// Publishes the config outcomes whose blocks are durable at `height`.
    fn publish_durable(&mut self, height: u64) {
        while self.awaiting.front().is_some_and(|(at, _)| *at <= height) {
            if let Some((_, outcome)) = self.awaiting.pop_front() {
                self.status.record_outcome(outcome);
            }
        }
    }
}

impl Handler<Committed> for ChannelActor {
    type Result = ();

    fn handle(&mut self, msg: Committed, ctx: &mut Context<Self>) {
        let _span = self.span.clone().entered();
        let cm = &self.status.metrics;
        if msg.written.generation != self.generation {
            return; // Written for a chain this actor has since rebuilt from the ledger.
        }
        cm.commits_pending.dec();
        match msg.written.result {
            Ok(()) => {
                if let Some(took) = msg.written.took {
                    cm.commit_time.observe(secs(took));
                }
                cm.height.set(msg.written.height as i64);
                cm.last_offset_persisted.set(msg.last.1);
                tracing::debug!(channel = %self.name, block = msg.last.0, offset = msg.offset, "committed");
                crate::faults::crash_point("channel.after-commit");
                self.publish_durable(msg.written.height);
            }
            // One failed write reports each of its jobs: the first one is acted on, the others
            // find the generation over.
            Err(WriteFailure::Ledger(e)) if e.is_storage() => self.storage_failed(ctx, e.to_string()),
            Err(WriteFailure::Ledger(e)) => {
                self.generation = 0;
                self.stop_with(ctx, e.to_string())
            }
            // The write's panic is the actor's: the supervisor restarts it from its ledger.
            Err(WriteFailure::Panic(message)) => panic!("the ledger write panicked: {message}"),
        }
    }
}

impl ChannelActor {
    /// Puts a record back into the partition (fire and forget, as Fabric: every OSN re-submits
    /// it, and the first copy consumed wins).
    fn resubmit(&mut self, ctx: &mut Context<Self>, resubmit: Resubmit) {
        let message = match resubmit {
            Resubmit::Normal(message) => message,
            Resubmit::Config { derived, config_seq, original_offset } => {
                // The record goes back into this channel's own partition (a creation: the system channel's).
                let record = crate::identity::envelope::config_record(&self.signer, &derived, &self.name);
                let mut message = KafkaMessage::regular(record, config_seq, Class::Config);
                if let Some(kafka_message::Type::Regular(r)) = message.r#type.as_mut() {
                    r.original_offset = original_offset;
                }
                message
            }
        };
        let copied = match &message.r#type {
            Some(kafka_message::Type::Regular(r)) => r.original_offset,
            _ => 0,
        };
        if self.status.caught_up().is_err() {
            // Replaying: the OSNs that consumed this record when it was new re-submitted it, and
            // their copy is most likely further on in the partition.
            tracing::debug!(channel = %self.name, copied, "re-submission deferred while replaying");
            self.deferred.insert(copied, message);
            return;
        }
        self.flush_deferred(ctx);
        self.produce_resubmission(ctx, message);
    }

    /// Produces the deferred re-submissions, in the order of the records they copy, once the
    /// channel has caught up (their copies never came).
    fn flush_deferred(&mut self, ctx: &mut Context<Self>) {
        if self.deferred.is_empty() || self.status.caught_up().is_err() {
            return;
        }
        for (copied, message) in std::mem::take(&mut self.deferred) {
            tracing::info!(channel = %self.name, copied, "re-submitting a record no OSN re-submitted while it was new");
            self.produce_resubmission(ctx, message);
        }
    }

    /// A copy of the record at `copied` was consumed: no re-submission of it, or of an earlier
    /// record (whose copy would come first), is needed any more.
    fn copy_consumed(&mut self, copied: i64) {
        if !self.deferred.is_empty() {
            self.deferred = self.deferred.split_off(&(copied + 1));
        }
    }

    fn produce_resubmission(&mut self, ctx: &mut Context<Self>, message: KafkaMessage) {
        self.watch_kafka(ctx);
        // Handed to the producer here, in consumption order (a spawned future could run later
        // than the next one): a copy of a later record ahead of an earlier one would make every
        // OSN drop the earlier one as already processed.
        let value = message.encode_to_vec();
        let topic = self.name.clone();
        match kafka::producer::send_one(&self.kafka.producer, &topic, &value) {
            Ok(rx) => {
                ctx.spawn(
                    async move {
                        if !matches!(rx.await, Ok(Ok(_))) {
                            tracing::warn!(channel = %topic, "re-submission not acknowledged (other OSNs re-submit it too)");
                        }
                    }
                    .into_actor(self),
                );
            }
            Err(e) => {
                tracing::warn!(channel = %topic, error = %e, "re-submission not produced (other OSNs re-submit it too)")
            }
        }
    }

    /// Whether the channel takes records now: its deadline not passed, ready, not reprocessing.
    fn open_for(&self, deadline: Instant) -> Result<(), BroadcastError> {
        let channel = || self.name.clone();
        if Instant::now() > deadline {
            return Err(BroadcastError::Busy { channel: channel() });
        }
        let (phase, reason) = self.status.phase();
        if phase != Phase::Ready {
            return Err(BroadcastError::NotReady { channel: channel(), reason });
        }
        if self.status.reprocessing.load(Ordering::Relaxed) {
            return Err(BroadcastError::Reprocessing { channel: channel() });
        }
        Ok(())
    }

    /// Hands one record to the producer as record `index` of `acks` (the channel open for it:
    /// [`Self::open_for`]), encoding it in `buf`, which the producer copies from.
    fn enqueue(
        &self,
        acks: &Arc<Acks>,
        index: usize,
        envelope: Bytes,
        config_seq: u64,
        class: Class,
        buf: &mut Vec<u8>,
    ) -> Result<Enqueued, BroadcastError> {
        buf.clear();
        KafkaMessage::regular(envelope, config_seq, class).encode(buf).expect("a Vec grows as needed");
        let pending = acks.expect(index, buf.len());
        match kafka::producer::send(&self.kafka.producer, &self.name, buf, pending) {
            Ok(()) => Ok(Enqueued { acks: acks.clone(), index }),
            Err(e) => {
                acks.refused(buf.len());
                match e {
                    KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
                        Err(BroadcastError::Overloaded { channel: self.name.clone() })
                    }
                    e => Err(BroadcastError::Kafka { channel: self.name.clone(), reason: e.to_string() }),
                }
            }
        }
    }
}

impl Handler<BroadcastBatch> for ChannelActor {
    type Result = MessageResult<BroadcastBatch>;

    /// Enqueues each record in the producer, in order (the partition keeps it), and returns at
    /// once; the caller awaits the acknowledgements outside the actor, so a slow broker never
    /// blocks the mailbox.
    fn handle(&mut self, msg: BroadcastBatch, ctx: &mut Context<Self>) -> Self::Result {
        let _span = self.span.clone().entered();
        let started = Instant::now();
        let taken = self.enqueue_batch(msg);
        self.watch_kafka(ctx);
        let m = &self.status.metrics;
        m.handled_broadcast.inc();
        m.handler_broadcast.observe(secs(started.elapsed()));
        MessageResult(taken)
    }
}

impl ChannelActor {
    fn enqueue_batch(&mut self, mut msg: BroadcastBatch) -> Taken {
        // The backlog bound, checked here where enqueues are serialised: the envelopes that fit
        // are enqueued, in order, and the rest go back to the sender, which waits for room and
        // sends them again; so a large batch fills the room left instead of waiting for room for
        // all of it. When nothing is behind at all the whole batch goes, so that a batch larger
        // than the bound still goes through.
        let admitted = admitted(&msg.envelopes, self.status.lag_bytes(), self.settings.max_lag_bytes);
        let rest = msg.envelopes.split_off(admitted);
        if admitted == 0 {
            return Taken { answers: Vec::new(), rest };
        }
        // Whether the channel is open is one answer for the whole batch, which the actor handles
        // at once; each record is then encoded in one buffer the producer copies from.
        if let Err(refusal) = self.open_for(msg.deadline) {
            let answers = msg.envelopes.iter().chain(&rest).map(|_| Err(refusal.clone())).collect();
            return Taken { answers, rest: Vec::new() };
        }
        let mut buf = Vec::with_capacity(msg.envelopes.first().map_or(0, |e| e.len() + 64));
        let acks = Acks::new(&self.status, admitted);
        let answers = msg
            .envelopes
            .into_iter()
            .enumerate()
            .map(|(i, e)| self.enqueue(&acks, i, e, msg.config_seq, Class::Normal, &mut buf))
            .collect();
        acks.seal();
        Taken { answers, rest }
    }
}

/// How many of `envelopes`, from the first, fit in the backlog bound `limit` with `lag` bytes
/// behind: all of them when nothing is behind or there is no bound, else the longest prefix
/// that keeps the backlog within the bound (possibly none).
fn admitted(envelopes: &[Bytes], lag: u64, limit: u64) -> usize {
    if limit == 0 || lag == 0 {
        return envelopes.len();
    }
    let mut backlog = lag;
    envelopes
        .iter()
        .take_while(|e| {
            backlog += e.len() as u64;
            backlog <= limit
        })
        .count()
}

impl Handler<EnqueueConfig> for ChannelActor {
    type Result = Result<Enqueued, BroadcastError>;

    fn handle(&mut self, msg: EnqueueConfig, ctx: &mut Context<Self>) -> Self::Result {
        let _span = self.span.clone().entered();
        let started = Instant::now();
        let answer = self.open_for(msg.deadline).and_then(|()| {
            let acks = Acks::new(&self.status, 1);
            let answer = self.enqueue(&acks, 0, msg.record, msg.config_seq, Class::Config, &mut Vec::new());
            acks.seal();
            answer
        });
        self.watch_kafka(ctx);
        self.handled("config", started);
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_admitted_as_far_as_the_backlog_bound_allows() {
        let batch: Vec<Bytes> = (0..5).map(|_| Bytes::from(vec![0u8; 100])).collect();
        // No bound, or nothing behind: all of it (a batch larger than the bound still goes).
        assert_eq!(admitted(&batch, 5_000, 0), 5);
        assert_eq!(admitted(&batch, 0, 250), 5);
        // The longest prefix that keeps the backlog within the bound.
        assert_eq!(admitted(&batch, 1_000, 1_300), 3);
        assert_eq!(admitted(&batch, 1_000, 1_500), 5);
        assert_eq!(admitted(&batch, 1_000, 1_099), 0);
    }
}
