//! Fabric's transport: `orderer.AtomicBroadcast` over gRPC, driven by a tonic client generated
//! from the same protos, against `osn start` processes on the mock cluster. Broadcast answers
//! each envelope in order and ends its stream after the first answer that is not SUCCESS;
//! Deliver serves SeekInfo after SeekInfo on one stream, follows a channel forever with
//! MaxUint64, and checks what Fabric checks (Readers, the time window, TLS binding).

use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use osn::cli::client::{seek_request, transaction};
use osn::core::seek::{newest, oldest, specified};
use osn::identity::envelope::{payload, sign};
use osn::identity::SigningIdentity;
use osn::proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use osn::proto::orderer::deliver_response::Type;
use osn::proto::orderer::seek_info::SeekBehavior;
use osn::proto::{Block, BroadcastResponse, ChannelHeader, DeliverResponse, Envelope, HeaderType, SeekInfo, Status};
use prost::Message as _;
use tokio::sync::mpsc;
use tonic::transport::Channel;

use crate::harness::*;

/// A client of the OSN's gRPC listener, in plaintext, pinging every second with or without a
/// stream open (Fabric's clients ping every 60 s, idle or not: the server must not count either as
/// abuse).
async fn connect(osn: &Osn) -> AtomicBroadcastClient<Channel> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", osn.grpc_addr))
        .unwrap()
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_while_idle(true);
    AtomicBroadcastClient::new(endpoint.connect().await.expect("gRPC connection"))
}

/// A request stream the test writes to as it goes.
fn requests() -> (mpsc::Sender<Envelope>, impl Stream<Item = Envelope> + Send + 'static) {
    let (tx, rx) = mpsc::channel(64);
    (tx, futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) }))
}

/// Broadcasts `envelopes` on one stream (all sent at once, the client half-closing after them);
/// every answer until the server ends the stream.
async fn broadcast_stream(
    client: &mut AtomicBroadcastClient<Channel>,
    envelopes: Vec<Envelope>,
) -> Vec<BroadcastResponse> {
    let mut answers = client.broadcast(futures_util::stream::iter(envelopes)).await.expect("Broadcast").into_inner();
    let mut out = Vec::new();
    while let Some(answer) =
        tokio::time::timeout(Duration::from_secs(30), answers.next()).await.expect("an answer within 30 s")
    {
        out.push(answer.expect("answers, not a gRPC error"));
    }
    out
}

fn seek(start: u64, stop: u64) -> SeekInfo {
    SeekInfo { start: Some(specified(start)), stop: Some(specified(stop)), ..Default::default() }
}

/// What a Deliver stream sent: the blocks, then the status (if one came before `limit` blocks).
async fn next_answer(answers: &mut tonic::Streaming<DeliverResponse>) -> Option<DeliverResponse> {
    tokio::time::timeout(Duration::from_secs(30), answers.next())
        .await
        .expect("a Deliver answer within 30 s")
        .map(|r| r.expect("answers, not a gRPC error"))
}

/// Reads blocks until a status: the blocks and the status (None: the stream ended without one).
async fn blocks_then_status(answers: &mut tonic::Streaming<DeliverResponse>) -> (Vec<Block>, Option<(Status, String)>) {
    let mut blocks = Vec::new();
    while let Some(answer) = next_answer(answers).await {
        match answer.r#type {
            Some(Type::Block(b)) => blocks.push(b),
            Some(Type::Status(s)) => return (blocks, Some((Status::try_from(s).unwrap(), answer.info))),
            None => panic!("an empty DeliverResponse"),
        }
    }
    (blocks, None)
}

/// One Deliver request on a new stream: its blocks and final status.
async fn deliver_once(
    client: &mut AtomicBroadcastClient<Channel>,
    request: Envelope,
) -> (Vec<Block>, Option<(Status, String)>) {
    let (tx, stream) = requests();
    tx.send(request).await.unwrap();
    let mut answers = client.deliver(stream).await.expect("Deliver").into_inner();
    let out = blocks_then_status(&mut answers).await;
    drop(tx);
    out
}

/// A DELIVER_SEEK_INFO envelope whose channel header has been changed by `edit` before signing.
fn seek_edited(
    signer: &SigningIdentity,
    channel: &str,
    info: &SeekInfo,
    edit: impl FnOnce(&mut ChannelHeader),
) -> Envelope {
    let mut p = payload(signer, channel, HeaderType::DeliverSeekInfo, info.encode_to_vec().into());
    let header = p.header.as_mut().unwrap();
    let mut channel_header = ChannelHeader::decode(header.channel_header.clone()).unwrap();
    edit(&mut channel_header);
    header.channel_header = channel_header.encode_to_vec().into();
    sign(signer, &p)
}

/// The envelopes of a chain's blocks after the genesis block.
fn ordered(chain: &[Block]) -> Vec<Bytes> {
    chain.iter().skip(1).flat_map(|b| b.data.as_ref().unwrap().data.clone()).collect()
}

#[actix_rt::test]
async fn broadcast_answers_every_envelope_in_order_and_deliver_serves_request_after_request() {
    let channel = channel_name("grpc");
    let broker = Broker::with_topic(&channel);
    let osn = Osn::start(OsnSpec { max_message_count: 10, ..OsnSpec::new(&channel, &broker) }).await;
    let mut client = connect(&osn).await;

    // 200 envelopes on one stream, pipelined: 200 SUCCESS, one each, and the stream ends OK.
    let sent = envelopes(&channel, 200, 300);
    let answers = broadcast_stream(&mut client, sent.clone()).await;
    assert_eq!(answers.len(), 200);
    assert!(
        answers.iter().all(|a| a.status == Status::Success as i32),
        "{:?}",
        answers.iter().find(|a| a.status != 200)
    );
    let chain = osn.wait_for_transactions(200, Duration::from_secs(30)).await;
    assert_all_once(&chain, &sent);
    // Relayed as sent, in the stream's order.
    let in_chain = ordered(&chain);
    let sent_bytes: Vec<Bytes> = sent.iter().map(|e| e.encode_to_vec().into()).collect();
    assert_eq!(in_chain, sent_bytes);

    // Deliver: blocks 0..=3, SUCCESS, then on the same stream blocks 5..=6 and SUCCESS again.
    let (tx, stream) = requests();
    let mut answers = client.deliver(stream).await.unwrap().into_inner();
    tx.send(seek_request(&crypto().client, &channel, &seek(0, 3))).await.unwrap();
    let (blocks, status) = blocks_then_status(&mut answers).await;
    assert_eq!(blocks.iter().map(|b| b.header.as_ref().unwrap().number).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    assert_eq!(status.map(|s| s.0), Some(Status::Success));
    assert_eq!(blocks, chain[..4].to_vec(), "the blocks as stored");
    tx.send(seek_request(&crypto().client, &channel, &seek(5, 6))).await.unwrap();
    let (blocks, status) = blocks_then_status(&mut answers).await;
    assert_eq!(blocks.iter().map(|b| b.header.as_ref().unwrap().number).collect::<Vec<_>>(), vec![5, 6]);
    assert_eq!(status.map(|s| s.0), Some(Status::Success));
    // Oldest to newest, the Fabric way of reading a whole chain.
    let whole = SeekInfo { start: Some(oldest()), stop: Some(newest()), ..Default::default() };
    tx.send(seek_request(&crypto().client, &channel, &whole)).await.unwrap();
    let (blocks, status) = blocks_then_status(&mut answers).await;
    assert_eq!(blocks.len(), chain.len());
    assert_eq!(status.map(|s| s.0), Some(Status::Success));
    // The client half-closes: the stream ends without another answer.
    drop(tx);
    assert!(next_answer(&mut answers).await.is_none());

    // Idle for 3 s on a connection that pings every second: still open, and it still serves.
    // (The condition under test is the idle time itself.)
    tokio::time::sleep(Duration::from_secs(3)).await;
    let answers = broadcast_stream(&mut client, envelopes(&channel, 1, 100)).await;
    assert_eq!(answers.iter().map(|a| a.status).collect::<Vec<_>>(), vec![200]);

    // Fabric's gRPC metrics counted the streams.
    let metrics = scrape(&osn).await;
    let sample = |family: &str, labels: &str| {
        metrics
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{family}{{")) && labels.split(',').all(|l| k.contains(l)))
            .map(|(_, v)| *v)
            .sum::<f64>()
    };
    let broadcast = "method=\"Broadcast\",service=\"orderer_AtomicBroadcast\"";
    assert!(sample("grpc_server_stream_requests_received", broadcast) >= 2.0, "{metrics:?}");
    assert!(sample("grpc_server_stream_messages_received", broadcast) >= 201.0);
    assert!(sample("grpc_server_stream_messages_sent", broadcast) >= 201.0);
    assert!(sample("grpc_server_stream_requests_completed", &format!("{broadcast},code=\"OK\"")) >= 2.0);
    let deliver = "method=\"Deliver\"";
    assert!(sample("grpc_server_stream_requests_completed", &format!("{deliver},code=\"OK\"")) >= 1.0);
    assert!(sample("grpc_server_stream_messages_received", deliver) >= 3.0);
    assert!(total(&metrics, "grpc_comm_conn_opened", None) >= 1.0);
}

#[actix_rt::test]
async fn broadcast_refusals_carry_fabric_statuses_and_end_the_stream() {
    let channel = channel_name("grpc-refuse");
    let broker = Broker::with_topic(&channel);
    let osn = Osn::start(OsnSpec { absolute_max_bytes: 64 * 1024, ..OsnSpec::new(&channel, &broker) }).await;
    let mut client = connect(&osn).await;
    let good = |n| envelopes(&channel, n, 200);
    let cases: Vec<(&str, Envelope, Status, &str)> = vec![
        ("unknown channel", transaction(&crypto().client, "no-such-channel", 200), Status::NotFound, "does not exist"),
        ("an outsider's envelope", transaction(&crypto().outsider, &channel, 200), Status::Forbidden, ""),
        (
            "over AbsoluteMaxBytes",
            transaction(&crypto().client, &channel, 100 * 1024),
            Status::RequestEntityTooLarge,
            "AbsoluteMaxBytes",
        ),
        ("no payload", Envelope::default(), Status::BadRequest, "empty payload"),
        (
            "a CONFIG envelope",
            sign(&crypto().client, &payload(&crypto().client, &channel, HeaderType::Config, Bytes::new())),
            Status::BadRequest,
            "ordered by OSNs only",
        ),
        (
            "a payload that is not one",
            Envelope { payload: Bytes::from_static(b"\xff\xff\xff"), signature: Bytes::new() },
            Status::BadRequest,
            "does not decode",
        ),
    ];
    for (what, bad, status, info) in cases {
        // Three good ones, the bad one, three more: three SUCCESS, the refusal, and the end.
        let before = good(3);
        let after = good(3);
        let stream: Vec<Envelope> = before.iter().cloned().chain([bad]).chain(after.iter().cloned()).collect();
        let answers = broadcast_stream(&mut client, stream).await;
        let statuses: Vec<i32> = answers.iter().map(|a| a.status).collect();
        assert_eq!(statuses, vec![200, 200, 200, status as i32], "{what}: {answers:?}");
        assert!(answers[3].info.contains(info), "{what}: {:?}", answers[3].info);
        // Nothing after the refused envelope was relayed.
        let chain = osn.chain().await;
        let in_chain = ordered(&chain);
        for env in &after {
            assert!(
                !in_chain.contains(&Bytes::from(env.encode_to_vec())),
                "{what}: an envelope after the refusal was ordered"
            );
        }
    }
}

#[actix_rt::test]
async fn deliver_checks_what_fabric_checks_and_follows_the_channel_forever() {
    let channel = channel_name("grpc-deliver");
    let broker = Broker::with_topic(&channel);
    let osn = Osn::start(OsnSpec { max_message_count: 5, ..OsnSpec::new(&channel, &broker) }).await;
    let mut client = connect(&osn).await;
    let sent = envelopes(&channel, 10, 200);
    assert!(broadcast_stream(&mut client, sent.clone()).await.iter().all(|a| a.status == 200));
    osn.wait_for_transactions(10, Duration::from_secs(30)).await;
    let c = &crypto().client;

    let refusals: Vec<(&str, Envelope, Status)> = vec![
        ("unknown channel", seek_request(c, "no-such-channel", &seek(0, 0)), Status::NotFound),
        ("a reader outside the channel", seek_request(&crypto().outsider, &channel, &seek(0, 0)), Status::Forbidden),
        (
            "a timestamp an hour old",
            seek_edited(c, &channel, &seek(0, 0), |h| {
                h.timestamp.as_mut().unwrap().seconds -= 3600;
            }),
            Status::BadRequest,
        ),
        ("stop before start", seek_request(c, &channel, &seek(2, 1)), Status::BadRequest),
        (
            "FAIL_IF_NOT_READY past the height",
            seek_request(c, &channel, &SeekInfo { behavior: SeekBehavior::FailIfNotReady as i32, ..seek(0, 100) }),
            Status::NotFound,
        ),
        ("a broadcast envelope", transaction(c, &channel, 100), Status::BadRequest),
    ];
    for (what, request, want) in refusals {
        let (blocks, status) = deliver_once(&mut client, request).await;
        let (status, info) = status.unwrap_or_else(|| panic!("{what}: no status"));
        assert_eq!(status, want, "{what}: {info}");
        assert!(!info.is_empty(), "{what}: the status says why");
        if want != Status::NotFound || what.contains("channel") {
            assert!(blocks.is_empty(), "{what}: no block before the refusal");
        }
    }

    // MaxUint64: the blocks there are, then each new one as it is cut; a config change on the
    // way does not end the stream.
    let (tx, stream) = requests();
    let mut answers = client.deliver(stream).await.unwrap().into_inner();
    let forever = SeekInfo { start: Some(oldest()), stop: Some(specified(u64::MAX)), ..Default::default() };
    tx.send(seek_request(c, &channel, &forever)).await.unwrap();
    let height = osn.height().await;
    let mut got = Vec::new();
    while (got.len() as u64) < height {
        match next_answer(&mut answers).await.and_then(|a| a.r#type) {
            Some(Type::Block(b)) => got.push(b),
            other => panic!("{other:?}"),
        }
    }
    // The change itself over Broadcast, as `peer channel update` sends it: a CONFIG_UPDATE
    // computed from the configuration in force, signed by the orderer organisation's admin
    // (BatchSize's mod_policy), answered once in force.
    let current = config_of(&osn, &channel).await;
    let mut next = current.clone();
    with_max_message_count(&mut next, 3);
    let three = osn::core::configtx::compute_update(&channel, &current, &next).unwrap();
    let update = osn::identity::envelope::config_update(&crypto().orderer_admin, &three, &[]);
    let applied = broadcast_stream(&mut client, vec![update]).await;
    assert_eq!(applied.iter().map(|a| a.status).collect::<Vec<_>>(), vec![200], "{applied:?}");
    let more = envelopes(&channel, 6, 200);
    assert!(broadcast_stream(&mut client, more).await.iter().all(|a| a.status == 200));
    // The config block and two blocks of three.
    for _ in 0..3 {
        match next_answer(&mut answers).await.and_then(|a| a.r#type) {
            Some(Type::Block(b)) => got.push(b),
            other => panic!("{other:?}"),
        }
    }
    let numbers: Vec<u64> = got.iter().map(|b| b.header.as_ref().unwrap().number).collect();
    assert_eq!(numbers, (0..height + 3).collect::<Vec<_>>());
    drop(tx);
}

/// TLS from `[grpc.tls]`; with `client-ca-file`, mutual TLS, and Deliver bound to the client's
/// certificate by `tls_cert_hash` as Fabric binds it: missing or forged, 400.
#[actix_rt::test]
async fn grpc_over_tls_and_mutual_tls_binds_deliver_to_the_client_certificate() {
    use sha2::Digest as _;
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let channel = channel_name("grpc-tls");
    let broker = Broker::with_topic(&channel);
    let mut pki = TestPki::generate();
    pki.require_client_certs = true;
    let osn = Osn::start(OsnSpec { grpc_tls: Some(pki.clone()), ..OsnSpec::new(&channel, &broker) }).await;
    let read = |p: &std::path::Path| std::fs::read(p).unwrap();
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(&pki.ca_file))).domain_name("localhost");
    let url = format!("https://{}", osn.grpc_addr);

    // Without a client certificate the handshake fails.
    let anonymous = Endpoint::from_shared(url.clone()).unwrap().tls_config(tls.clone()).unwrap().connect().await;
    let refused = match anonymous {
        Err(_) => true,
        Ok(channel_) => {
            let mut c = AtomicBroadcastClient::new(channel_);
            c.broadcast(futures_util::stream::iter(envelopes(&channel, 1, 100))).await.is_err()
        }
    };
    assert!(refused, "a client without a certificate is refused");

    let identity = Identity::from_pem(read(&pki.client_cert_file), read(&pki.client_key_file));
    let endpoint = Endpoint::from_shared(url).unwrap().tls_config(tls.identity(identity)).unwrap();
    let mut client = AtomicBroadcastClient::new(endpoint.connect().await.expect("mutual TLS"));
    let sent = envelopes(&channel, 5, 200);
    assert!(broadcast_stream(&mut client, sent).await.iter().all(|a| a.status == 200));
    osn.wait_for_transactions(5, Duration::from_secs(30)).await;

    let der = rustls_pki_types::pem::PemObject::from_pem_file(&pki.client_cert_file)
        .map(|c: rustls_pki_types::CertificateDer<'static>| c)
        .unwrap();
    let hash = sha2::Sha256::digest(der.as_ref()).to_vec();
    let c = &crypto().client;
    let bound = seek_edited(c, &channel, &seek(0, 1), |h| h.tls_cert_hash = hash.clone().into());
    let (blocks, status) = deliver_once(&mut client, bound).await;
    assert_eq!((blocks.len(), status.map(|s| s.0)), (2, Some(Status::Success)));
    let unbound = seek_request(c, &channel, &seek(0, 1));
    let (blocks, status) = deliver_once(&mut client, unbound).await;
    let (status, info) = status.unwrap();
    assert_eq!((blocks.len(), status), (0, Status::BadRequest), "{info}");
    assert!(info.contains("tls_cert_hash"), "{info}");
    let forged = seek_edited(c, &channel, &seek(0, 1), |h| h.tls_cert_hash = vec![7u8; 32].into());
    let (blocks, status) = deliver_once(&mut client, forged).await;
    let (status, info) = status.unwrap();
    assert_eq!((blocks.len(), status), (0, Status::BadRequest), "{info}");
}

/// Node's `fabric-common` (Fabric's Node SDK 2.2) and a `@grpc/grpc-js` client of the published
/// Fabric protos (installed by `scripts/install-node-clients`, which `scripts/test` runs), which
/// nobody here wrote: the SDK's Committer broadcasts envelopes signed by an identity of the
/// channel's organisation, one stream each as the SDK sends them, and every answer is SUCCESS;
/// the grpc-js Deliver client reads the blocks back with two requests on one stream, and finds
/// every transaction ID, in order.
#[actix_rt::test]
async fn fabric_sdk_committer_broadcasts_and_a_grpc_js_client_delivers() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let installed = std::process::Command::new(root.join("scripts/install-node-clients")).status().unwrap();
    assert!(installed.success(), "scripts/install-node-clients failed");
    let out = std::process::Command::new(root.join("scripts/install-node-clients")).arg("--path").output().unwrap();
    let dir = std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());

    let channel = channel_name("grpc-node");
    let broker = Broker::with_topic(&channel);
    let osn = Osn::start(OsnSpec { max_message_count: 4, ..OsnSpec::new(&channel, &broker) }).await;
    let identity = crypto().org1.join("identities").join("client");
    let (cert, key) = (identity.join("signcerts/cert.pem"), identity.join("keystore/key.pem"));
    let node = |script: &str, extra: &[&str]| {
        let (dir, addr, channel) = (dir.clone(), osn.grpc_addr.clone(), channel.clone());
        let mut args = vec![script.to_owned(), addr, channel, "Org1MSP".into()];
        args.push(cert.display().to_string());
        args.push(key.display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        async move {
            let shown = args.join(" ");
            let out = actix_rt::task::spawn_blocking(move || {
                std::process::Command::new("node").args(&args).current_dir(&dir).output().unwrap()
            })
            .await
            .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "node {shown}: {stderr}");
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
        }
    };
    let sent = node("committer.js", &["10"]).await;
    let sent = sent.as_array().unwrap();
    assert_eq!(sent.len(), 10);
    assert!(sent.iter().all(|r| r["status"] == "SUCCESS"), "{sent:?}");
    let tx_ids: Vec<&str> = sent.iter().map(|r| r["tx_id"].as_str().unwrap()).collect();

    osn.wait_for_transactions(10, Duration::from_secs(30)).await;
    let height = osn.height().await;
    let read = node("deliver.js", &["0", &(height - 1).to_string()]).await;
    assert_eq!(read["statuses"], serde_json::json!([200, 200]), "{read}");
    let blocks = read["blocks"].as_array().unwrap();
    let numbers: Vec<u64> = blocks.iter().map(|b| b["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, (0..height).collect::<Vec<_>>());
    let delivered: Vec<&str> =
        blocks.iter().skip(1).flat_map(|b| b["tx_ids"].as_array().unwrap()).map(|t| t.as_str().unwrap()).collect();
    assert_eq!(delivered, tx_ids);
}

/// A Deliver client that stops reading holds only its own stream: the channel goes on ordering,
/// another subscriber reads every block meanwhile, and when the slow one reads again it gets
/// every block it asked for, in order (the subscription waits for it, reading the ledger at its
/// pace, and buffers a few blocks, not the chain).
#[actix_rt::test]
async fn a_deliver_client_that_stops_reading_slows_nobody() {
    let channel = channel_name("grpc-slow");
    let broker = Broker::with_topic(&channel);
    let osn = Osn::start(OsnSpec { max_message_count: 10, ..OsnSpec::new(&channel, &broker) }).await;
    let mut client = connect(&osn).await;
    let forever = SeekInfo { start: Some(oldest()), stop: Some(specified(u64::MAX)), ..Default::default() };
    let (slow_tx, stream) = requests();
    slow_tx.send(seek_request(&crypto().client, &channel, &forever)).await.unwrap();
    let mut slow = client.deliver(stream).await.unwrap().into_inner();
    // It reads the genesis block, then nothing while 2,000 envelopes (200 blocks) are ordered.
    assert!(matches!(next_answer(&mut slow).await.and_then(|a| a.r#type), Some(Type::Block(_))));
    let sent = envelopes(&channel, 2000, 1000);
    let answers = broadcast_stream(&mut connect(&osn).await, sent.clone()).await;
    assert!(answers.len() == 2000 && answers.iter().all(|a| a.status == 200));
    let chain = osn.wait_for_transactions(2000, Duration::from_secs(60)).await;
    let (blocks, status) = deliver_once(
        &mut connect(&osn).await,
        seek_request(&crypto().client, &channel, &seek(0, chain.len() as u64 - 1)),
    )
    .await;
    assert_eq!(
        (blocks.len(), status.map(|s| s.0)),
        (chain.len(), Some(Status::Success)),
        "another subscriber meanwhile"
    );
    // The slow one reads on: every block after the genesis, in order.
    let mut numbers = vec![0];
    while numbers.len() < chain.len() {
        match next_answer(&mut slow).await.and_then(|a| a.r#type) {
            Some(Type::Block(b)) => numbers.push(b.header.unwrap().number),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(numbers, (0..chain.len() as u64).collect::<Vec<_>>());
    drop(slow_tx);
}

/// With the broker down: Broadcast answers 503 naming Kafka (and ends the stream); a STRICT
/// Deliver is refused 503 while a BEST_EFFORT one reads the blocks there are; back up, both serve
/// again without a restart.
#[actix_rt::test]
async fn while_kafka_is_down_broadcast_is_503_strict_deliver_is_503_and_best_effort_reads() {
    use osn::proto::orderer::seek_info::SeekErrorResponse;
    let channel = channel_name("grpc-down");
    let broker = Broker::with_topic(&channel);
    let spec = OsnSpec { max_message_count: 5, kafka_extra: FAST_KAFKA.into(), ..OsnSpec::new(&channel, &broker) };
    let osn = Osn::start(spec).await;
    let mut client = connect(&osn).await;
    assert!(broadcast_stream(&mut client, envelopes(&channel, 10, 200)).await.iter().all(|a| a.status == 200));
    osn.wait_for_transactions(10, Duration::from_secs(30)).await;

    broker.kafka.cluster().broker_down(1).unwrap();
    let refused = wait_for("a broadcast refused 503", Duration::from_secs(30), || {
        let mut client = client.clone();
        let channel = channel.clone();
        async move {
            let answers = broadcast_stream(&mut client, envelopes(&channel, 3, 200)).await;
            answers.last().filter(|a| a.status == Status::ServiceUnavailable as i32).cloned()
        }
    })
    .await;
    assert!(refused.info.contains("Kafka"), "{refused:?}");
    let strict = seek_request(&crypto().client, &channel, &seek(0, 1));
    let best_effort = SeekInfo { error_response: SeekErrorResponse::BestEffort as i32, ..seek(0, 1) };
    let best_effort = seek_request(&crypto().client, &channel, &best_effort);
    let (blocks, status) = deliver_once(&mut client, strict.clone()).await;
    let (status, info) = status.unwrap();
    assert_eq!((blocks.len(), status), (0, Status::ServiceUnavailable), "{info}");
    let (blocks, status) = deliver_once(&mut client, best_effort).await;
    assert_eq!((blocks.len(), status.map(|s| s.0)), (2, Some(Status::Success)));

    broker.kafka.cluster().broker_up(1).unwrap();
    wait_for("broadcasts acknowledged again", Duration::from_secs(60), || {
        let mut client = client.clone();
        let channel = channel.clone();
        async move {
            let answers = broadcast_stream(&mut client, envelopes(&channel, 1, 200)).await;
            answers.iter().all(|a| a.status == 200).then_some(())
        }
    })
    .await;
    let (blocks, status) = deliver_once(&mut client, seek_request(&crypto().client, &channel, &seek(0, 1))).await;
    assert_eq!((blocks.len(), status.map(|s| s.0)), (2, Some(Status::Success)));
}

/// TLS without client authentication: a client trusting the CA broadcasts and delivers, with no
/// `tls_cert_hash` needed (Fabric checks the binding only under mutual TLS); a plaintext client
/// gets nowhere.
#[actix_rt::test]
async fn grpc_over_server_only_tls_needs_no_binding() {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
    let channel = channel_name("grpc-tls1");
    let broker = Broker::with_topic(&channel);
    let pki = TestPki::generate();
    let osn = Osn::start(OsnSpec { grpc_tls: Some(pki.clone()), ..OsnSpec::new(&channel, &broker) }).await;
    let ca = Certificate::from_pem(std::fs::read(&pki.ca_file).unwrap());
    let tls = ClientTlsConfig::new().ca_certificate(ca).domain_name("localhost");
    let endpoint = Endpoint::from_shared(format!("https://{}", osn.grpc_addr)).unwrap().tls_config(tls).unwrap();
    let mut client = AtomicBroadcastClient::new(endpoint.connect().await.expect("TLS"));
    assert!(broadcast_stream(&mut client, envelopes(&channel, 3, 200)).await.iter().all(|a| a.status == 200));
    osn.wait_for_transactions(3, Duration::from_secs(30)).await;
    let (blocks, status) = deliver_once(&mut client, seek_request(&crypto().client, &channel, &seek(0, 0))).await;
    assert_eq!((blocks.len(), status.map(|s| s.0)), (1, Some(Status::Success)));
    let plaintext = Endpoint::from_shared(format!("http://{}", osn.grpc_addr)).unwrap().connect().await;
    let refused = match plaintext {
        Err(_) => true,
        Ok(channel_) => AtomicBroadcastClient::new(channel_)
            .broadcast(futures_util::stream::iter(envelopes(&channel, 1, 100)))
            .await
            .is_err(),
    };
    assert!(refused, "a plaintext client is refused");
}
