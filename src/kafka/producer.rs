//! The shared producer, and where each record's acknowledgement goes. librdkafka reports
//! deliveries on the producer's polling thread; each record carries a [`Pending`] that says who
//! is told: one waiting sender ([`produce`]), or one record of a group sent together
//! ([`Acknowledge`]: a broadcast batch), which takes the acknowledgement right there, on the
//! polling thread, whether or not anybody awaits it yet.

use std::sync::Arc;

use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseRecord, ThreadedProducer};
use rdkafka::{ClientContext, Message as _, Statistics};
use tokio::sync::oneshot;

use super::stats::ProducerStats;
use super::{KEY, PARTITION};

/// The shared producer (cheap to clone).
pub type Producer = Arc<ThreadedProducer<Deliveries>>;

/// What a record's acknowledgement is: its offset, or why it was not written.
pub type Outcome = Result<i64, KafkaError>;

/// Takes the acknowledgements of a group of records, on the producer's polling thread: record
/// `index` of the group, of `size` bytes, came to `outcome`. Called exactly once per record,
/// with [`KafkaError::Canceled`] when the producer dropped it unreported.
pub trait Acknowledge: Send + Sync {
    fn acknowledged(&self, index: u32, size: u32, outcome: Outcome);
}

/// Who is told of one record's acknowledgement.
pub enum Pending {
    /// A sender awaiting this one record.
    One(Option<oneshot::Sender<Outcome>>),
    /// Record `index` of a group.
    Of { group: Arc<dyn Acknowledge>, index: u32, size: u32, told: bool },
}

impl Pending {
    /// Record `index`, of `size` bytes, of `group`.
    pub fn of(group: Arc<dyn Acknowledge>, index: u32, size: u32) -> Box<Pending> {
        Box::new(Pending::Of { group, index, size, told: false })
    }

    /// Tells whoever waits of the record's `outcome` (once; dropping it afterwards says nothing).
    pub(crate) fn tell(&mut self, outcome: Outcome) {
        match self {
            Pending::One(tx) => {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(outcome);
                }
            }
            Pending::Of { group, index, size, told } => {
                *told = true;
                group.acknowledged(*index, *size, outcome);
            }
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // A record the producer dropped without a report (it shut down): its group still hears
        // of it once. A lone sender sees its channel closed.
        if let Pending::Of { group, index, size, told: false } = self {
            group.acknowledged(*index, *size, Err(KafkaError::Canceled));
        }
    }
}

/// The producer's context: its statistics as metrics, and deliveries to their [`Pending`].
#[derive(Default)]
pub struct Deliveries {
    stats: ProducerStats,
}

impl ClientContext for Deliveries {
    fn stats_raw(&self, raw: &[u8]) {
        self.stats.stats_raw(raw);
    }

    fn stats(&self, statistics: Statistics) {
        self.stats.stats(statistics);
    }
}

impl rdkafka::producer::ProducerContext for Deliveries {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, mut pending: Box<Pending>) {
        pending.tell(match result {
            Ok(message) => Ok(message.offset()),
            Err((e, _)) => Err(e.clone()),
        });
    }
}

/// Hands one record to the producer for a channel's partition, under Fabric's key; `pending`
/// hears of its acknowledgement. A refusal (a full queue, say) is returned at once, and then
/// nobody is told anything.
pub fn send(producer: &Producer, topic: &str, value: &[u8], pending: Box<Pending>) -> Result<(), KafkaError> {
    let record = BaseRecord::with_opaque_to(topic, pending).partition(PARTITION).key(KEY).payload(value);
    producer.send(record).map_err(|(e, mut record)| {
        // Refused: not the group's record after all.
        if let Pending::Of { told, .. } = record.delivery_opaque.as_mut() {
            *told = true;
        }
        e
    })
}

/// Hands one record to the producer now (so records handed over one after another keep their
/// order) and returns where its acknowledgement comes.
pub fn send_one(producer: &Producer, topic: &str, value: &[u8]) -> Result<oneshot::Receiver<Outcome>, KafkaError> {
    let (tx, rx) = oneshot::channel();
    send(producer, topic, value, Box::new(Pending::One(Some(tx))))?;
    Ok(rx)
}

/// Sends one record to a channel's partition and waits for the broker's acknowledgement.
pub async fn produce(producer: &Producer, topic: &str, value: &[u8]) -> Outcome {
    send_one(producer, topic, value)?.await.unwrap_or(Err(KafkaError::Canceled))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Heard(Mutex<Vec<(u32, u32, bool)>>);

    impl Acknowledge for Heard {
        fn acknowledged(&self, index: u32, size: u32, outcome: Outcome) {
            self.0.lock().unwrap().push((index, size, outcome.is_ok()));
        }
    }

    #[test]
    fn a_record_of_a_group_is_told_once_and_dropped_unreported_it_is_canceled() {
        let heard = Arc::new(Heard::default());
        let mut told = Pending::of(heard.clone(), 0, 10);
        told.tell(Ok(7));
        drop(told);
        drop(Pending::of(heard.clone(), 1, 20));
        assert_eq!(*heard.0.lock().unwrap(), vec![(0, 10, true), (1, 20, false)]);
    }

    #[test]
    fn a_lone_sender_hears_its_outcome() {
        let (tx, mut rx) = oneshot::channel();
        let mut pending = Box::new(Pending::One(Some(tx)));
        pending.tell(Ok(3));
        drop(pending);
        assert_eq!(rx.try_recv().unwrap().unwrap(), 3);
    }
}
