//! `GET /healthz`, `GET /readyz` and `GET /metrics`, in Fabric's conventions.
//!
//! `/healthz` is 200 `{"status":"OK","time":...}`, or 503 `{"status":"Service Unavailable",
//! "time":..., "failed_checks":[{"component":..., "reason":...}]}` naming each failing channel
//! (`<channel>/0`, its partition) or `kafka`: a channel errored, the cluster unreachable, or a
//! partition without a leader or with fewer in-sync replicas than `kafka.min-insync-replicas`.
//! `/healthz` also lists `warnings` (whatever its status): the Kafka cluster's settings that
//! contradict Fabric's guide, or that they could not be read (`kafka::settings`).
//! The Kafka part is one metadata request (no record is written), cached for a second so a
//! flood of probes cannot flood the cluster, and never waited for longer than [`ANSWER_WITHIN`]:
//! the request runs on its own (one at a time), and a probe it has not answered by then reports
//! `kafka` as not answering, so `/healthz` answers within a probe's usual 1 s timeout even while
//! the cluster is unreachable. Both name `ledger` while the ledger cannot write (from a failed
//! write, a full disk say, until the database can write again). `/readyz` answers 503 until every
//! channel consumes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::AppState;
use crate::actors::Phase;
use crate::config::KafkaConfig;
use crate::kafka::MetadataProbe;

/// How long a metadata answer is reused.
const CACHE: Duration = Duration::from_secs(1);
/// How long a metadata request may take before it fails.
const METADATA_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `/healthz` waits for a metadata answer before it answers without one.
pub const ANSWER_WITHIN: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FailedCheck {
    pub component: String,
    pub reason: String,
}

#[derive(Serialize)]
struct Health<'a> {
    status: &'a str,
    time: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failed_checks: Vec<FailedCheck>,
    /// What is wrong without stopping anything (an OSN extension): the Kafka cluster's settings
    /// that contradict Fabric's guide (`kafka-settings`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<FailedCheck>,
}

/// The Kafka side of `/healthz`: a metadata client, made on first use, the last answer, and the
/// request running, if one is.
pub struct KafkaHealth {
    kafka: KafkaConfig,
    probe: Mutex<Option<Arc<MetadataProbe>>>,
    state: Mutex<Checks>,
    /// Bumped each time a request ends (its answer is then in `state.last`).
    answered: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct Checks {
    last: Option<Snapshot>,
    /// Since when a request runs.
    running: Option<Instant>,
}

/// When, for which topics, and what the last Kafka check found.
type Snapshot = (Instant, Vec<String>, Vec<FailedCheck>);

impl KafkaHealth {
    pub fn new(kafka: KafkaConfig) -> Self {
        KafkaHealth {
            kafka,
            probe: Mutex::new(None),
            state: Mutex::new(Checks::default()),
            answered: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The failed Kafka checks for these channels' topics, within [`ANSWER_WITHIN`].
    async fn check(self: &Arc<Self>, topics: Vec<String>) -> Vec<FailedCheck> {
        let mut answered = self.answered.subscribe();
        let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
        loop {
            answered.mark_unchanged();
            if let Some(failed) = self.fresh_or_ask(&topics) {
                return failed;
            }
            match tokio::time::timeout_at(deadline, answered.changed()).await {
                Ok(Ok(())) => continue,
                _ => break,
            }
        }
        // No answer in time: Kafka and every topic fail, as when it is unreachable.
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let waiting = state.running.map(|since| since.elapsed()).unwrap_or_default();
        let reason = format!(
            "Kafka has not answered a metadata request for {:.1}s ({})",
            waiting.as_secs_f64(),
            self.kafka.brokers
        );
        let mut failed = vec![FailedCheck { component: "kafka".into(), reason: reason.clone() }];
        failed.extend(topics.iter().map(|t| FailedCheck { component: format!("{t}/0"), reason: reason.clone() }));
        failed
    }

    /// The last answer if it is fresh and for these topics; else `None`, with a request for them
    /// started unless one runs.
    fn fresh_or_ask(self: &Arc<Self>, topics: &[String]) -> Option<Vec<FailedCheck>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, checked, failed)) = state.last.as_ref() {
            if at.elapsed() < CACHE && checked == topics {
                return Some(failed.clone());
            }
        }
        if state.running.is_none() {
            state.running = Some(Instant::now());
            let this = self.clone();
            let asked = topics.to_vec();
            actix_web::rt::spawn(async move { this.request(asked).await });
        }
        None
    }

    /// One metadata request (at most [`METADATA_TIMEOUT`]); its answer becomes the last one.
    async fn request(&self, topics: Vec<String>) {
        let failed = self.ask(&topics).await;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.last = Some((Instant::now(), topics, failed));
        state.running = None;
        drop(state);
        self.answered.send_modify(|n| *n += 1);
    }

    async fn ask(&self, topics: &[String]) -> Vec<FailedCheck> {
        let probe = {
            let mut probe = self.probe.lock().unwrap_or_else(|e| e.into_inner());
            if probe.is_none() {
                match MetadataProbe::new(&self.kafka) {
                    Ok(p) => *probe = Some(Arc::new(p)),
                    Err(e) => {
                        return vec![FailedCheck {
                            component: "kafka".into(),
                            reason: format!("cannot create a client: {e}"),
                        }]
                    }
                }
            }
            probe.clone().expect("set above")
        };
        let min_insync = self.kafka.min_insync_replicas;
        let asked = topics.to_vec();
        let answer =
            actix_web::rt::task::spawn_blocking(move || probe.check(&asked, min_insync, METADATA_TIMEOUT)).await;
        match answer {
            Ok(Ok(partitions)) => partitions
                .into_iter()
                .filter_map(|(topic, problem)| {
                    problem.map(|reason| FailedCheck { component: format!("{topic}/0"), reason })
                })
                .collect(),
            Ok(Err(e)) => {
                let reason = format!("Kafka unreachable ({}): {e}", self.kafka.brokers);
                let mut failed = vec![FailedCheck { component: "kafka".into(), reason: reason.clone() }];
                failed
                    .extend(topics.iter().map(|t| FailedCheck { component: format!("{t}/0"), reason: reason.clone() }));
                failed
            }
            Err(e) => {
                vec![FailedCheck { component: "kafka".into(), reason: format!("the metadata probe failed: {e}") }]
            }
        }
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn answer(failed: Vec<FailedCheck>, warnings: Vec<FailedCheck>) -> HttpResponse {
    if failed.is_empty() {
        HttpResponse::Ok().json(Health { status: "OK", time: now(), failed_checks: failed, warnings })
    } else {
        HttpResponse::ServiceUnavailable().json(Health {
            status: "Service Unavailable",
            time: now(),
            failed_checks: failed,
            warnings,
        })
    }
}

/// The `ledger` check: failed while the ledger cannot write.
fn ledger_check(state: &AppState) -> Option<FailedCheck> {
    state
        .channels
        .storage_failure()
        .map(|reason| FailedCheck { component: "ledger".into(), reason: format!("the ledger cannot write: {reason}") })
}

/// The `grpc` check: failed once the gRPC listener stopped serving.
fn grpc_check(state: &AppState) -> Option<FailedCheck> {
    let failure = state.grpc_health.as_ref()?.failure()?;
    Some(FailedCheck { component: "grpc".into(), reason: failure })
}

/// `GET /healthz`.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let channels = state.channels.list();
    let mut failed: Vec<FailedCheck> = ledger_check(&state).into_iter().chain(grpc_check(&state)).collect();
    failed.extend(channels.iter().filter_map(|c| {
        let (phase, reason) = c.status.phase();
        (phase == Phase::Errored).then(|| FailedCheck { component: format!("{}/0", c.name), reason })
    }));
    let topics: Vec<String> = channels.iter().map(|c| c.name.clone()).collect();
    for check in state.kafka_health.check(topics).await {
        if !failed.iter().any(|f| f.component == check.component) {
            failed.push(check);
        }
    }
    let warnings = state
        .kafka_settings
        .warnings()
        .into_iter()
        .map(|(component, reason)| FailedCheck { component, reason })
        .collect();
    answer(failed, warnings)
}

/// `GET /readyz`: every channel consumes its partition and accepts broadcasts.
/// Also until the system channel has consumed its partition as far as it reached when the
/// channel connected: before that, channels created earlier may not be known here yet (a new or
/// late OSN would answer their broadcasts 404).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let mut failed: Vec<FailedCheck> = ledger_check(&state).into_iter().collect();
    failed.extend(state.channels.list().into_iter().filter_map(|c| {
        let (phase, reason) = c.status.phase();
        (phase != Phase::Ready).then(|| FailedCheck {
            component: format!("{}/0", c.name),
            reason: if reason.is_empty() { phase.to_string() } else { format!("{phase}: {reason}") },
        })
    }));
    if let Some(system) = state.channels.system() {
        let component = format!("{}/0", system.name);
        if let Err(why) = system.status.caught_up() {
            if !failed.iter().any(|f| f.component == component) {
                failed.push(FailedCheck { component, reason: format!("system channel: {why}") });
            }
        }
    }
    answer(failed, Vec::new())
}

/// `GET /metrics`: Prometheus' text format.
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok().content_type(crate::metrics::CONTENT_TYPE).body(crate::metrics::gather())
}
