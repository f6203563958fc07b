//! Many websocket subscribers at once: each receives every block of a run, and a subscriber that
//! stops reading delays neither the others nor the channel; when it reads again, it gets every
//! block, in order.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use osn::cli::client::seek_request;
use osn::core::block::header_hash;
use osn::core::seek::{oldest, specified};
use osn::proto::orderer::deliver_response;
use osn::proto::{DeliverResponse, SeekInfo};
use prost::Message as _;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::harness::*;

const SUBSCRIBERS: usize = 200;

/// Follows the channel from block 0 until it has every block below `*target`; returns each
/// block's header hash and when the last one arrived.
async fn follow(
    url: String,
    channel: String,
    mut target: watch::Receiver<u64>,
    request: Bytes,
) -> (Vec<Vec<u8>>, Instant) {
    let url = format!("{}/v1/channels/{channel}/deliver", url.replace("http://", "ws://"));
    let (_, mut ws) = awc::Client::new().ws(url).max_frame_size(16 << 20).connect().await.expect("ws connect");
    ws.send(awc::ws::Message::Binary(request)).await.unwrap();
    let mut hashes = Vec::new();
    loop {
        if hashes.len() as u64 >= *target.borrow_and_update() {
            return (hashes, Instant::now());
        }
        tokio::select! {
            frame = ws.next() => {
                let Some(Ok(awc::ws::Frame::Binary(b))) = frame else { panic!("subscriber got {frame:?}") };
                match DeliverResponse::decode(b).unwrap().r#type {
                    Some(deliver_response::Type::Block(block)) => {
                        let header = block.header.unwrap();
                        assert_eq!(header.number, hashes.len() as u64, "blocks in order, none missing");
                        hashes.push(header_hash(&header));
                    }
                    other => panic!("subscriber got {other:?}"),
                }
            }
            _ = target.changed() => {}
        }
    }
}

#[actix_rt::test]
async fn two_hundred_subscribers_get_every_block_and_a_stalled_one_delays_nobody() {
    let channel = channel_name("subs");
    let broker = Broker::with_topic(&channel);
    let spec = OsnSpec { max_message_count: 10, ..OsnSpec::new(&channel, &broker) };
    let osn = Osn::start(spec.clone()).await;
    let follow_all = SeekInfo { start: Some(oldest()), stop: Some(specified(u64::MAX)), ..Default::default() };
    let request: Bytes = seek_request(&crypto().client, &channel, &follow_all).encode_to_vec().into();

    // The stalled subscriber: a tiny receive buffer, a request, and then it reads nothing.
    let path = format!("/v1/channels/{channel}/deliver");
    let mut stalled = raw_ws::connect_with_buffer(&osn.url, &path, Some(4096)).await;
    stalled.write_all(&raw_ws::masked(0x2, &request)).await.unwrap();

    let (target_tx, target) = watch::channel(u64::MAX);
    let subscribers: Vec<_> = (0..SUBSCRIBERS - 1)
        .map(|_| actix_rt::spawn(follow(osn.url.clone(), channel.clone(), target.clone(), request.clone())))
        .collect();

    // About 20 MB of blocks: far more than what can sit between the OSN and the stalled subscriber
    // (its 4 KB receive buffer, the OSN's send buffer of at most 4 MB on Linux by default, and
    // the 32 frames a websocket session queues), so the OSN really is held up on that socket.
    let sent = envelopes(&channel, 2000, 10 * 1024);
    broadcast_all(&osn.broadcast_url(), &sent, 32).await;
    let chain = osn.wait_for_transactions(sent.len(), Duration::from_secs(60)).await;
    let written = Instant::now();
    let height = chain.len() as u64;
    target_tx.send(height).unwrap();
    let want: Vec<Vec<u8>> = chain.iter().map(|b| header_hash(b.header.as_ref().unwrap())).collect();

    // Everyone but the stalled one has every block, soon after it was written.
    let mut latest = Duration::ZERO;
    for s in subscribers {
        let (hashes, done) = actix_rt::time::timeout(Duration::from_secs(60), s).await.expect("in time").unwrap();
        assert_eq!(hashes, want);
        latest = latest.max(done.saturating_duration_since(written));
    }
    assert!(latest < Duration::from_secs(20), "the last subscriber finished {latest:?} after the last block");

    // The channel was not held back either: it still orders at once.
    let more = envelopes(&channel, 5, 200);
    broadcast_all(&osn.broadcast_url(), &more, 5).await;
    osn.wait_for_transactions(sent.len() + more.len(), Duration::from_secs(30)).await;

    // The stalled subscriber now reads: every block, in order, nothing lost.
    let mut got = Vec::new();
    raw_ws::read_frames(&mut stalled, Duration::from_secs(60), |frame| {
        assert_eq!(frame.opcode, 0x2, "binary frames");
        match DeliverResponse::decode(&frame.payload[..]).unwrap().r#type {
            Some(deliver_response::Type::Block(block)) => got.push(header_hash(block.header.as_ref().unwrap())),
            other => panic!("stalled subscriber got {other:?}"),
        }
        got.len() as u64 >= height
    })
    .await;
    assert_eq!(got, want);
}
