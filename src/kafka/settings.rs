//! The Kafka cluster's settings against Fabric's guide (`core::brokercheck`), read at start,
//! every minute after (so a config update that raises AbsoluteMaxBytes is judged again), and
//! when a channel is created: what
//! contradicts the guide is logged once and listed in `/healthz`'s `warnings`; the brokers'
//! record limit bounds the AbsoluteMaxBytes a config update may set. A cluster that does not
//! answer DescribeConfigs (librdkafka's mock cluster) is reported as not checked.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::actors::Channels;
use crate::config::KafkaConfig;
use crate::core::brokercheck::{check, Finding, Observed};

/// How often the settings are read again.
pub const EVERY: Duration = Duration::from_secs(60);
/// How long one reading may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The last reading of the cluster's settings.
#[derive(Default)]
pub struct KafkaSettings {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    observed: Option<Observed>,
    findings: Vec<Finding>,
    /// Why the last reading failed.
    error: Option<String>,
    /// What was logged already (each finding once).
    logged: BTreeSet<String>,
}

impl KafkaSettings {
    pub fn new() -> Arc<Self> {
        Arc::new(KafkaSettings::default())
    }

    /// `/healthz`'s warnings: each finding, or why the settings could not be read.
    pub fn warnings(&self) -> Vec<(String, String)> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = &state.error {
            return vec![("kafka-settings".into(), format!("not checked: {e}"))];
        }
        state.findings.iter().map(|f| ("kafka-settings".into(), format!("{}: {}", f.subject, f.message))).collect()
    }

    /// The largest record the brokers accept for `topic`, as last read; None if unknown.
    pub fn record_limit(&self, topic: &str) -> Option<u64> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.observed.as_ref().and_then(|o| o.record_limit(Some(topic)))
    }

    /// Records a reading (for channels whose largest AbsoluteMaxBytes is `absolute_max_bytes`)
    /// and logs what it found that was not logged before.
    pub fn record(&self, reading: Result<Observed, String>, absolute_max_bytes: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match reading {
            Ok(observed) => {
                state.findings = check(&observed, absolute_max_bytes);
                state.observed = Some(observed);
                state.error = None;
                let new: Vec<Finding> =
                    state.findings.iter().filter(|f| !state.logged.contains(&format!("{f:?}"))).cloned().collect();
                for f in new {
                    tracing::warn!(subject = %f.subject, "Kafka setting against Fabric's guide: {}", f.message);
                    state.logged.insert(format!("{f:?}"));
                }
            }
            Err(e) => {
                if state.error.is_none() && !state.logged.contains(&e) {
                    tracing::warn!(error = %e, "cannot read the Kafka cluster's settings: they are not checked against Fabric's guide");
                    state.logged.insert(e.clone());
                } else {
                    tracing::debug!(error = %e, "cannot read the Kafka cluster's settings");
                }
                state.error = Some(e);
            }
        }
    }
}

/// Reads the settings now, every [`EVERY`] after, and as soon as the channels change (a channel
/// created, or a topic the last reading did not find yet), for the channels `channels` runs,
/// until the process ends.
pub fn watch(settings: Arc<KafkaSettings>, kafka: KafkaConfig, channels: Arc<Channels>) {
    actix_rt::spawn(async move {
        let mut last: Option<(std::time::Instant, Vec<String>, bool)> = None;
        loop {
            let list = channels.list();
            let topics: Vec<String> = list.iter().map(|c| c.name.clone()).collect();
            let due = match &last {
                None => true,
                Some((at, read, complete)) => at.elapsed() >= EVERY || *read != topics || !complete,
            };
            if due {
                let absolute = list.iter().map(|c| u64::from(c.batch_size().absolute_max_bytes)).max().unwrap_or(0);
                let reading = super::describe_settings(&kafka, &topics, TIMEOUT).await;
                // Read again soon while a channel's topic is not found yet; a cluster that does
                // not answer is asked again a minute later, not sooner.
                let complete = reading.as_ref().map_or(true, |o| o.topics.len() == topics.len());
                settings.record(reading, absolute);
                last = Some((std::time::Instant::now(), topics, complete));
            }
            actix_rt::time::sleep(RECHECK).await;
        }
    });
}

/// How often the watcher looks whether a reading is due.
const RECHECK: Duration = Duration::from_secs(5);
