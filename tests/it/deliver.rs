//! Deliver over websocket: ranges, newest/oldest, waiting for blocks not yet cut, and refusals.

use std::time::Duration;

use osn::core::seek::{newest, oldest, specified};
use osn::proto::orderer::seek_info::SeekBehavior;
use osn::proto::{SeekInfo, SeekPosition, Status};

use crate::harness::*;

fn seek(start: SeekPosition, stop: SeekPosition, behavior: SeekBehavior) -> SeekInfo {
    SeekInfo { start: Some(start), stop: Some(stop), behavior: behavior as i32, error_response: 0 }
}

#[actix_rt::test]
async fn deliver_streams_ranges_and_waits_for_new_blocks() {
    let channel = channel_name("deliver");
    let broker = Broker::with_topic(&channel);
    let spec = OsnSpec { max_message_count: 5, ..OsnSpec::new(&channel, &broker) };
    let osn = Osn::start(spec.clone()).await;
    let sent = envelopes(&channel, 25, 200);
    broadcast_all(&osn.broadcast_url(), &sent, 5).await;
    let chain = osn.wait_for_transactions(25, Duration::from_secs(30)).await;
    let height = chain.len() as u64;

    // oldest..newest: the whole chain, then SUCCESS.
    let (blocks, status) =
        deliver(&osn.url, &channel, &seek(oldest(), newest(), SeekBehavior::BlockUntilReady), usize::MAX).await;
    assert_eq!(status, Some(Status::Success as i32));
    assert_eq!(blocks, chain);

    // A specified range.
    let (blocks, status) =
        deliver(&osn.url, &channel, &seek(specified(2), specified(3), SeekBehavior::FailIfNotReady), usize::MAX).await;
    assert_eq!((blocks.len(), status), (2, Some(Status::Success as i32)));
    assert_eq!(blocks[0], chain[2]);

    // newest..newest is the last block.
    let (blocks, _) =
        deliver(&osn.url, &channel, &seek(newest(), newest(), SeekBehavior::BlockUntilReady), usize::MAX).await;
    assert_eq!(blocks, vec![chain.last().unwrap().clone()]);

    // Refusals: stop before start, start beyond the next block, not ready with FAIL_IF_NOT_READY.
    let (_, status) =
        deliver(&osn.url, &channel, &seek(specified(3), specified(1), SeekBehavior::BlockUntilReady), 1).await;
    assert_eq!(status, Some(Status::BadRequest as i32));
    let (_, status) = deliver(
        &osn.url,
        &channel,
        &seek(specified(height + 1), specified(u64::MAX), SeekBehavior::BlockUntilReady),
        1,
    )
    .await;
    assert_eq!(status, Some(Status::NotFound as i32));
    let (_, status) =
        deliver(&osn.url, &channel, &seek(specified(height), specified(height), SeekBehavior::FailIfNotReady), 1).await;
    assert_eq!(status, Some(Status::NotFound as i32));

    // BLOCK_UNTIL_READY from the next block: the subscriber gets it once it is cut.
    let follow_seek = seek(specified(height), specified(u64::MAX), SeekBehavior::BlockUntilReady);
    let follow = deliver(&osn.url, &channel, &follow_seek, 2);
    let more = envelopes(&channel, 10, 200);
    let url = osn.broadcast_url();
    let send = broadcast_all(&url, &more, 10);
    let ((blocks, status), ()) = futures_util::join!(follow, send);
    assert_eq!(status, None, "still streaming");
    assert_eq!(blocks.iter().map(|b| b.header.as_ref().unwrap().number).collect::<Vec<_>>(), vec![height, height + 1]);
}
