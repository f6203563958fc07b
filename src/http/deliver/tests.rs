//! The subscription against an in-memory ledger: every SeekInfo combination, waiting, STRICT and
//! BEST_EFFORT, and the encodings.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;

use super::stream::Framing;
use super::*;
use crate::actors::{ChannelStatus, Phase};
use crate::cli::client::seek_request;
use crate::core::chain::Chain;
use crate::core::seek::{newest, oldest, specified};
use crate::ledger::memory::MemoryStore;
use crate::ledger::{BlockBytes, Ledger, Store};
use crate::proto::common::Config;
use crate::proto::orderer::seek_info::{SeekBehavior, SeekErrorResponse};
use crate::proto::{kafka_message_regular::Class, BatchSize, KafkaMessage, SeekInfo, SeekPosition};

const CHANNEL: &str = "ch";

struct Fixture {
    crypto: tempfile::TempDir,
    config: Config,
    signer: crate::identity::SigningIdentity,
    ledger: Arc<Ledger>,
    status: ChannelStatus,
    chain: Chain,
    offset: i64,
}

impl Fixture {
    /// A ready channel with `height` blocks (each holding one envelope after genesis).
    fn new(height: u64) -> Self {
        let (crypto, signer, config) = crate::cli::client::tests::test_org();
        let batch = BatchSize { max_message_count: 1, absolute_max_bytes: 1000, preferred_max_bytes: 500 };
        let store = MemoryStore::new();
        let genesis = crate::core::genesis::genesis_block(CHANNEL, &config, 0, [0; 24]);
        let ledger = Arc::new(Ledger::open(CHANNEL, store.channel(CHANNEL).unwrap(), &genesis).unwrap());
        let chain = Chain::with_batch_size("ch", ledger.tip(), batch);
        let status = ChannelStatus::new(CHANNEL);
        status.set(Phase::Ready, "");
        status.set_access_arc(crate::cli::client::tests::access_of(&config));
        let mut f = Fixture { crypto, config, signer, ledger, status, chain, offset: 0 };
        while f.ledger.height() < height {
            f.append();
        }
        f
    }

    fn append(&mut self) {
        let env = Envelope { payload: vec![self.offset as u8; 8].into(), signature: Bytes::new() };
        let record = KafkaMessage::regular(env.encode_to_vec().into(), 0, Class::Normal).encode_to_vec();
        for block in self.chain.consume(self.offset, &record).blocks {
            self.ledger.append(&block).unwrap();
        }
        self.offset += 1;
    }

    fn open(&self, seek: SeekInfo) -> Result<Subscription, (Status, String)> {
        let raw = seek_request(&self.signer, CHANNEL, &seek).encode_to_vec().into();
        Subscription::open_on(CHANNEL, &self.ledger, &self.status, decode_request(Format::Protobuf, raw))
    }
}

fn seek(start: SeekPosition, stop: SeekPosition, behavior: SeekBehavior, errors: SeekErrorResponse) -> SeekInfo {
    SeekInfo { start: Some(start), stop: Some(stop), behavior: behavior as i32, error_response: errors as i32 }
}

fn number(item: &Item) -> Option<u64> {
    match item {
        Item::Block(stored) => Some(Block::decode(stored.raw()).unwrap().header.unwrap().number),
        Item::End(..) => None,
    }
}

/// Drains a subscription that must not wait: the block numbers, then the final status.
async fn drain(mut sub: Subscription) -> (Vec<u64>, Status, String) {
    let mut blocks = Vec::new();
    loop {
        let item = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.expect("no wait").expect("an item");
        match item {
            Item::End(status, info) => {
                assert!(sub.next().await.is_none(), "nothing after the final status");
                return (blocks, status, info);
            }
            block => blocks.push(number(&block).unwrap()),
        }
    }
}

async fn pending(sub: &mut Subscription) -> bool {
    tokio::time::timeout(Duration::from_millis(50), sub.next()).await.is_err()
}

#[tokio::test]
async fn every_seek_combination_against_a_ledger_of_known_height() {
    use SeekBehavior::*;
    use SeekErrorResponse::*;
    let f = Fixture::new(5); // blocks 0..=4
    let ok = |blocks: Vec<u64>| Ok((blocks, Status::Success));
    // (request, Ok((blocks served, final status)) or Err(refusal status))
    type Want = Result<(Vec<u64>, Status), Status>;
    let cases: Vec<(SeekInfo, Want)> = vec![
        (seek(oldest(), newest(), BlockUntilReady, Strict), ok(vec![0, 1, 2, 3, 4])),
        (seek(oldest(), oldest(), BlockUntilReady, Strict), ok(vec![0])),
        (seek(newest(), newest(), FailIfNotReady, Strict), ok(vec![4])),
        (seek(oldest(), specified(2), FailIfNotReady, BestEffort), ok(vec![0, 1, 2])),
        (seek(specified(1), specified(3), BlockUntilReady, Strict), ok(vec![1, 2, 3])),
        (seek(specified(4), newest(), FailIfNotReady, Strict), ok(vec![4])),
        (seek(specified(3), specified(3), FailIfNotReady, Strict), ok(vec![3])),
        // Reaching a block not written yet with FAIL_IF_NOT_READY: what exists, then NOT_FOUND.
        (seek(specified(3), specified(7), FailIfNotReady, Strict), Ok((vec![3, 4], Status::NotFound))),
        // Refused before any block.
        (seek(specified(5), specified(9), FailIfNotReady, Strict), Err(Status::NotFound)),
        (seek(specified(6), specified(9), BlockUntilReady, Strict), Err(Status::NotFound)),
        (seek(specified(3), specified(2), BlockUntilReady, Strict), Err(Status::BadRequest)),
        (seek(newest(), oldest(), BlockUntilReady, Strict), Err(Status::BadRequest)),
        (seek(specified(2), SeekPosition::default(), BlockUntilReady, Strict), Err(Status::BadRequest)),
    ];
    for (s, want) in cases {
        let got = match f.open(s) {
            Ok(sub) => {
                let (blocks, status, _) = drain(sub).await;
                Ok((blocks, status))
            }
            Err((status, info)) => {
                assert!(!info.is_empty(), "a refusal says why");
                Err(status)
            }
        };
        assert_eq!(got, want, "{s:?}");
    }
}

#[tokio::test]
async fn block_until_ready_waits_for_the_next_block_then_ends_after_stop() {
    let mut f = Fixture::new(3);
    let mut sub =
        f.open(seek(specified(3), specified(4), SeekBehavior::BlockUntilReady, SeekErrorResponse::Strict)).unwrap();
    assert!(pending(&mut sub).await, "block 3 does not exist yet: the subscription waits");
    f.append();
    assert_eq!(number(&sub.next().await.unwrap()), Some(3));
    assert!(pending(&mut sub).await);
    f.append();
    let (blocks, status, _) = drain(sub).await;
    assert_eq!((blocks, status), (vec![4], Status::Success));
}

#[tokio::test]
async fn strict_stops_when_the_channel_stops_being_ready_best_effort_goes_on() {
    let mut f = Fixture::new(2);
    let forever = |errors| seek(oldest(), specified(u64::MAX), SeekBehavior::BlockUntilReady, errors);
    let mut strict = f.open(forever(SeekErrorResponse::Strict)).unwrap();
    let mut best = f.open(forever(SeekErrorResponse::BestEffort)).unwrap();
    for sub in [&mut strict, &mut best] {
        assert_eq!(number(&sub.next().await.unwrap()), Some(0));
        assert_eq!(number(&sub.next().await.unwrap()), Some(1));
        assert!(pending(sub).await);
    }
    f.status.set(Phase::Errored, "the partition lost records");
    match strict.next().await.unwrap() {
        Item::End(Status::ServiceUnavailable, info) => assert!(info.contains("lost records"), "{info}"),
        other => panic!("STRICT must end with SERVICE_UNAVAILABLE, got {other:?}"),
    }
    assert!(pending(&mut best).await, "BEST_EFFORT keeps waiting");
    f.append();
    assert_eq!(number(&best.next().await.unwrap()), Some(2), "and serves what the ledger gets");

    // While the channel is not ready, STRICT is refused up front, BEST_EFFORT reads the ledger.
    let range = |errors| seek(oldest(), newest(), SeekBehavior::FailIfNotReady, errors);
    let (status, info) = f.open(range(SeekErrorResponse::Strict)).err().unwrap();
    assert_eq!(status, Status::ServiceUnavailable);
    assert!(info.contains("errored") && info.contains("BEST_EFFORT"), "{info}");
    let (blocks, status, _) = drain(f.open(range(SeekErrorResponse::BestEffort)).unwrap()).await;
    assert_eq!((blocks, status), (vec![0, 1, 2], Status::Success));
}

#[tokio::test]
async fn malformed_requests_are_bad_requests() {
    let f = Fixture::new(1);
    let bad = |format, raw: &'static [u8]| {
        Subscription::open_on(CHANNEL, &f.ledger, &f.status, decode_request(format, Bytes::from_static(raw)))
            .err()
            .unwrap()
    };
    assert_eq!(bad(Format::Protobuf, b"\xff\xff\xff").0, Status::BadRequest);
    assert_eq!(bad(Format::Json, b"{not json").0, Status::BadRequest);
    // A broadcast envelope is not a deliver request.
    let tx = crate::cli::client::transaction(&f.signer, CHANNEL, 100).encode_to_vec();
    let err = Subscription::open_on(CHANNEL, &f.ledger, &f.status, decode_request(Format::Protobuf, tx.into()))
        .err()
        .unwrap();
    assert_eq!(err.0, Status::BadRequest, "{}", err.1);
    // A request for another channel.
    let other = seek_request(
        &f.signer,
        "other",
        &seek(oldest(), newest(), SeekBehavior::BlockUntilReady, SeekErrorResponse::Strict),
    );
    let err = Subscription::open_on(
        CHANNEL,
        &f.ledger,
        &f.status,
        decode_request(Format::Protobuf, other.encode_to_vec().into()),
    );
    assert_eq!(err.err().unwrap().0, Status::BadRequest);
}

#[test]
fn encodings_carry_the_same_response() {
    let block =
        Block { header: Some(crate::proto::BlockHeader { number: 7, ..Default::default() }), ..Default::default() };
    let raw: Bytes = block.encode_to_vec().into();
    let plain = || Item::Block(BlockBytes::Plain(raw.clone()));
    let from_proto = DeliverResponse::decode(encode(Format::Protobuf, plain())).unwrap();
    let from_json: DeliverResponse = serde_json::from_slice(&encode(Format::Json, plain())).unwrap();
    assert_eq!(from_proto, DeliverResponse::block(block.clone()));
    assert_eq!(from_json, from_proto);
    // A block kept framed by the ledger gives the very same frame.
    let framed = BlockBytes::framed(block.encoded_len(), |out| block.encode(out).unwrap());
    assert_eq!(encode(Format::Protobuf, Item::Block(framed)), encode(Format::Protobuf, plain()));

    let end = || Item::End(Status::NotFound, "why".into());
    let mut delimited = Framing::Delimited.frame(end());
    let len = prost::encoding::decode_varint(&mut delimited).unwrap() as usize;
    assert_eq!(len, delimited.len());
    assert_eq!(DeliverResponse::decode(delimited).unwrap(), DeliverResponse::status(Status::NotFound, "why"));
    let line = Framing::Ndjson.frame(end());
    assert!(line.ends_with(b"\n") && !line[..line.len() - 1].contains(&b'\n'));
    let parsed: DeliverResponse = serde_json::from_slice(&line).unwrap();
    assert_eq!(parsed, DeliverResponse::status(Status::NotFound, "why"));
}

#[tokio::test]
async fn a_live_stream_ends_when_the_channel_stops_letting_its_creator_read() {
    let mut f = Fixture::new(2);
    let follow = seek(oldest(), specified(u64::MAX), SeekBehavior::BlockUntilReady, SeekErrorResponse::Strict);
    let mut sub = f.open(follow).unwrap();
    for want in 0..2 {
        assert_eq!(sub.next().await.as_ref().and_then(number), Some(want));
    }
    assert!(pending(&mut sub).await, "the stream waits for block 2");

    // The configuration changes, and the creator (a client) still reads: nothing ends.
    f.status.set_access_arc(crate::cli::client::tests::access_of(&f.config));
    f.append();
    assert_eq!(sub.next().await.as_ref().and_then(number), Some(2));

    // Readers becomes "admins of TestMSP" while the stream waits at the tip: it ends with
    // FORBIDDEN, before any further block, and a new request is refused too.
    assert!(pending(&mut sub).await, "the stream waits for block 3");
    let mut admins_only = f.config.clone();
    let org = crate::core::configedit::group_mut(&mut admins_only, &["Application", "TestMSP"]).unwrap();
    let readers = org.policies.iter_mut().find(|p| p.key == "Readers").unwrap().value.as_mut().unwrap();
    let admin = crate::proto::msp::msp_role::MspRoleType::Admin;
    readers.policy.as_mut().unwrap().value = crate::core::genesis::any_of("TestMSP", &[admin]).encode_to_vec().into();
    let mut waiting = Box::pin(sub.next());
    assert!(futures_util::poll!(waiting.as_mut()).is_pending());
    f.status.set_access_arc(crate::cli::client::tests::access_of(&admins_only));
    // The waiting stream wakes for the change alone (no block yet); had it not re-checked then,
    // the block that comes next would reach it.
    let item = match futures_util::poll!(waiting.as_mut()) {
        std::task::Poll::Ready(item) => item,
        std::task::Poll::Pending => {
            f.append();
            tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("the stream reacts")
        }
    };
    match item {
        Some(Item::End(Status::Forbidden, info)) => {
            assert!(info.contains("configuration changed") && info.contains("Readers"), "{info}")
        }
        other => panic!("expected FORBIDDEN, got {other:?}"),
    }
    let (status, info) = f.open(follow).err().unwrap();
    assert_eq!(status, Status::Forbidden, "{info}");
}

#[tokio::test]
async fn a_live_stream_ends_when_its_creators_certificate_expires() {
    use crate::identity::{issue, Role, SigningIdentity, Validity};
    let mut f = Fixture::new(1);
    let now = time::OffsetDateTime::now_utc();
    let brief = Validity::new(now - time::Duration::minutes(1), now + time::Duration::seconds(2)).unwrap();
    let dir = issue(&f.crypto.path().join("TestMSP"), "brief", Role::Client, Default::default(), brief).unwrap();
    f.signer = SigningIdentity::load(&dir).unwrap();
    let mut sub =
        f.open(seek(oldest(), specified(u64::MAX), SeekBehavior::BlockUntilReady, SeekErrorResponse::Strict)).unwrap();
    assert_eq!(sub.next().await.as_ref().and_then(number), Some(0));
    match tokio::time::timeout(Duration::from_secs(10), sub.next()).await.expect("the stream ends at expiry") {
        Some(Item::End(Status::Forbidden, info)) => assert!(info.contains("expired"), "{info}"),
        other => panic!("expected FORBIDDEN, got {other:?}"),
    }
}
