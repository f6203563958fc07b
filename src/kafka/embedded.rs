//! The embedded Kafka-protocol cluster of `osn dev` and the tests: librdkafka's mock cluster, a
//! real broker implementation running inside the process (in memory, about 5 MB kept per
//! partition). It has no CreateTopics API, so topics are created through its own call.

use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

/// The fetch wait (`kafka.fetch-wait`) for consumers of this broker: it holds an empty fetch for
/// the whole wait even when records arrive meanwhile (a real broker answers at once), so a short
/// wait bounds the latency it adds. `osn dev`'s default (`--fetch-wait-max`) and the tests'.
pub const FETCH_WAIT: Duration = Duration::from_millis(20);

pub struct EmbeddedKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedKafka {
    /// Starts a cluster of `brokers` brokers listening on loopback.
    pub fn start(brokers: i32) -> anyhow::Result<Self> {
        let cluster = MockCluster::new(brokers)?;
        Ok(EmbeddedKafka { cluster })
    }

    /// The bootstrap servers to give clients.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates a one-partition topic.
    pub fn create_topic(&self, topic: &str, replication_factor: i32) -> anyhow::Result<()> {
        self.cluster.create_topic(topic, 1, replication_factor)?;
        Ok(())
    }

    /// The underlying mock cluster, for fault injection in tests.
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }
}
