//! Operations under Kafka trouble: `/healthz` and `/readyz` follow the cluster and the channels,
//! a channel errored by Kafka answers 503 naming it and recovers by itself with nothing lost, and
//! `/metrics` carries every metric named by the issue and moves when it should.

use std::time::Duration;

use osn::proto::orderer::seek_info::{SeekBehavior, SeekErrorResponse};
use osn::proto::{Envelope, SeekInfo};
use prost::Message as _;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

use crate::harness::*;

/// Blocks `start..=stop`.
fn seek_range(start: u64, stop: u64) -> SeekInfo {
    use osn::core::seek::specified;
    SeekInfo { start: Some(specified(start)), stop: Some(specified(stop)), behavior: 0, error_response: 0 }
}

async fn get_json(url: String) -> (u16, serde_json::Value) {
    let mut resp = client().get(url).send().await.expect("request");
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or_default())
}

async fn wait_health(osn: &Osn, want: u16) -> serde_json::Value {
    let url = format!("{}/healthz", osn.url);
    wait_for(&format!("/healthz {want}"), Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            let (code, body) = get_json(url).await;
            (code == want).then_some(body)
        }
    })
    .await
}

async fn wait_status(osn: &Osn, want: &str) -> serde_json::Value {
    let url = format!("{}/v1/channels/{}", osn.url, osn.spec.channel);
    wait_for(&format!("channel {want}"), Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            let (_, info) = get_json(url).await;
            (info["status"] == want).then_some(info)
        }
    })
    .await
}

#[actix_rt::test]
async fn healthz_follows_kafka_and_an_errored_channel_recovers_by_itself() {
    let channel = channel_name("health");
    let broker = Broker::with_topic(&channel);
    let mut spec = OsnSpec { max_message_count: 5, ..OsnSpec::new(&channel, &broker) };
    spec.kafka_extra = FAST_KAFKA.into();
    let osn = Osn::start(spec).await;
    let body = wait_health(&osn, 200).await;
    assert_eq!(body["status"], "OK");
    assert!(body["time"].as_str().unwrap().contains('T'), "{body}");
    wait_for("/readyz 200", Duration::from_secs(30), || async {
        (get_json(format!("{}/readyz", osn.url)).await.0 == 200).then_some(())
    })
    .await;
    let (mut acked, _) = try_all(&osn.broadcast_url(), &envelopes(&channel, 10, 200)).await;
    assert_eq!(acked.len(), 10);
    osn.wait_for_transactions(10, Duration::from_secs(30)).await;

    // The only broker goes down.
    broker.kafka.cluster().broker_down(1).unwrap();
    let body = wait_health(&osn, 503).await;
    // Every answer comes within a probe's usual 1 s timeout, though the cluster answers nothing
    // (a metadata request takes up to 3 s to fail): from what is known, naming Kafka.
    for _ in 0..6 {
        let started = std::time::Instant::now();
        let (code, body) = get_json(format!("{}/healthz", osn.url)).await;
        let took = started.elapsed();
        assert!(took < Duration::from_millis(900), "/healthz took {took:?} during the outage: {body}");
        assert_eq!(code, 503, "{body}");
        assert!(body["failed_checks"].as_array().unwrap().iter().any(|c| c["component"] == "kafka"), "{body}");
        // Spaced so that the cached answer (1 s) expires between calls: each waits on a new
        // metadata request.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(body["status"], "Service Unavailable");
    let failed = body["failed_checks"].as_array().unwrap();
    let ours = failed.iter().find(|c| c["component"] == format!("{channel}/0")).unwrap_or_else(|| panic!("{body}"));
    assert!(ours["reason"].as_str().unwrap().contains("Kafka"), "{body}");
    // Broadcasts are refused naming Kafka (the first ones after the producer gives up on them).
    let (during, refused) = try_all(&osn.broadcast_url(), &envelopes(&channel, 5, 200)).await;
    assert!(during.is_empty(), "nothing is acknowledged while the broker is down");
    assert!(refused.iter().all(|info| info.contains("Kafka")), "{refused:?}");
    let info = wait_status(&osn, "ERRORED").await;
    assert!(info["statusReason"].as_str().unwrap().contains("Kafka"), "{info}");
    let (code, ready) = get_json(format!("{}/readyz", osn.url)).await;
    assert_eq!(code, 503, "{ready}");
    // STRICT deliveries are refused; BEST_EFFORT ones read the ledger.
    let seek = |error_response: SeekErrorResponse| SeekInfo {
        error_response: error_response as i32,
        behavior: SeekBehavior::FailIfNotReady as i32,
        ..seek_range(0, 1)
    };
    let (blocks, status) = deliver(&osn.url, &channel, &seek(SeekErrorResponse::Strict), 10).await;
    assert_eq!((blocks.len(), status), (0, Some(503)));
    let (blocks, status) = deliver(&osn.url, &channel, &seek(SeekErrorResponse::BestEffort), 10).await;
    assert_eq!((blocks.len(), status), (2, Some(200)));

    // Back: health, readiness and broadcasts recover without a restart; nothing acknowledged is lost.
    broker.kafka.cluster().broker_up(1).unwrap();
    wait_health(&osn, 200).await;
    wait_status(&osn, "READY").await;
    let (after, _) = try_all(&osn.broadcast_url(), &envelopes(&channel, 10, 200)).await;
    assert_eq!(after.len(), 10);
    acked.extend(after);
    assert_all_once(&osn.wait_for_transactions(acked.len(), Duration::from_secs(30)).await, &acked);
}

#[actix_rt::test]
async fn with_three_brokers_one_down_keeps_ordering_and_two_down_refuse_until_they_return() {
    let channel = channel_name("isr");
    let broker = Broker::replicated(3, &channel);
    let cluster = broker.kafka.cluster();
    cluster.partition_leader(&channel, 0, Some(1)).unwrap();
    let mut spec = OsnSpec { max_message_count: 5, ..OsnSpec::new(&channel, &broker) };
    spec.kafka_extra = format!("min-insync-replicas = 2\n{FAST_KAFKA}");
    let osn = Osn::start(spec).await;
    wait_health(&osn, 200).await;
    let url = osn.broadcast_url();
    let (mut acked, _) = try_all(&url, &envelopes(&channel, 10, 200)).await;
    assert_eq!(acked.len(), 10);

    // One follower down: ordering goes on.
    cluster.broker_down(3).unwrap();
    let (more, refused) = try_all(&url, &envelopes(&channel, 10, 200)).await;
    assert_eq!(more.len(), 10, "{refused:?}");
    acked.extend(more);

    // Two down: the leader alone is fewer in-sync replicas than min.insync.replicas = 2, which a
    // Kafka broker answers with NOT_ENOUGH_REPLICAS (the mock cluster is told to).
    cluster.broker_down(2).unwrap();
    cluster.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 2000]);
    let (during, refused) = try_all(&url, &envelopes(&channel, 5, 200)).await;
    assert!(during.is_empty(), "nothing acknowledged without enough replicas");
    assert!(refused.iter().all(|i| i.contains("Kafka")), "{refused:?}");
    assert!(refused.iter().any(|i| i.contains("min.insync.replicas")), "the info says what to check: {refused:?}");
    // /healthz may first fail on the system channel alone (its partition lost brokers too);
    // the channel's own entry follows once it is ERRORED.
    let component = format!("{channel}/0");
    wait_for(&format!("/healthz 503 naming {component}"), Duration::from_secs(30), || {
        let (url, component) = (format!("{}/healthz", osn.url), component.clone());
        async move {
            let (code, body) = get_json(url).await;
            let named = body["failed_checks"].as_array().is_some_and(|c| c.iter().any(|c| c["component"] == component));
            (code == 503 && named).then_some(())
        }
    })
    .await;
    let (code, _) = broadcast(&url, &envelopes(&channel, 1, 200)[0]).await;
    assert_eq!(code, 503);

    // They return: the channel recovers by itself and nothing acknowledged is lost or duplicated.
    cluster.clear_request_errors(RDKafkaApiKey::Produce);
    cluster.broker_up(2).unwrap();
    cluster.broker_up(3).unwrap();
    wait_status(&osn, "READY").await;
    wait_health(&osn, 200).await;
    let (after, refused) = try_all(&url, &envelopes(&channel, 10, 200)).await;
    assert_eq!(after.len(), 10, "{refused:?}");
    acked.extend(after);
    assert_all_once(&osn.wait_for_transactions(acked.len(), Duration::from_secs(30)).await, &acked);
}

#[actix_rt::test]
async fn sigterm_during_a_load_loses_no_acknowledged_envelope() {
    let channel = channel_name("sigterm");
    let broker = Broker::with_topic(&channel);
    let mut osn = Osn::start(OsnSpec { max_message_count: 20, ..OsnSpec::new(&channel, &broker) }).await;
    let sent = envelopes(&channel, 3000, 300);
    let url = osn.broadcast_url();
    // Four requests in flight at a time, so the load is still going when the SIGTERM comes.
    let load = futures_util::StreamExt::collect::<Vec<_>>(futures_util::StreamExt::buffer_unordered(
        futures_util::StreamExt::map(futures_util::stream::iter(sent.iter()), |e| {
            let url = url.clone();
            async move { (e.clone(), broadcast_or_fail(&url, e).await) }
        }),
        4,
    ));
    let stop = async {
        // SIGTERM once the load is under way (some envelopes in blocks).
        wait_for("a few blocks", Duration::from_secs(30), || async { (osn.height().await > 3).then_some(()) }).await;
        osn.terminate().await
    };
    let (answers, exit) = futures_util::join!(load, stop);
    assert!(exit.success(), "a clean exit after SIGTERM: {exit}");
    let acked: Vec<Envelope> = answers.into_iter().filter(|(_, ok)| *ok).map(|(e, _)| e).collect();
    assert!(!acked.is_empty() && acked.len() < sent.len(), "the SIGTERM came during the load ({})", acked.len());
    osn.restart().await;
    assert_all_once(&osn.wait_for_transactions(acked.len(), Duration::from_secs(30)).await, &acked);
}

/// Broadcasts one envelope; whether it was acknowledged (a refused or cut-off request is not).
async fn broadcast_or_fail(url: &str, env: &Envelope) -> bool {
    let resp = client()
        .post(url)
        .insert_header(("Content-Type", "application/x-protobuf"))
        .send_body(env.encode_to_vec())
        .await;
    matches!(resp, Ok(r) if r.status() == 200)
}

#[actix_rt::test]
async fn every_metric_is_exported_and_moves_with_a_run() {
    let channel = channel_name("metrics");
    let broker = Broker::with_topic(&channel);
    let mut spec = OsnSpec { max_message_count: 5, batch_timeout: "50ms", ..OsnSpec::new(&channel, &broker) };
    spec.kafka_extra = "statistics-interval = \"200ms\"".into();
    let osn = Osn::start(spec).await;
    let before = scrape(&osn).await;
    let sent = envelopes(&channel, 23, 300);
    broadcast_all(&osn.broadcast_url(), &sent, 4).await;
    osn.wait_for_transactions(sent.len(), Duration::from_secs(30)).await;
    let (blocks, _) = deliver(&osn.url, &channel, &seek_range(0, 2), 10).await;
    assert_eq!(blocks.len(), 3);
    // librdkafka's statistics arrive every 200 ms; its rates are over the last interval, so the
    // producer is kept busy while waiting for them.
    let mut extra = 0;
    let after = wait_for("librdkafka statistics", Duration::from_secs(10), || {
        extra += 1;
        let url = osn.broadcast_url();
        let env = envelopes(&channel, 1, 300).remove(0);
        let osn = &osn;
        async move {
            broadcast(&url, &env).await;
            let s = scrape(osn).await;
            (total(&s, "consensus_kafka_request_rate", None) > 0.0
                && total(&s, "consensus_kafka_outgoing_byte_rate", None) > 0.0)
                .then_some(s)
        }
    })
    .await;
    let ch = Some(channel.as_str());
    // Counters and histogram counts that must have grown with the run.
    for (family, scope) in [
        ("broadcast_processed_count", ch),
        ("broadcast_validate_duration_count", ch),
        ("broadcast_enqueue_duration_count", ch),
        ("blockcutter_block_fill_duration_count", ch),
        ("deliver_streams_opened", None),
        ("deliver_streams_closed", None),
        ("deliver_requests_received", ch),
        ("deliver_requests_completed", ch),
        ("deliver_blocks_sent", ch),
        ("ledger_blockchain_height", ch),
        ("ledger_blockstorage_commit_time_count", ch),
        ("consensus_kafka_last_offset_persisted", ch),
        ("osn_channel_messages_handled_total", ch),
        ("osn_channel_handler_duration_seconds_count", ch),
        ("osn_channel_blocks_cut_total", ch),
        ("osn_channel_time_to_cut_total", ch),
        ("osn_kafka_produce_latency_seconds_count", ch),
        ("osn_verify_duration_seconds_count", None),
    ] {
        let (b, a) = (total(&before, family, scope), total(&after, family, scope));
        assert!(a > b, "{family} did not move: {b} → {a}");
    }
    let processed = total(&after, "broadcast_processed_count", ch) - total(&before, "broadcast_processed_count", ch);
    assert_eq!(processed, (23 + extra) as f64);
    assert!(after.keys().any(|k| k.contains("broadcast_processed_count")
        && k.contains("status=\"SUCCESS\"")
        && k.contains("type=\"ENDORSER_TRANSACTION\"")));
    assert!(after
        .keys()
        .any(|k| k.starts_with("osn_channel_blocks_cut_total") && k.contains("reason=\"max_message_count\"")));
    // Gauges that exist.
    for family in [
        "osn_channel_status",
        "osn_channel_mailbox_depth",
        "osn_channel_mailbox_capacity",
        "osn_channel_config_sequence",
        "osn_kafka_consumer_lag",
        "osn_deliver_websocket_subscribers",
        "consensus_kafka_outgoing_byte_rate",
        "consensus_kafka_incoming_byte_rate",
        "consensus_kafka_request_size",
        "consensus_kafka_request_latency",
        "consensus_kafka_response_rate",
        "consensus_kafka_response_size",
        "consensus_kafka_batch_size",
        "consensus_kafka_record_send_rate",
        "consensus_kafka_records_per_request",
        "osn_channel_commits_pending",
        "osn_process_cpu_seconds",
        "osn_verify_ecdsa_key_tables",
    ] {
        assert!(after.keys().any(|k| k.split('{').next() == Some(family)), "{family} is missing");
    }
    // The run's ECDSA client signed more than a few envelopes as a member: its key has a table.
    assert!(total(&after, "osn_verify_ecdsa_key_tables", None) >= 1.0);
    // The CPU by part: each part there, the actors' and the ledger's used, none more than the whole.
    let process_cpu = total(&after, "process_cpu_seconds_total", None);
    for part in osn::metrics::CPU_PARTS {
        let key = format!("osn_process_cpu_seconds{{part=\"{part}\"}}");
        let secs = *after.get(&key).unwrap_or_else(|| panic!("{key} is missing"));
        assert!((0.0..=process_cpu + 0.01).contains(&secs), "{key} {secs} of {process_cpu}");
    }
    assert!(after[r#"osn_process_cpu_seconds{part="osn"}"#] > 0.0);
    // Every block the run cut was written: nothing is left with the ledger's writer.
    let osn_ref = &osn;
    wait_for("no commit pending", Duration::from_secs(10), || async move {
        (total(&scrape(osn_ref).await, "osn_channel_commits_pending", ch) == 0.0).then_some(())
    })
    .await;
    assert_eq!(total(&after, "osn_channel_status", ch), 1.0, "READY");
    assert_eq!(total(&after, "osn_channel_mailbox_capacity", ch), 4096.0);
    let height = total(&after, "ledger_blockchain_height", ch);
    assert!(height >= 6.0 && height <= osn.height().await as f64, "ledger_blockchain_height {height}");
}

/// Issue 18: an idle channel through a 4 s broker outage. Its consumer has nothing to deliver
/// once the broker is back, so no record ends the consumer's trouble; its statistics showing it
/// connected again do, before `kafka.error-timeout` (10 s). The channel stays READY throughout,
/// `/readyz` stays 200 once the broker answers, and it orders again. (It used to go ERRORED 10 s
/// after the outage began, long after the broker was back, until a probe answered.)
#[actix_rt::test]
async fn an_idle_channel_stays_ready_through_a_short_broker_outage() {
    let channel = channel_name("idle-outage");
    let broker = Broker::with_topic(&channel);
    let mut spec = OsnSpec { max_message_count: 5, ..OsnSpec::new(&channel, &broker) };
    spec.kafka_extra = "error-timeout = \"10s\"\nstatistics-interval = \"500ms\"\n".into();
    let osn = Osn::start(spec).await;
    let (mut acked, _) = try_all(&osn.broadcast_url(), &envelopes(&channel, 5, 200)).await;
    assert_eq!(acked.len(), 5);
    osn.wait_for_transactions(5, Duration::from_secs(30)).await;

    let down = std::time::Instant::now();
    broker.kafka.cluster().broker_down(1).unwrap();
    // The fault itself: an outage of 4 s (not a wait for anything).
    actix_rt::time::sleep(Duration::from_secs(4)).await;
    broker.kafka.cluster().broker_up(1).unwrap();
    // Until 14 s after the outage began (4 s past the error timeout): READY at every look.
    let info_url = format!("{}/v1/channels/{channel}", osn.url);
    while down.elapsed() < Duration::from_secs(14) {
        let (_, info) = get_json(info_url.clone()).await;
        assert_eq!(info["status"], "READY", "{:.1}s after the outage began: {info}", down.elapsed().as_secs_f64());
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, ready) = get_json(format!("{}/readyz", osn.url)).await;
    assert_eq!(code, 200, "{ready}");
    // Not even for a moment between two looks: the log has no errored channel.
    assert!(!osn.log().contains("the channel is errored"), "a channel was errored:\n{}", osn.log_tail());
    let (after, refused) = try_all(&osn.broadcast_url(), &envelopes(&channel, 5, 200)).await;
    assert_eq!(after.len(), 5, "{refused:?}");
    acked.extend(after);
    assert_all_once(&osn.wait_for_transactions(acked.len(), Duration::from_secs(30)).await, &acked);
}

/// Issue 18: a client library call that never returns (`OSN_STALL_AT=kafka.topic-check`, a
/// debug-only fault point that blocks the thread asking librdkafka whether a channel's topic
/// exists). Start-up says what it waits for and retries past it, so the channels become READY;
/// and SIGTERM still ends the process within `node::SHUTDOWN_BOUND` (20 s), saying why, though the
/// blocked thread would keep the runtime from exiting. (Start-up used to wait for the check with
/// no log line, and the process to log "OSN stopped" and never exit.)
#[actix_rt::test]
async fn a_stuck_client_library_call_is_reported_retried_and_does_not_hold_shutdown() {
    let channel = channel_name("stuck");
    let broker = Broker::with_topic(&channel);
    let mut spec = OsnSpec::new(&channel, &broker);
    spec.kafka_extra = "[kafka.retry]\nshort-interval = \"200ms\"\n".into();
    spec.env.push(("OSN_STALL_AT", "kafka.topic-check".into()));
    let mut osn = Osn::start(spec).await;
    let log = osn.log();
    assert!(log.contains("OSN_STALL_AT: fault point kafka.topic-check reached"), "{}", osn.log_tail());
    assert!(
        log.contains("librdkafka has not said whether the topic exists within 5s (kafka.connect-timeout)"),
        "start-up says what it waited for:\n{}",
        osn.log_tail()
    );
    let (acked, _) = try_all(&osn.broadcast_url(), &envelopes(&channel, 3, 200)).await;
    assert_eq!(acked.len(), 3);

    let started = std::time::Instant::now();
    let pid = osn.pid();
    let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let status = osn.wait_exit(Duration::from_secs(40)).await;
    let took = started.elapsed();
    eprintln!("reliability: stuck client library call: SIGTERM to exit {:.1} s, {status}", took.as_secs_f64());
    assert!(took < osn::node::SHUTDOWN_BOUND + Duration::from_secs(5), "exited after {took:?}");
    assert_eq!(status.code(), Some(1), "the bound's exit: {status}");
    assert!(osn.log().contains("shutdown did not finish in time"), "{}", osn.log_tail());
}

/// Issue 18: the process frozen (SIGSTOP) for 10 s while a request waits on a keep-alive
/// connection. Resumed, it answers that request (`http.keep-alive`, 75 s by default, outlasts the
/// pause). (With actix's default of 5 s it closed the connection unanswered: a client cannot tell
/// whether a POST it sent that way was carried out.)
#[actix_rt::test]
async fn a_request_waiting_through_a_freeze_is_answered() {
    use crate::harness::raw_ws::read_answer;
    use tokio::io::AsyncWriteExt;
    let channel = channel_name("freeze");
    let broker = Broker::with_topic(&channel);
    let osn = Osn::start(OsnSpec::new(&channel, &broker)).await;
    let addr = osn.url.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!("GET /v1/channels/{channel} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut tcp).await.map(|(code, _)| code), Ok(200));

    let pid = osn.pid().to_string();
    let signal = |sig: &str| std::process::Command::new("kill").args([sig, &pid]).status().unwrap();
    assert!(signal("-STOP").success());
    tcp.write_all(request.as_bytes()).await.unwrap();
    // The fault itself: a freeze of 10 s, twice actix's former keep-alive.
    actix_rt::time::sleep(Duration::from_secs(10)).await;
    assert!(signal("-CONT").success());
    let answer = tokio::time::timeout(Duration::from_secs(10), read_answer(&mut tcp)).await;
    assert_eq!(answer.map(|a| a.map(|(code, _)| code)), Ok(Ok(200)), "the request sent during the freeze");
    // And the node goes on: the channel still orders.
    let (acked, _) = try_all(&osn.broadcast_url(), &envelopes(&channel, 3, 200)).await;
    assert_eq!(acked.len(), 3);
}

/// `/healthz` lists the Kafka cluster's settings against Fabric's guide as warnings (the status
/// stays OK): on tansu, which answers DescribeConfigs, what its topics and broker say; on the mock
/// cluster, which does not, that they are not checked.
#[actix_rt::test]
async fn healthz_warns_of_kafka_settings_against_fabrics_guide() {
    let warnings = |osn: &Osn| {
        let url = format!("{}/healthz", osn.operations_url);
        async move {
            let mut resp = client().get(url).send().await.ok()?;
            let body: serde_json::Value = resp.json().await.ok()?;
            let list = body["warnings"].as_array()?.clone();
            (!list.is_empty()).then_some((body["status"].clone(), list))
        }
    };
    let channel = channel_name("settings");
    let broker = Broker::with_topic(&channel);
    let osn = Osn::start(OsnSpec::new(&channel, &broker)).await;
    let (status, list) = wait_for("/healthz's warnings", Duration::from_secs(30), || warnings(&osn)).await;
    assert_eq!(status, "OK", "warnings do not fail the check");
    assert_eq!(list[0]["component"], "kafka-settings", "{list:?}");
    assert!(list[0]["reason"].as_str().unwrap().starts_with("not checked:"), "{list:?}");

    let tansu = Tansu::start();
    let channel = channel_name("settings-tansu");
    let osn = Osn::start(OsnSpec::on(&channel, tansu.servers())).await;
    let (_, list) = wait_for("/healthz's warnings on tansu", Duration::from_secs(30), || warnings(&osn)).await;
    let reasons: Vec<&str> = list.iter().map(|w| w["reason"].as_str().unwrap()).collect();
    assert!(list.iter().all(|w| w["component"] == "kafka-settings"), "{list:?}");
    // One broker: every topic's single replica is as many as there are brokers.
    assert!(reasons.iter().any(|r| r.starts_with("topic osn-system: 1 replicas on 1 broker(s)")), "{reasons:#?}");
    // The topics OSN creates have unclean elections off and retention.ms -1: nothing said of them.
    assert!(!reasons.iter().any(|r| r.contains("retention.ms") || r.contains("unclean")), "{reasons:#?}");
}
