//! One Kafka consumer for every channel of an OSN. librdkafka fetches all assigned partitions
//! with one request per broker on its own few threads; each channel's partition has its own queue
//! (`split_partition_queue`), which wakes only its channel's stream when records arrive, so idle
//! channels cost no polling and threads do not grow with channels.
//!
//! A channel opens its stream at an explicit offset ([`Hub::stream`]): the partition is
//! (re)assigned there, and the stream delivers the partition's records in strictly increasing
//! offsets from that offset on (a record below the next expected offset, left from an earlier
//! assignment, is dropped: nothing is read twice). Opening it again, after a restart, reassigns
//! the partition at the new offset. Errors that concern the partition (offset out of range) come
//! on its queue; the consumer's own errors (brokers unreachable) come on its main queue, which a
//! task serves, and reach every stream open on it.
//!
//! A consumer that stopped fetching (librdkafka can keep a fetch lost in a broker outage for
//! minutes) is not repaired in place: [`Hub::replace`] moves the channel to a new consumer, made
//! once for every channel that replaces its stream soon after (so an outage costs one new client,
//! not one per channel). A consumer no channel uses any more is closed.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::broadcast;

use super::stats::HubStats;
use super::{consumer_config, Record, PARTITION};
use crate::config::KafkaConfig;

type HubConsumer = StreamConsumer<HubStats>;

/// A new consumer is made for a replacement only if the current one is at least this old: the
/// channels that replace their streams after one outage share the one made for the first.
const FRESH: Duration = Duration::from_secs(3);

/// The OSN's consumer, shared by every channel. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    config: KafkaConfig,
    /// For each shard (a channel's shard is chosen by its name), the consumer new streams open on.
    current: Vec<Mutex<Arc<Member>>>,
    /// Consumers made so far (the first included).
    made: AtomicU64,
    /// The consumer each channel's partition is on.
    homes: Mutex<HashMap<String, std::sync::Weak<Member>>>,
    learner: Arc<Learner>,
}

/// A topic a channel waits to be learnt, and where to answer.
type Waiting = (String, tokio::sync::oneshot::Sender<Result<bool, KafkaError>>);

/// A partition whose high watermark a channel waits for, and where to answer.
type WaitingEnd = (String, tokio::sync::oneshot::Sender<Result<i64, KafkaError>>);

/// Topics whose metadata channels wait for. One thread asks for them one request at a time:
/// the topics that came while a request ran are asked for together in the next one (all topics
/// in one request), so thousands of channels starting at once cost a handful of requests and no
/// thread each.
/// The same thread asks for high watermarks, one partition at a time, with the consumer the
/// partition is on.
#[derive(Default)]
struct Learner {
    waiting: Mutex<(Vec<Waiting>, Vec<WaitingEnd>)>,
    wake: std::sync::Condvar,
}

impl Learner {
    /// The thread's loop, until the hub is gone.
    fn run(&self, hub: std::sync::Weak<Inner>) {
        loop {
            let (batch, ends) = {
                let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
                while waiting.0.is_empty() && waiting.1.is_empty() {
                    if hub.strong_count() == 0 {
                        return;
                    }
                    waiting =
                        self.wake.wait_timeout(waiting, Duration::from_secs(1)).unwrap_or_else(|e| e.into_inner()).0;
                }
                std::mem::take(&mut *waiting)
            };
            let Some(inner) = hub.upgrade() else { return };
            let timeout = inner.config.connect_timeout;
            let ends: Vec<_> =
                ends.into_iter().map(|(topic, tx)| (inner.member_of(&topic).consumer.clone(), topic, tx)).collect();
            let mut by_shard: HashMap<usize, Vec<_>> = HashMap::new();
            for waiting in batch {
                by_shard.entry(inner.shard(&waiting.0)).or_default().push(waiting);
            }
            let consumers: Vec<_> = by_shard
                .into_iter()
                .map(|(shard, batch)| {
                    (inner.current[shard].lock().unwrap_or_else(|e| e.into_inner()).consumer.clone(), batch)
                })
                .collect();
            drop(inner);
            for (consumer, batch) in consumers {
                Self::ask(&consumer, batch, timeout);
            }
            for (consumer, topic, tx) in ends {
                let _ = tx.send(consumer.fetch_watermarks(&topic, super::PARTITION, timeout).map(|(_, high)| high));
            }
        }
    }

    /// Asks one consumer for the topics of `batch`: one topic alone, or all topics at once.
    fn ask(consumer: &HubConsumer, batch: Vec<Waiting>, timeout: Duration) {
        if let [(topic, _)] = batch.as_slice() {
            let answer = super::topic_has_partition0(consumer, topic, timeout);
            if let Some((_, tx)) = batch.into_iter().next() {
                let _ = tx.send(answer);
            }
            return;
        }
        match consumer.fetch_metadata(None, timeout) {
            Ok(md) => {
                for (topic, tx) in batch {
                    let _ = tx.send(Ok(super::has_partition0(&md, &topic)));
                }
            }
            Err(e) => {
                for (_, tx) in batch {
                    let _ = tx.send(Err(e.clone()));
                }
            }
        }
    }
}

/// One librdkafka consumer and the partitions open on it.
struct Member {
    consumer: Arc<HubConsumer>,
    created: Instant,
    partitions: Mutex<HashMap<String, Arc<Partition>>>,
    /// The consumer's own errors, for every stream open on it.
    errors: broadcast::Sender<KafkaError>,
    /// The task serving the main queue; stopped with the member.
    task: actix_rt::task::JoinHandle<()>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One channel's partition on one consumer: its queue (split once, before the partition is
/// first assigned, and kept while the partition is on this consumer: dropping a split queue
/// handle turns off the wake-ups of every handle on it), the next offset its stream delivers,
/// and which opening of it is current.
struct Partition {
    topic: String,
    queue: StreamPartitionQueue<HubStats>,
    next: AtomicI64,
    generation: AtomicU64,
    /// Serialises (re)assignments of this partition; whether it is assigned.
    assigned: Mutex<bool>,
}

impl Member {
    fn new(cfg: &KafkaConfig) -> Result<Arc<Self>, KafkaError> {
        let mut config = consumer_config(cfg)?;
        config.set("statistics.interval.ms", cfg.statistics_interval.as_millis().to_string());
        let consumer: Arc<HubConsumer> = Arc::new(config.create_with_context(HubStats::default())?);
        let (errors, _) = broadcast::channel(64);
        let task = {
            let (consumer, errors) = (consumer.clone(), errors.clone());
            actix_rt::spawn(async move {
                loop {
                    // Every partition is split, so the main queue only carries the consumer's errors.
                    match consumer.recv().await {
                        Ok(m) => tracing::warn!(
                            topic = m.topic(),
                            offset = m.offset(),
                            "record on the shared consumer's main queue, dropped"
                        ),
                        Err(e) => {
                            tracing::debug!(error = %e, "Kafka consumer error");
                            let _ = errors.send(e);
                        }
                    }
                }
            })
        };
        Ok(Arc::new(Member { consumer, created: Instant::now(), partitions: Mutex::default(), errors, task }))
    }

    /// The partition's entry on this consumer, its queue split on first use (before it is ever
    /// assigned here, so no record of it reaches the main queue).
    fn partition(&self, topic: &str) -> Result<Arc<Partition>, KafkaError> {
        let mut partitions = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = partitions.get(topic) {
            return Ok(p.clone());
        }
        let queue = self.consumer.split_partition_queue(topic, PARTITION).ok_or_else(|| {
            KafkaError::Subscription(format!("cannot split a queue for topic '{topic}' partition {PARTITION}"))
        })?;
        let p = Arc::new(Partition {
            topic: topic.to_owned(),
            queue,
            next: AtomicI64::new(0),
            generation: AtomicU64::new(0),
            assigned: Mutex::new(false),
        });
        partitions.insert(topic.to_owned(), p.clone());
        Ok(p)
    }

    /// Takes the partition off this consumer (its channel moved to another one).
    fn release(&self, topic: &str) {
        let Some(p) = self.partitions.lock().unwrap_or_else(|e| e.into_inner()).remove(topic) else { return };
        p.generation.fetch_add(1, Ordering::SeqCst);
        let mut assigned = p.assigned.lock().unwrap_or_else(|e| e.into_inner());
        if *assigned {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(topic, PARTITION);
            if let Err(e) = self.consumer.incremental_unassign(&tpl) {
                tracing::debug!(topic, error = %e, "cannot unassign the partition from the old consumer");
            }
            *assigned = false;
        }
    }
}

impl Inner {
    /// The consumer `topic`'s partition is on, or would be opened on.
    fn member_of(&self, topic: &str) -> Arc<Member> {
        let home = self.homes.lock().unwrap_or_else(|e| e.into_inner()).get(topic).and_then(|m| m.upgrade());
        home.unwrap_or_else(|| self.current[self.shard(topic)].lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// The shard of a channel: a hash of its name (FNV-1a), so it is the same across restarts.
    fn shard(&self, topic: &str) -> usize {
        crate::core::shard_of(topic, self.current.len())
    }
}

impl Hub {
    /// Creates the consumers (nothing assigned) and the task that serves its main queue. Call it
    /// inside the runtime.
    pub fn new(cfg: &KafkaConfig) -> Result<Self, KafkaError> {
        let current = (0..cfg.consumers.max(1)).map(|_| Member::new(cfg).map(Mutex::new)).collect::<Result<_, _>>()?;
        let learner = Arc::new(Learner::default());
        let inner = Arc::new(Inner {
            config: cfg.clone(),
            current,
            made: AtomicU64::new(cfg.consumers.max(1) as u64),
            homes: Mutex::default(),
            learner: learner.clone(),
        });
        let hub = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("osn-metadata".into())
            .spawn(move || learner.run(hub))
            .map_err(|e| KafkaError::ClientCreation(format!("cannot start the metadata thread: {e}")))?;
        Ok(Hub { inner })
    }

    /// The records of `topic`'s partition from `offset` on (a new channel starts at 0), with the
    /// consumer's errors. The start is always an explicit offset, never "oldest": if retention
    /// already removed it, the stream reports offset-out-of-range instead of silently starting
    /// later. A stream replaced by a later one for the same topic never yields again.
    pub fn stream(
        &self,
        topic: &str,
        offset: i64,
    ) -> Result<impl Stream<Item = Result<Record, KafkaError>> + 'static, KafkaError> {
        let member = self.inner.current[self.inner.shard(topic)].lock().unwrap_or_else(|e| e.into_inner()).clone();
        self.open(&member, topic, offset)
    }

    /// [`Hub::stream`] on a new consumer: for a channel whose stream stopped delivering (after
    /// a broker outage, or silently). The channel's partition leaves the consumer it was on; a new
    /// consumer is made unless the current one is younger than [`FRESH`] and this partition is
    /// not on it already.
    pub fn replace(
        &self,
        topic: &str,
        offset: i64,
    ) -> Result<impl Stream<Item = Result<Record, KafkaError>> + 'static, KafkaError> {
        let member = {
            let mut current = self.inner.current[self.inner.shard(topic)].lock().unwrap_or_else(|e| e.into_inner());
            let on_current = current.partitions.lock().unwrap_or_else(|e| e.into_inner()).contains_key(topic);
            if on_current || current.created.elapsed() >= FRESH {
                let old = std::mem::replace(&mut *current, Member::new(&self.inner.config)?);
                self.inner.made.fetch_add(1, Ordering::SeqCst);
                tracing::info!(topic, "a new Kafka consumer for channels whose streams stopped");
                drop(old);
            }
            current.clone()
        };
        self.open(&member, topic, offset)
    }

    /// Opens `topic`'s partition on `member` at `offset`, taking it off the consumer it was on.
    fn open(
        &self,
        member: &Arc<Member>,
        topic: &str,
        offset: i64,
    ) -> Result<impl Stream<Item = Result<Record, KafkaError>> + 'static, KafkaError> {
        let previous = {
            let mut homes = self.inner.homes.lock().unwrap_or_else(|e| e.into_inner());
            homes.insert(topic.to_owned(), Arc::downgrade(member))
        };
        if let Some(previous) = previous.and_then(|p| p.upgrade()) {
            if !Arc::ptr_eq(&previous, member) {
                previous.release(topic);
            }
        }
        open(member, topic, offset)
    }

    /// Asks the cluster for `topic`'s metadata with the current consumer, so that it knows the
    /// partition's leader before the partition is assigned (otherwise librdkafka finds a topic it
    /// learnt of after it started only at its next periodic scan, up to a second later); whether
    /// the topic has its partition. Requests of many channels at once are made together.
    pub async fn learn(&self, topic: &str) -> Result<bool, KafkaError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let learner = &self.inner.learner;
        learner.waiting.lock().unwrap_or_else(|e| e.into_inner()).0.push((topic.to_owned(), tx));
        learner.wake.notify_one();
        rx.await.unwrap_or(Err(KafkaError::Canceled))
    }

    /// The high watermark of `topic`'s partition (the offset the next record will get), asked
    /// by the hub's metadata thread with the consumer the partition is on (at most
    /// `kafka.connect-timeout`): no thread or client per channel.
    pub async fn high_watermark(&self, topic: &str) -> Result<i64, KafkaError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let learner = &self.inner.learner;
        learner.waiting.lock().unwrap_or_else(|e| e.into_inner()).1.push((topic.to_owned(), tx));
        learner.wake.notify_one();
        rx.await.unwrap_or(Err(KafkaError::Canceled))
    }

    /// How many partitions are assigned on the current consumers.
    pub fn assigned(&self) -> usize {
        let mut n = 0;
        for current in &self.inner.current {
            let member = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let partitions = member.partitions.lock().unwrap_or_else(|e| e.into_inner());
            n += partitions.values().filter(|p| *p.assigned.lock().unwrap_or_else(|e| e.into_inner())).count();
        }
        n
    }

    /// When the consumer `topic`'s partition is on was last seen connected to every broker
    /// (its statistics, every `kafka.statistics-interval`): a consumer with nothing to deliver
    /// is healthy if this is later than its last error.
    pub fn connected_at(&self, topic: &str) -> Option<Instant> {
        let homes = self.inner.homes.lock().unwrap_or_else(|e| e.into_inner());
        let member = homes.get(topic)?.upgrade()?;
        member.consumer.context().connected_at()
    }

    /// How many consumers the hub has made (`kafka.consumers` until a replacement needed a new one).
    pub fn consumers_made(&self) -> u64 {
        self.inner.made.load(Ordering::SeqCst)
    }
}

/// Opens `topic`'s partition on `member` at `offset`: (re)assigns it there and makes the stream.
fn open(
    member: &Arc<Member>,
    topic: &str,
    offset: i64,
) -> Result<impl Stream<Item = Result<Record, KafkaError>> + 'static, KafkaError> {
    let offset = offset.max(0);
    let partition = member.partition(topic)?;
    let generation = {
        let mut assigned = partition.assigned.lock().unwrap_or_else(|e| e.into_inner());
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, PARTITION, Offset::Offset(offset))?;
        if *assigned {
            member.consumer.incremental_unassign(&tpl)?;
            *assigned = false;
        }
        partition.next.store(offset, Ordering::SeqCst);
        let generation = partition.generation.fetch_add(1, Ordering::SeqCst) + 1;
        member.consumer.incremental_assign(&tpl)?;
        *assigned = true;
        generation
    };
    let opened = Opened { member: member.clone(), partition, generation };
    let errors = member.errors.subscribe();
    Ok(futures_util::stream::unfold((opened, errors), |(opened, mut errors)| async move {
        let item = opened.next(&mut errors).await?;
        Some((item, (opened, errors)))
    }))
}

/// One opening of a partition: a stream's state. Dropping the current one unassigns the
/// partition (its channel stopped), so no records are fetched for it meanwhile.
struct Opened {
    member: Arc<Member>,
    partition: Arc<Partition>,
    generation: u64,
}

impl Opened {
    fn current(&self) -> bool {
        self.partition.generation.load(Ordering::SeqCst) == self.generation
    }
    /// The next record or error. Once a later opening replaced this one it never yields again
    /// (it is checked before every poll of the queue, so a replaced stream that is still polled
    /// takes no record from its successor; it is dropped soon after).
    async fn next(&self, errors: &mut broadcast::Receiver<KafkaError>) -> Option<Result<Record, KafkaError>> {
        loop {
            let error = errors.recv();
            let message = self.partition.queue.recv();
            tokio::pin!(error, message);
            let got = std::future::poll_fn(|cx| {
                if !self.current() {
                    return Poll::Pending;
                }
                // A record already fetched comes first: it is good whatever error follows, and
                // the error channel is only polled (its waiter registered and removed under its
                // lock) when no record is ready, not once per record.
                if let Poll::Ready(m) = message.as_mut().poll(cx) {
                    return Poll::Ready(match m {
                        Ok(m) => Got::Record(Record {
                            offset: m.offset(),
                            value: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
                        }),
                        Err(e) => Got::Error(e),
                    });
                }
                error.as_mut().poll(cx).map(|e| match e {
                    Ok(e) => Got::Error(e),
                    // Missed errors are of the same outage; the next one comes.
                    Err(broadcast::error::RecvError::Lagged(_)) => Got::Lagged,
                    Err(broadcast::error::RecvError::Closed) => Got::Closed,
                })
            })
            .await;
            let record = match got {
                Got::Closed => return None,
                Got::Lagged => continue,
                Got::Error(e) => return Some(Err(e)),
                Got::Record(record) => record,
            };
            let expected = self.partition.next.load(Ordering::SeqCst);
            if record.offset < expected {
                // Fetched before the partition was reassigned lower: read already.
                continue;
            }
            if record.offset > expected {
                tracing::warn!(topic = %self.partition.topic, offset = record.offset, expected, "the partition's offsets jump");
            }
            self.partition.next.store(record.offset + 1, Ordering::SeqCst);
            return Some(Ok(record));
        }
    }
}

enum Got {
    Record(Record),
    Error(KafkaError),
    Lagged,
    Closed,
}

impl Drop for Opened {
    fn drop(&mut self) {
        let mut assigned = self.partition.assigned.lock().unwrap_or_else(|e| e.into_inner());
        if !self.current() || !*assigned {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.partition.topic, PARTITION);
        match self.member.consumer.incremental_unassign(&tpl) {
            Ok(()) => *assigned = false,
            Err(e) => tracing::warn!(topic = %self.partition.topic, error = %e, "cannot unassign the partition"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::embedded::EmbeddedKafka;
    use futures_util::StreamExt;
    use std::time::Duration;

    /// Produces `n` records ("{topic}-{i}") into each topic's partition.
    async fn fill(cfg: &KafkaConfig, topics: &[&str], n: usize) {
        let producer = crate::kafka::producer(cfg).unwrap();
        for topic in topics {
            for i in 0..n {
                crate::kafka::produce(&producer, topic, format!("{topic}-{i}").as_bytes()).await.unwrap();
            }
        }
    }

    async fn take<S: Stream<Item = Result<Record, KafkaError>> + Unpin>(stream: &mut S, n: usize) -> Vec<i64> {
        let mut offsets = Vec::new();
        while offsets.len() < n {
            let item = tokio::time::timeout(Duration::from_secs(20), stream.next())
                .await
                .expect("a record within 20 s")
                .expect("the stream goes on");
            offsets.push(item.expect("a record, not an error").offset);
        }
        offsets
    }

    fn setup(topics: &[&str]) -> (EmbeddedKafka, KafkaConfig) {
        let kafka = EmbeddedKafka::start(1).unwrap();
        for topic in topics {
            kafka.create_topic(topic, 1).unwrap();
        }
        let cfg = KafkaConfig {
            brokers: kafka.bootstrap_servers(),
            consumers: 1,
            fetch_wait: crate::kafka::embedded::FETCH_WAIT,
            ..Default::default()
        };
        (kafka, cfg)
    }

    #[actix_rt::test]
    async fn each_channel_reads_its_own_partition_from_its_offset() {
        let (_kafka, cfg) = setup(&["a", "b", "c"]);
        fill(&cfg, &["a", "b", "c"], 10).await;
        let hub = Hub::new(&cfg).unwrap();
        let mut a = Box::pin(hub.stream("a", 0).unwrap());
        let mut b = Box::pin(hub.stream("b", 4).unwrap());
        assert_eq!(take(&mut a, 10).await, (0..10).collect::<Vec<_>>());
        assert_eq!(take(&mut b, 6).await, (4..10).collect::<Vec<_>>());
        assert_eq!(hub.assigned(), 2, "c is not assigned: nothing fetched for it");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        // Records produced later arrive too, on the right stream only.
        fill(&cfg, &["b"], 3).await;
        assert_eq!(take(&mut b, 3).await, vec![10, 11, 12]);
        // A channel started later, its topic learnt first, gets its records within a fetch.
        assert!(hub.learn("c").await.unwrap());
        let started = std::time::Instant::now();
        let mut c = Box::pin(hub.stream("c", 0).unwrap());
        assert_eq!(take(&mut c, 10).await, (0..10).collect::<Vec<_>>());
        assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
        let nothing = tokio::time::timeout(Duration::from_millis(300), a.next()).await;
        assert!(nothing.is_err(), "a got a record of b: {nothing:?}");
    }

    #[actix_rt::test]
    async fn reopening_moves_the_partition_without_skipping_or_repeating() {
        let (_kafka, cfg) = setup(&["r"]);
        fill(&cfg, &["r"], 20).await;
        let hub = Hub::new(&cfg).unwrap();
        let mut first = Box::pin(hub.stream("r", 0).unwrap());
        assert_eq!(take(&mut first, 5).await, (0..5).collect::<Vec<_>>());
        // Replaced while the first has records prefetched: the first never yields again, the
        // second starts exactly where asked.
        let mut second = Box::pin(hub.stream("r", 5).unwrap());
        assert_eq!(take(&mut second, 15).await, (5..20).collect::<Vec<_>>());
        let stale = tokio::time::timeout(Duration::from_millis(300), first.next()).await;
        assert!(stale.is_err(), "a replaced stream yielded {stale:?}");
        // Dropping the replaced stream leaves the current one assigned.
        drop(first);
        assert_eq!(hub.assigned(), 1);
        // Backwards (a restart from the ledger) reads again from there.
        let mut third = Box::pin(hub.stream("r", 2).unwrap());
        drop(second);
        assert_eq!(take(&mut third, 18).await, (2..20).collect::<Vec<_>>());
        drop(third);
        assert_eq!(hub.assigned(), 0, "the current stream dropped: the partition is unassigned");
    }

    #[actix_rt::test]
    async fn a_long_backlog_from_the_middle() {
        let (_kafka, cfg) = setup(&["l", "m"]);
        fill(&cfg, &["l", "m"], 3000).await;
        let hub = Hub::new(&cfg).unwrap();
        let mut m = Box::pin(hub.stream("m", 0).unwrap());
        let mut l = Box::pin(hub.stream("l", 402).unwrap());
        assert_eq!(take(&mut l, 2598).await, (402..3000).collect::<Vec<_>>());
        assert_eq!(take(&mut m, 3000).await, (0..3000).collect::<Vec<_>>());
    }

    #[actix_rt::test]
    async fn every_open_stream_hears_of_the_consumer_losing_its_brokers() {
        let (kafka, cfg) = setup(&["x", "y"]);
        fill(&cfg, &["x", "y"], 1).await;
        let hub = Hub::new(&cfg).unwrap();
        let mut x = Box::pin(hub.stream("x", 0).unwrap());
        let mut y = Box::pin(hub.stream("y", 0).unwrap());
        take(&mut x, 1).await;
        take(&mut y, 1).await;
        kafka.cluster().broker_down(1).unwrap();
        for stream in [&mut x, &mut y] {
            let item =
                tokio::time::timeout(Duration::from_secs(20), stream.next()).await.expect("an error within 20 s");
            assert!(item.expect("the stream goes on").is_err());
        }
        kafka.cluster().broker_up(1).unwrap();
        fill(&cfg, &["x"], 1).await;
        let offsets = loop {
            let item = tokio::time::timeout(Duration::from_secs(20), x.next()).await.expect("a record within 20 s");
            if let Some(Ok(record)) = item {
                break record.offset;
            }
        };
        assert_eq!(offsets, 1, "the broker back, records flow again");
    }

    #[actix_rt::test]
    async fn a_replaced_stream_moves_to_one_new_consumer_shared_by_the_channels_replaced_with_it() {
        let (_kafka, cfg) = setup(&["p", "q", "s"]);
        fill(&cfg, &["p", "q", "s"], 10).await;
        let hub = Hub::new(&cfg).unwrap();
        let mut p = Box::pin(hub.stream("p", 0).unwrap());
        let mut q = Box::pin(hub.stream("q", 0).unwrap());
        let mut s = Box::pin(hub.stream("s", 0).unwrap());
        assert_eq!(take(&mut p, 4).await, vec![0, 1, 2, 3]);
        take(&mut q, 10).await;
        tokio::time::sleep(FRESH).await;
        let mut p2 = Box::pin(hub.replace("p", 4).unwrap());
        let mut q2 = Box::pin(hub.replace("q", 10).unwrap());
        assert_eq!(hub.consumers_made(), 2, "p and q replaced together share one new consumer");
        assert_eq!(take(&mut p2, 6).await, (4..10).collect::<Vec<_>>());
        fill(&cfg, &["q", "s"], 1).await;
        assert_eq!(take(&mut q2, 1).await, vec![10]);
        // s stayed on the first consumer and still gets its records.
        assert_eq!(take(&mut s, 11).await, (0..11).collect::<Vec<_>>());
        for stale in [&mut p, &mut q] {
            let nothing = tokio::time::timeout(Duration::from_millis(300), stale.next()).await;
            assert!(nothing.is_err(), "a replaced stream yielded {nothing:?}");
        }
        // Replaced again at once: its consumer is the current one, so it gets a new one.
        let mut p3 = Box::pin(hub.replace("p", 10).unwrap());
        assert_eq!(hub.consumers_made(), 3);
        fill(&cfg, &["p"], 1).await;
        assert_eq!(take(&mut p3, 1).await, vec![10]);
    }

    #[actix_rt::test]
    async fn many_channels_starting_at_once_learn_their_topics_together() {
        let topics: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let (_kafka, cfg) = setup(&names);
        fill(&cfg, &names, 1).await;
        // Spread over four consumers by name.
        let cfg = KafkaConfig { consumers: 4, ..cfg };
        let hub = Hub::new(&cfg).unwrap();
        let shards: std::collections::HashSet<usize> = names.iter().map(|t| hub.inner.shard(t)).collect();
        assert_eq!(shards.len(), 4, "20 channels use every consumer");
        // The hub started without them; it learns them, most in one request.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let learnt = futures_util::future::join_all(names.iter().map(|t| hub.learn(t))).await;
        assert!(learnt.iter().all(|l| matches!(l, Ok(true))), "{learnt:?}");
        assert!(!hub.learn("no-such-topic").await.unwrap());
        // Known before they are assigned, the partitions are fetched at once (not at librdkafka's
        // next scan for topics, up to a second later).
        let started = std::time::Instant::now();
        let mut streams: Vec<_> = names.iter().map(|t| Box::pin(hub.stream(t, 0).unwrap())).collect();
        for s in &mut streams {
            assert_eq!(take(s, 1).await, vec![0]);
        }
        assert!(started.elapsed() < Duration::from_millis(600), "20 channels took {:?}", started.elapsed());
    }

    #[actix_rt::test]
    async fn an_offset_beyond_the_partition_is_reported_not_skipped() {
        let (_kafka, cfg) = setup(&["o"]);
        fill(&cfg, &["o"], 3).await;
        let hub = Hub::new(&cfg).unwrap();
        let mut s = Box::pin(hub.stream("o", 100).unwrap());
        let item = tokio::time::timeout(Duration::from_secs(20), s.next()).await.expect("an answer").unwrap();
        let error = item.expect_err("no record at offset 100");
        assert!(error.to_string().contains("ffset"), "{error}");
    }
}
