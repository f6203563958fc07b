//! Channel lifecycle on three OSNs: channels created through the system channel, config updates
//! applied at the same block everywhere, and revalidation of records enqueued under an older
//! configuration.

use std::time::Duration;

use osn::cli::channel::ChannelCreate;
use osn::identity::SigningIdentity;
use osn::proto::{kafka_message_regular::Class, Block, Envelope, KafkaMessage};
use prost::Message as _;

use crate::harness::*;

fn org2_admin() -> &'static SigningIdentity {
    &crypto().admin2
}

/// A network whose channels cut at 40 envelopes or 100 ms, with a channel limit.
fn network(broker: &Broker, max_channels: u64) -> OsnSpec {
    OsnSpec { max_channels, max_message_count: 40, batch_timeout: "100ms", ..OsnSpec::system_only(broker) }
}

async fn three(broker: &Broker, max_channels: u64) -> Vec<Osn> {
    let mut osns = Vec::new();
    for n in 0..3 {
        osns.push(Osn::start(OsnSpec { osn_identity: n, ..network(broker, max_channels) }).await);
    }
    osns
}

fn channel(name: &str, orgs: &[&str]) -> ChannelCreate {
    ChannelCreate {
        channel: name.into(),
        organizations: orgs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// The number of the one config block after genesis (a block that is its own LAST_CONFIG).
fn config_block(chain: &[Block]) -> usize {
    let blocks: Vec<usize> = chain
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(n, b)| osn::core::block::last_config(b) == Some(*n as u64))
        .map(|(n, _)| n)
        .collect();
    assert_eq!(blocks.len(), 1, "one config block: {blocks:?}");
    assert_eq!(chain[blocks[0]].data.as_ref().unwrap().data.len(), 1, "a config update is alone in its block");
    blocks[0]
}

fn creator_msp(envelope: &[u8]) -> String {
    let env = Envelope::decode(envelope).unwrap();
    let payload = osn::proto::Payload::decode(env.payload).unwrap();
    let sh = osn::proto::SignatureHeader::decode(payload.header.unwrap().signature_header).unwrap();
    osn::proto::msp::SerializedIdentity::decode(sh.creator).unwrap().mspid
}

#[actix_rt::test]
async fn channels_created_through_one_osn_appear_on_all_three_with_identical_genesis_blocks() {
    let broker = Broker::start();
    let mut osns = Vec::new();
    for n in 0..3 {
        let spec = OsnSpec { max_message_count: 5, batch_timeout: "200ms", ..network(&broker, 2) };
        osns.push(Osn::start(OsnSpec { osn_identity: n, ..spec }).await);
    }
    let c = crypto();

    // Created through OSN 0 with the CLI, signed by Org1's admin: it takes the system channel's
    // batch settings (the genesis block's: 5 envelopes, 200 ms).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_osn"))
        .args(["channel", "create", "--channel", "alpha", "--consortium", CONSORTIUM])
        .args(["--url", &osns[0].url, "--identity"])
        .arg(c.org1.join("identities").join("admin"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("created channel alpha (status READY"), "{text}");
    for osn in &osns {
        wait_ready(osn, "alpha").await;
    }
    let sent = envelopes("alpha", 12, 300);
    broadcast_all(&format!("{}/v1/channels/alpha/broadcast", osns[2].url), &sent, 4).await;
    let chains = chains_holding(&osns, "alpha", 12).await;
    assert_identical(&chains);
    let genesis =
        osn::core::channelconfig::Bundle::new("alpha", osn::ledger::block_config(&chains[0][0]).unwrap()).unwrap();
    assert_eq!(genesis.values.batch_size.max_message_count, 5);
    assert_eq!(genesis.values.batch_timeout, Duration::from_millis(200));
    assert_eq!(genesis.values.consortium.as_deref(), Some(CONSORTIUM));
    let mut members: Vec<&String> = genesis.validator.policies().msps.keys().collect();
    members.sort();
    assert_eq!(members, ["OrdererMSP", "Org1MSP"], "the orderer organisation and the member Org1");
    assert!(chains[0].iter().skip(1).all(|b| b.data.as_ref().unwrap().data.len() <= 5));

    // The same channel through OSN 1 and OSN 2 at once: one wins, the other is told why.
    let beta = channel("beta", &["Org1MSP", "Org2MSP"]);
    let (a, b) =
        futures_util::join!(create_channel(&osns[1], &beta, &c.admin), create_channel(&osns[2], &beta, org2_admin()));
    let mut codes = [a.0, b.0];
    codes.sort();
    assert_eq!(codes, [201, 409], "{a:?} {b:?}");
    let loser = if a.0 == 409 { &a.1 } else { &b.1 };
    assert_eq!(loser["status"], "BAD_REQUEST");
    assert!(loser["info"].as_str().unwrap().contains("channel 'beta' already exists"), "{loser}");
    for osn in &osns {
        wait_ready(osn, "beta").await;
    }
    let geneses: Vec<Block> = futures_util::future::join_all(osns.iter().map(|o| o.block_of("beta", 0))).await;
    assert!(geneses.iter().all(|g| consensus_view(g) == consensus_view(&geneses[0])), "identical genesis blocks");

    // The channel limit (2), the ID rule, the system channel's name, and who may create.
    // HTTP 403 with Fabric's status BAD_REQUEST, as Fabric's Broadcast answers the limit.
    let (code, body) = create_channel(&osns[0], &channel("gamma", &[]), &c.admin).await;
    assert_eq!((code, body["status"].as_str()), (403, Some("BAD_REQUEST")), "{body}");
    assert!(body["info"].as_str().unwrap().contains("maximum number of channels: 2"), "{body}");
    for (name, code, info) in [
        ("Bad_Name", 400, "[a-z][a-z0-9.-]*"),
        (&"a".repeat(250), 400, "at most 249"),
        ("osn-system", 400, "system channel"),
        ("alpha", 409, "already exists"),
    ] {
        let (got, body) = create_channel(&osns[1], &channel(name, &[]), &c.admin).await;
        assert_eq!(got, code, "{name}: {body}");
        assert!(body["info"].as_str().unwrap().contains(info), "{name}: {body}");
    }
    let (code, body) = create_channel(&osns[1], &channel("delta", &[]), &c.client).await;
    assert_eq!(code, 403, "a client may not create channels: {body}");
    assert!(body["info"].as_str().unwrap().contains("ChannelCreationPolicy"), "{body}");

    // A restarted OSN still has the channels the system channel created.
    osns[1].restart().await;
    wait_ready(&osns[1], "alpha").await;
    assert_eq!(osns[1].chain_of("alpha").await.len(), chains[0].len());
    let mut resp = client().get(format!("{}/v1/channels", osns[1].url)).send().await.unwrap();
    let list: serde_json::Value = resp.json().await.unwrap();
    let names: Vec<&str> = list["channels"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "beta", "osn-system"]);
}

/// Creates `name` through `osns[0]` (Org1; the network's batch size 40, timeout 100 ms) and
/// waits until every OSN serves it.
async fn create_load_channel(osns: &[Osn], name: &str) {
    let create = channel(name, &["Org1MSP"]);
    let (code, body) = create_channel(&osns[0], &create, &crypto().admin).await;
    assert_eq!(code, 201, "{body}");
    for osn in osns {
        wait_ready(osn, name).await;
    }
}

/// Broadcasts `per_osn` envelopes through each OSN and, once they have started to be ordered (a
/// block beyond the start on `osns[1]`), changes the batch size to 7 through `osns[1]`: the
/// envelopes enqueued under the old configuration and consumed after the change are
/// re-submitted. The envelopes, each OSN's wave in turn.
async fn batch_size_change_under_load(osns: &[Osn], name: &str, per_osn: usize) -> Vec<Vec<Envelope>> {
    let urls: Vec<String> = osns.iter().map(|o| format!("{}/v1/channels/{name}/broadcast", o.url)).collect();
    let waves: Vec<Vec<Envelope>> = osns.iter().map(|_| envelopes(name, per_osn, 200)).collect();
    let load = futures_util::future::join_all(waves.iter().zip(&urls).map(|(envs, url)| broadcast_all(url, envs, 6)));
    let before = osns[1].height_of(name).await;
    let change = async {
        wait_for("the first wave ordering", Duration::from_secs(30), || async {
            (osns[1].height_of(name).await > before).then_some(())
        })
        .await;
        // The batch size is the orderer organisation's admins' to change.
        change_config(&osns[1], name, |c| with_max_message_count(c, 7), &crypto().orderer_admin, &[]).await
    };
    let (_, (code, body)) = futures_util::join!(load, change);
    assert_eq!(code, 200, "{body}");
    let batch = &body["channel_group"]["groups"]["Orderer"]["values"]["BatchSize"]["value"];
    assert_eq!((body["sequence"].as_str(), batch["max_message_count"].as_u64()), (Some("2"), Some(7)), "{body}");
    waves
}

#[actix_rt::test]
async fn a_batch_size_change_mid_load_takes_effect_at_the_same_block_on_every_osn() {
    let broker = Broker::start();
    let osns = three(&broker, 0).await;
    create_load_channel(&osns, "load").await;
    // The update goes in while the first wave is being broadcast through all three.
    batch_size_change_under_load(&osns, "load", 150).await;
    let urls: Vec<String> = osns.iter().map(|o| format!("{}/v1/channels/load/broadcast", o.url)).collect();
    let second: Vec<Vec<Envelope>> = (0..3).map(|_| envelopes("load", 100, 200)).collect();
    futures_util::future::join_all(second.iter().zip(&urls).map(|(envs, url)| broadcast_all(url, envs, 6))).await;

    // 750 envelopes and the config update.
    let chains = chains_holding(&osns, "load", 751).await;
    assert_identical(&chains);
    let k = config_block(&chains[0]);
    let sizes: Vec<usize> = chains[0].iter().map(|b| b.data.as_ref().unwrap().data.len()).collect();
    assert!(sizes[1..k].iter().all(|&n| n <= 40), "{sizes:?}");
    assert!(sizes[1..k].iter().any(|&n| n > 7), "the old batch size was in force before block {k}: {sizes:?}");
    assert!(sizes[k + 1..].iter().all(|&n| n <= 7), "the new batch size from block {} on: {sizes:?}", k + 1);
    assert!(sizes[k + 1..].iter().filter(|&&n| n == 7).count() > 10, "full blocks of 7: {sizes:?}");
    for block in &chains[0][k + 1..] {
        assert_eq!(osn::core::block::last_config(block), Some(k as u64), "LAST_CONFIG points at the config block");
    }
    let sent: usize = 750;
    let ordered: usize = sizes[1..].iter().sum::<usize>() - 1;
    assert_eq!(ordered, sent, "every envelope ordered once");
}

#[actix_rt::test]
async fn a_removed_organisation_can_no_longer_write_and_its_stale_envelopes_are_dropped_on_every_osn() {
    let broker = Broker::start();
    let osns = three(&broker, 0).await;
    let c = crypto();
    let (code, body) = create_channel(&osns[0], &channel("orgs", &["Org1MSP", "Org2MSP"]), &c.admin).await;
    assert_eq!(code, 201, "{body}");
    for osn in &osns {
        wait_ready(osn, "orgs").await;
    }
    let org2_tx = |n: usize| -> Vec<Envelope> {
        (0..n).map(|_| osn::cli::client::transaction(&c.outsider, "orgs", 200)).collect()
    };
    broadcast_all(&format!("{}/v1/channels/orgs/broadcast", osns[2].url), &org2_tx(5), 2).await;

    // /Channel/Application/Admins: admins of a majority of two organisations, both. Org1's admin
    // alone is not enough.
    let current = config_of(&osns[0], "orgs").await;
    let mut next = current.clone();
    osn::core::configedit::remove_organization(&mut next, &["Application"], "Org2MSP").unwrap();
    let remove = osn::core::configtx::compute_update("orgs", &current, &next).unwrap();
    let (code, body) = update_config(&osns[0], &remove, &c.admin, &[]).await;
    assert_eq!((code, body["status"].as_str()), (403, Some("BAD_REQUEST")), "{body}");
    assert!(body["info"].as_str().unwrap().contains("Admins"), "{body}");
    // Org2 floods through OSN 2 while the update (approved by Org2's admin) goes through OSN 0.
    let flood = org2_tx(300);
    let url2 = format!("{}/v1/channels/orgs/broadcast", osns[2].url);
    let flooding = futures_util::future::join_all(flood.iter().map(|e| broadcast(&url2, e)));
    let before = osns[0].height_of("orgs").await;
    let change = async {
        // Once the flood has started to be ordered.
        wait_for("the flood ordering", Duration::from_secs(30), || async {
            (osns[0].height_of("orgs").await > before).then_some(())
        })
        .await;
        update_config(&osns[0], &remove, &c.admin, &[org2_admin()]).await
    };
    let (answers, (code, body)) = futures_util::join!(flooding, change);
    assert_eq!(code, 200, "{body}");
    let accepted = answers.iter().filter(|(code, _)| *code == 200).count();
    assert!(answers.iter().all(|(code, _)| *code == 200 || *code == 403), "{answers:?}");

    // Envelopes enqueued under the old configuration and consumed after the update: written to
    // the partition as an OSN would have (config sequence 0), one of each organisation.
    let producer =
        osn::kafka::producer(&osn::config::KafkaConfig { brokers: broker.servers(), ..Default::default() }).unwrap();
    let stale_org1 = envelopes("orgs", 1, 200).remove(0);
    for env in [org2_tx(1).remove(0), stale_org1.clone()] {
        let record = KafkaMessage::regular(env.encode_to_vec().into(), 0, Class::Normal).encode_to_vec();
        osn::kafka::produce(&producer, "orgs", &record).await.unwrap();
    }
    // Org2 can no longer write, through any OSN.
    for osn in &osns {
        let (code, resp) = broadcast(&format!("{}/v1/channels/orgs/broadcast", osn.url), &org2_tx(1)[0]).await;
        assert_eq!(code, 403, "{resp:?}");
    }
    let after = envelopes("orgs", 3, 200);
    broadcast_all(&format!("{}/v1/channels/orgs/broadcast", osns[1].url), &after, 3).await;

    let chains = chains_holding(&osns, "orgs", 5 + 1 + 3).await;
    // Wait until the re-submitted Org1 envelope is in, on every OSN.
    let marker = stale_org1.encode_to_vec();
    let chains = {
        let mut out = Vec::new();
        for (osn, _) in osns.iter().zip(&chains) {
            out.push(
                wait_for("the re-submitted envelope", Duration::from_secs(30), || async {
                    let chain = osn.chain_of("orgs").await;
                    chain
                        .iter()
                        .any(|b| b.data.as_ref().unwrap().data.iter().any(|d| d[..] == marker[..]))
                        .then_some(chain)
                })
                .await,
            );
        }
        out
    };
    let height = chains.iter().map(Vec::len).min().unwrap();
    let chains: Vec<Vec<Block>> = chains.into_iter().map(|c| c[..height].to_vec()).collect();
    assert_identical(&chains);
    let k = config_block(&chains[0]);
    let data: Vec<&bytes::Bytes> = chains[0][k + 1..].iter().flat_map(|b| &b.data.as_ref().unwrap().data).collect();
    assert!(data.iter().all(|d| creator_msp(d) == "Org1MSP"), "no Org2 envelope after the config block {k}");
    let resubmitted = data.iter().filter(|d| d[..] == marker[..]).count();
    assert_eq!(resubmitted, 1, "the stale Org1 envelope is re-ordered exactly once (three OSNs re-submitted it)");
    let org2_before: usize = chains[0][1..k]
        .iter()
        .flat_map(|b| &b.data.as_ref().unwrap().data)
        .filter(|d| creator_msp(d) == "Org2MSP")
        .count();
    assert!(org2_before <= 5 + accepted, "{org2_before} Org2 envelopes ordered for {} accepted", 5 + accepted);
    for osn in &osns {
        assert!(osn.log().contains("not valid under 2"), "every OSN dropped the stale Org2 envelope");
    }
}

/// Two creations racing for the last channel the limit allows, both admitted on arrival: the one
/// consumed second is refused by the system channel's chain with the arrival check's own answer,
/// 403 naming the limit (with Fabric's status BAD_REQUEST; a typed refusal, not a blanket 409),
/// and only the winner exists.
#[actix_rt::test]
async fn a_creation_refused_when_consumed_gets_the_status_of_its_cause() {
    let broker = Broker::start();
    let osn = Osn::start(network(&broker, 1)).await;
    let c = crypto();
    let (first, second) = (channel("first", &[]), channel("second", &[]));
    let (a, b) =
        futures_util::join!(create_channel(&osn, &first, &c.admin), create_channel(&osn, &second, org2_admin()));
    let mut codes = [a.0, b.0];
    codes.sort();
    assert_eq!(codes, [201, 403], "{a:?} {b:?}");
    let loser = if a.0 == 403 { &a.1 } else { &b.1 };
    assert_eq!(loser["status"], "BAD_REQUEST", "{loser}");
    assert!(loser["info"].as_str().unwrap().contains("maximum number of channels: 1"), "{loser}");
    let list: serde_json::Value =
        client().get(format!("{}/v1/channels", osn.url)).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> = list["channels"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names.iter().filter(|n| **n == "first" || **n == "second").count(), 1, "{list}");
}

/// Issue 18: a record with a forged `original_offset` (far past the partition's end) in a
/// channel's partition, then a batch-size change under load. Every OSN skips the record (counted
/// in `osn_channel_records_skipped_total{reason="forged_original_offset"}`), so the copies
/// re-submitted after the change are still ordered: every acknowledged envelope once, identical
/// chains, and the forged envelope in none. (It used to move the de-duplication state past the
/// partition's end: every re-submitted copy was then dropped as already processed.)
#[actix_rt::test]
async fn a_forged_original_offset_loses_nothing_through_a_config_change_under_load() {
    let broker = Broker::start();
    let osns = three(&broker, 0).await;
    let c = crypto();
    create_load_channel(&osns, "forged").await;
    let producer =
        osn::kafka::producer(&osn::config::KafkaConfig { brokers: broker.servers(), ..Default::default() }).unwrap();
    let forged_env = osn::cli::client::transaction(&c.client, "forged", 200);
    let mut forged = KafkaMessage::regular(forged_env.encode_to_vec().into(), 0, Class::Normal);
    if let Some(osn::proto::kafka_message::Type::Regular(r)) = forged.r#type.as_mut() {
        r.original_offset = 1_000_000_000_000;
    }
    osn::kafka::produce(&producer, "forged", &forged.encode_to_vec()).await.unwrap();

    let first = batch_size_change_under_load(&osns, "forged", 150).await;
    let urls: Vec<String> = osns.iter().map(|o| format!("{}/v1/channels/forged/broadcast", o.url)).collect();
    let second: Vec<Vec<Envelope>> = (0..3).map(|_| envelopes("forged", 100, 200)).collect();
    futures_util::future::join_all(second.iter().zip(&urls).map(|(envs, url)| broadcast_all(url, envs, 6))).await;

    // 750 envelopes and the config update.
    let chains = chains_holding(&osns, "forged", 751).await;
    assert_identical(&chains);
    let acked: Vec<Envelope> = first.into_iter().chain(second).flatten().collect();
    assert_all_once(&chains[0], &acked);
    let forged_bytes = forged_env.encode_to_vec();
    let all: Vec<&bytes::Bytes> = chains[0].iter().skip(1).flat_map(|b| &b.data.as_ref().unwrap().data).collect();
    assert!(!all.iter().any(|d| d.as_ref() == forged_bytes.as_slice()), "the forged record was skipped");
    assert_eq!(all.len(), 751, "750 envelopes and the config update, nothing else");
    for osn in &osns {
        let mut resp = client().get(format!("{}/metrics", osn.url)).send().await.unwrap();
        let text = String::from_utf8(resp.body().limit(16 << 20).await.unwrap().to_vec()).unwrap();
        let counted = "osn_channel_records_skipped_total{channel=\"forged\",reason=\"forged_original_offset\"} 1";
        assert!(text.contains(counted), "{counted} on {}", osn.url);
    }
}

/// Issue 18: a late OSN (an empty ledger, joining a system channel that created many channels)
/// answers `/readyz` 503 until it serves every one of them: at its first 200, every channel is
/// listed READY and takes a broadcast. (It used to say ready as soon as the system channel
/// consumed, before replaying it: broadcasts to the channels created earlier got 404.)
#[actix_rt::test]
async fn a_late_osn_is_not_ready_before_it_serves_every_channel() {
    let broker = Broker::start();
    let first = Osn::start(network(&broker, 0)).await;
    let c = crypto();
    let names: Vec<String> = (0..25).map(|i| format!("late-{i:02}")).collect();
    for name in &names {
        let (code, body) = create_channel(&first, &channel(name, &["Org1MSP"]), &c.admin).await;
        assert_eq!(code, 201, "{name}: {body}");
    }
    wait_ready(&first, names.last().unwrap()).await;

    let late = Osn::start_listening(OsnSpec { osn_identity: 1, ..network(&broker, 0) }).await;
    let ready_url = format!("{}/readyz", late.operations_url);
    let mut not_ready = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut resp = client().get(&ready_url).send().await.expect("/readyz");
        if resp.status() == 200 {
            break;
        }
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        assert!(body["failed_checks"].as_array().is_some_and(|f| !f.is_empty()), "a 503 says why: {body}");
        not_ready += 1;
        assert!(std::time::Instant::now() < deadline, "not ready within 60 s:\n{}", late.log_tail());
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    // Ready: every channel is known and READY, and takes a broadcast.
    let mut resp = client().get(format!("{}/v1/channels", late.url)).send().await.unwrap();
    let list: serde_json::Value = resp.json().await.unwrap();
    for name in &names {
        let entry = list["channels"].as_array().unwrap().iter().find(|c| c["name"] == name.as_str());
        let entry = entry.unwrap_or_else(|| panic!("{name} unknown when /readyz said 200: {list}"));
        assert_eq!(entry["status"], "READY", "{name}: {entry}");
    }
    let last = names.last().unwrap();
    let (code, answer) =
        broadcast(&format!("{}/v1/channels/{last}/broadcast", late.url), &envelopes(last, 1, 200)[0]).await;
    assert_eq!(code, 200, "{answer:?}");
    assert!(not_ready > 0, "it was not ready at first");
}

/// Issue 18: an OSN joining late replays a batch-size change made under load, where the live
/// OSNs re-submitted the envelopes enqueued under the old configuration. Their copies are in the
/// partition, so the joiner writes nothing but its CONNECT: it defers its own re-submissions
/// while it replays and drops each one whose copy it then consumes. (It used to re-submit every
/// such record again, which every OSN then skipped.) Its chain is the others'.
#[actix_rt::test]
async fn a_late_osn_replaying_a_config_change_writes_nothing_but_its_connect() {
    let broker = Broker::start();
    let spec = |n| OsnSpec { osn_identity: n, ..network(&broker, 0) };
    let live = [Osn::start(spec(0)).await, Osn::start(spec(1)).await];
    create_load_channel(&live, "replay").await;
    batch_size_change_under_load(&live, "replay", 200).await;
    let chains = chains_holding(&live, "replay", 401).await;
    assert_identical(&chains);
    let resubmitted = |osn: &Osn| {
        let log = osn.log();
        log.matches("re-submitted a record enqueued under an older configuration").count()
    };
    let live_resubmissions: usize = live.iter().map(resubmitted).sum();

    let kafka = osn::config::KafkaConfig { brokers: broker.servers(), ..Default::default() };
    let end_before = {
        let kafka = kafka.clone();
        actix_rt::task::spawn_blocking(move || osn::kafka::high_watermark(&kafka, "replay", Duration::from_secs(5)))
            .await
            .unwrap()
            .unwrap()
    };
    let late = Osn::start(spec(2)).await;
    wait_ready(&late, "replay").await;
    let late_chain = chains_holding(std::slice::from_ref(&late), "replay", 401).await.remove(0);
    assert_identical(&[chains[0].clone(), late_chain]);
    // A marker through the joiner, once it has caught up: its producer keeps the partition's
    // order, so whatever it would re-submit while replaying is in the partition before the
    // marker. Every record from before the joiner started up to the marker, read back.
    let marker = envelopes("replay", 1, 200).remove(0);
    let (code, answer) = broadcast(&format!("{}/v1/channels/replay/broadcast", late.url), &marker).await;
    assert_eq!(code, 200, "{answer:?}");
    chains_holding(std::slice::from_ref(&late), "replay", 402).await;
    let marker = bytes::Bytes::from(marker.encode_to_vec());
    let mut records = Box::pin(osn::kafka::consume_from(&kafka, "replay", end_before).unwrap());
    let (mut connects, mut copies) = (0, 0);
    loop {
        let record = tokio::time::timeout(Duration::from_secs(30), futures_util::StreamExt::next(&mut records))
            .await
            .expect("the marker within 30 s")
            .unwrap()
            .unwrap();
        match KafkaMessage::decode(record.value).unwrap().r#type {
            Some(osn::proto::kafka_message::Type::Connect(_)) => connects += 1,
            Some(osn::proto::kafka_message::Type::Regular(r)) if r.original_offset != 0 => copies += 1,
            Some(osn::proto::kafka_message::Type::Regular(r)) if r.payload == marker => break,
            other => panic!("record {} after the joiner started: {other:?}", record.offset),
        }
    }
    assert!(live_resubmissions > 0, "the live OSNs re-submitted records at the change");
    assert_eq!(
        (connects, copies),
        (1, 0),
        "the joiner wrote its CONNECT and no copy ({live_resubmissions} re-submitted live)"
    );
}
