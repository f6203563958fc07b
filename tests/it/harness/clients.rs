//! The API as a client uses it: broadcasts, deliveries, config transactions, waiting for a
//! channel.

use std::collections::HashMap;

use super::*;

/// Broadcasts each envelope once, concurrently; the envelopes Kafka acknowledged, and the
/// refusals' infos (every refusal must be a 503).
pub async fn try_all(url: &str, envelopes: &[Envelope]) -> (Vec<Envelope>, Vec<String>) {
    let answers =
        futures_util::future::join_all(envelopes.iter().map(|e| async move { (e.clone(), broadcast(url, e).await) }))
            .await;
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for (env, (code, resp)) in answers {
        if code == 200 {
            acked.push(env);
        } else {
            assert_eq!(code, 503, "{resp:?}");
            refused.push(resp.info);
        }
    }
    (acked, refused)
}

pub fn client() -> awc::Client {
    awc::Client::builder().timeout(Duration::from_secs(30)).finish()
}

/// Broadcasts one envelope as protobuf; returns the HTTP code and the answer.
pub async fn broadcast(url: &str, env: &Envelope) -> (u16, BroadcastResponse) {
    let mut resp = client()
        .post(url)
        .insert_header(("Content-Type", "application/x-protobuf"))
        .insert_header(("Accept", "application/x-protobuf"))
        .send_body(env.encode_to_vec())
        .await
        .expect("broadcast request");
    let body = resp.body().await.unwrap();
    (resp.status().as_u16(), BroadcastResponse::decode(body).expect("BroadcastResponse"))
}

/// Broadcasts `envelopes` with `concurrency` requests in flight; panics on any non-200 answer.
pub async fn broadcast_all(url: &str, envelopes: &[Envelope], concurrency: usize) {
    let results: Vec<(u16, BroadcastResponse)> = futures_util::stream::iter(envelopes.iter())
        .map(|e| broadcast(url, e))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    for (code, resp) in results {
        assert_eq!(code, 200, "broadcast answered {resp:?}");
    }
}

/// `n` transactions of about `size` bytes, signed by Org1's client.
pub fn envelopes(channel: &str, n: usize, size: usize) -> Vec<Envelope> {
    (0..n).map(|_| transaction(&crypto().client, channel, size)).collect()
}

/// Opens the deliver websocket, sends `seek`, and collects responses until a status arrives
/// (or `max_blocks` blocks when the stream would go on).
pub async fn deliver(base: &str, channel: &str, seek: &SeekInfo, max_blocks: usize) -> (Vec<Block>, Option<i32>) {
    let url = format!("{}/v1/channels/{channel}/deliver", base.replace("http://", "ws://"));
    let (_, mut ws) = awc::Client::new().ws(url).max_frame_size(64 << 20).connect().await.expect("ws connect");
    let request = seek_request(&crypto().client, channel, seek);
    ws.send(awc::ws::Message::Binary(request.encode_to_vec().into())).await.unwrap();
    let mut blocks = Vec::new();
    while blocks.len() < max_blocks {
        let frame = actix_rt::time::timeout(Duration::from_secs(30), ws.next()).await.expect("deliver frame in time");
        match frame {
            Some(Ok(awc::ws::Frame::Binary(b))) => match DeliverResponse::decode(b).unwrap().r#type {
                Some(deliver_response::Type::Block(block)) => blocks.push(block),
                Some(deliver_response::Type::Status(s)) => return (blocks, Some(s)),
                None => panic!("empty DeliverResponse"),
            },
            Some(Ok(_)) => continue,
            other => panic!("deliver stream ended: {other:?}"),
        }
    }
    (blocks, None)
}

/// POSTs a signed config transaction (protobuf in, JSON out): the HTTP code and the JSON answer.
pub async fn post_config_tx(url: String, envelope: &Envelope) -> (u16, serde_json::Value) {
    let mut resp = client()
        .post(url)
        .insert_header(("Content-Type", "application/x-protobuf"))
        .insert_header(("Accept", "application/json"))
        .send_body(envelope.encode_to_vec())
        .await
        .expect("config request");
    let body = resp.json().limit(16 << 20).await.unwrap_or_default();
    (resp.status().as_u16(), body)
}

/// Creates a channel through `osn`'s system channel, signed by `signer`.
pub async fn create_channel(
    osn: &Osn,
    create: &osn::cli::channel::ChannelCreate,
    signer: &SigningIdentity,
) -> (u16, serde_json::Value) {
    let envelope = osn::identity::envelope::config_update(signer, &create.update(signer), &[]);
    post_config_tx(format!("{}/v1/channels", osn.url), &envelope).await
}

/// Updates a channel's configuration through `osn`, signed by `signer` and approved by it and
/// `approvers`.
pub async fn update_config(
    osn: &Osn,
    update: &osn::proto::common::ConfigUpdate,
    signer: &SigningIdentity,
    approvers: &[&SigningIdentity],
) -> (u16, serde_json::Value) {
    let url = format!("{}/v1/channels/{}/config", osn.url, update.channel_id);
    post_config_tx(url, &osn::identity::envelope::config_update(signer, update, approvers)).await
}

/// The configuration in force on `channel` (`common.Config`), read as Org1's client.
pub async fn config_of(osn: &Osn, channel: &str) -> osn::proto::common::Config {
    let mut resp = osn
        .client()
        .get(format!("{}/v1/channels/{channel}/config", osn.url))
        .insert_header(("Accept", "application/x-protobuf"))
        .insert_header(("Authorization", read_authorization(&crypto().client, channel)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the configuration of {channel}");
    osn::proto::common::Config::decode(resp.body().limit(16 << 20).await.unwrap()).unwrap()
}

/// Changes `channel`'s configuration as an admin would: reads it, edits it, computes the update
/// (`configtxlator compute_update`'s) and sends it signed by `signer`, approved by it and
/// `approvers`. The answer's code and body (the configuration now in force, in configtxlator's
/// JSON, or the refusal).
pub async fn change_config(
    osn: &Osn,
    channel: &str,
    edit: impl FnOnce(&mut osn::proto::common::Config),
    signer: &SigningIdentity,
    approvers: &[&SigningIdentity],
) -> (u16, serde_json::Value) {
    let current = config_of(osn, channel).await;
    let mut next = current.clone();
    edit(&mut next);
    let update = osn::core::configtx::compute_update(channel, &current, &next).unwrap();
    update_config(osn, &update, signer, approvers).await
}

/// A configuration whose Orderer group's MaxMessageCount is `count` (the orderer
/// organisation's admins' to change).
pub fn with_max_message_count(config: &mut osn::proto::common::Config, count: u32) {
    let mut bs = osn::core::channelconfig::OrderingValues::read(config).unwrap().batch_size;
    bs.max_message_count = count;
    osn::core::configedit::set_batch_size(config, bs).unwrap();
}

/// Waits until `channel` is READY on `osn`.
pub async fn wait_ready(osn: &Osn, channel: &str) {
    let url = format!("{}/v1/channels/{channel}", osn.url);
    wait_for(&format!("{channel} ready on {}", osn.url), Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            let mut resp = client().get(url).send().await.ok()?;
            let info: serde_json::Value = resp.json().await.ok()?;
            (info["status"] == "READY").then_some(())
        }
    })
    .await
}

/// Waits (60 s at most each) until every OSN holds `count` transactions on `channel`; their chains.
pub async fn chains_holding(osns: &[Osn], channel: &str, count: usize) -> Vec<Vec<Block>> {
    let mut out = Vec::new();
    for osn in osns {
        let what = format!("{count} transactions on {}", osn.url);
        let chain = wait_for(&what, Duration::from_secs(60), || async move {
            let chain = osn.chain_of(channel).await;
            let txs: usize = chain.iter().skip(1).map(|b| b.data.as_ref().unwrap().data.len()).sum();
            (txs >= count).then_some(chain)
        })
        .await;
        out.push(chain);
    }
    out
}

/// The samples of the metric families of `/metrics`: name{labels} → value.
pub async fn scrape(osn: &Osn) -> HashMap<String, f64> {
    let mut resp = client().get(format!("{}/metrics", osn.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ct = resp.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = String::from_utf8(resp.body().limit(16 << 20).await.unwrap().to_vec()).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(f64::NAN))))
        .collect()
}

/// The sum of a family's samples whose labels mention `channel` (all samples when None).
pub fn total(samples: &HashMap<String, f64>, family: &str, channel: Option<&str>) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.split('{').next() == Some(family))
        .filter(|(k, _)| channel.is_none_or(|c| k.contains(&format!("channel=\"{c}\""))))
        .map(|(_, v)| *v)
        .sum()
}
