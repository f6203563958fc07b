//! Hostile input, generated: arbitrary bytes, and valid envelopes with bytes flipped, cut,
//! inserted or overwritten, through every decoder a client reaches (protobuf and JSON), the
//! structural check of a broadcast, the access check (certificate parsing and signature) and
//! SeekInfo resolution. Nothing may panic. A mutated envelope passes the access check only if its
//! signed content is the original's. Kafka records as anyone with access to a channel's topic
//! could write them go through the chain that cuts blocks: garbage is skipped, never a panic.
//!
//! The committed corpus, `tests/corpus/` (valid inputs of every kind a client or the partition
//! hands the OSN, and the edge cases found so far), is decoded as is and mutated. Bounded by
//! proptest's case count, 4,096 per property, so it runs in every `cargo test`; `OSN_FUZZ_CASES=N`
//! runs N (`scripts/fuzz`). A failing case is kept in `proptest-regressions/core/fuzz_tests.txt`,
//! to be committed, and its input belongs in the corpus.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message as _;

use crate::core::access::{Access, Request};
use crate::core::envelope::check_broadcast;
use crate::core::policy::PolicyName;
use crate::core::seek::{resolve, SeekError};
use crate::http::negotiate::Format;
use crate::proto::common::{ConfigEnvelope, ConfigUpdate, ConfigUpdateEnvelope};
use crate::proto::{
    Block, ChannelHeader, DeliverResponse, Envelope, KafkaMessage, Payload, SeekInfo, SeekPosition, SignatureHeader,
};

const CHANNEL: &str = "fuzz";

/// The committed corpus.
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

/// Cases per property: `OSN_FUZZ_CASES`, or 4,096.
fn cases() -> u32 {
    std::env::var("OSN_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(4096)
}

/// The corpus's inputs, by file name.
fn corpus() -> &'static [(String, Vec<u8>)] {
    static CORPUS_FILES: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    CORPUS_FILES.get_or_init(|| {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(CORPUS)
            .expect("tests/corpus")
            .map(|e| e.expect("a corpus entry").path())
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).expect("a corpus file")))
            .collect();
        files.sort();
        files
    })
}

/// A chain of the channel with nothing ordered yet, batches of 10.
fn fresh_chain() -> crate::core::chain::Chain {
    let tip = crate::core::chain::ChainTip {
        next_number: 1,
        previous_hash: Bytes::from_static(&[1; 32]),
        kafka: Default::default(),
        last_config: 0,
    };
    let batch =
        crate::proto::BatchSize { max_message_count: 10, absolute_max_bytes: 1 << 20, preferred_max_bytes: 1 << 19 };
    crate::core::chain::Chain::with_batch_size(CHANNEL, tip, batch)
}

/// Bytes as a record of the channel's partition: whatever they are, the chain consumes them
/// without panicking, and what it cuts is well-formed and numbered in order.
fn consume_as_record(chain: &mut crate::core::chain::Chain, offset: i64, raw: &[u8]) {
    let next = chain.next_number();
    let out = chain.consume(offset, raw);
    for (i, block) in out.blocks.iter().enumerate() {
        assert_eq!(block.header.as_ref().map(|h| h.number), Some(next + i as u64));
    }
}

/// A valid signed envelope of the channel, and the channel's access rules (its organisation).
struct Seed {
    envelope: Envelope,
    marshaled: Bytes,
    access: Arc<Access>,
    _dir: tempfile::TempDir,
}

fn seed() -> &'static Seed {
    static SEED: OnceLock<Seed> = OnceLock::new();
    SEED.get_or_init(|| {
        let (dir, signer, config) = crate::cli::client::tests::test_org();
        let envelope = crate::cli::client::transaction(&signer, CHANNEL, 300);
        let access = crate::cli::client::tests::access_of(&config);
        Seed { marshaled: envelope.encode_to_vec().into(), envelope, access, _dir: dir }
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Overwrite(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Mutation::Overwrite(i, b)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match m {
            Mutation::Flip(i, bit) if !bytes.is_empty() => bytes[i % len] ^= 1 << bit,
            Mutation::Truncate(n) => bytes.truncate(n % len),
            Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), *b),
            Mutation::Overwrite(i, b) if !bytes.is_empty() => {
                let at = i % len;
                for (k, byte) in b.iter().enumerate().take(bytes.len() - at) {
                    bytes[at + k] = *byte;
                }
            }
            _ => {}
        }
    }
    bytes
}

/// Every decoder a client's bytes can reach; none may panic, whatever they make of the bytes.
fn decode_everything(raw: &[u8]) {
    let b = Bytes::copy_from_slice(raw);
    let _ = Envelope::decode(b.clone());
    let _ = Payload::decode(b.clone());
    let _ = ChannelHeader::decode(b.clone());
    let _ = SignatureHeader::decode(b.clone());
    let _ = SeekInfo::decode(b.clone());
    let _ = Block::decode(b.clone());
    let _ = DeliverResponse::decode(b.clone());
    let _ = KafkaMessage::decode(b.clone());
    let _ = ConfigUpdateEnvelope::decode(b.clone());
    let _ = ConfigUpdate::decode(b.clone());
    let _ = ConfigEnvelope::decode(b.clone());
    let _ = crate::proto::msp::SerializedIdentity::decode(b.clone());
    let _ = crate::core::config::envelope_parts(raw);
    let _ = crate::http::broadcast::decode_envelope(Format::Protobuf, b.clone());
    let _ = crate::http::broadcast::decode_envelope(Format::Json, b.clone());
    let _ = crate::http::broadcast::batch::split(Format::Protobuf, b.clone());
    let _ = crate::http::broadcast::batch::split(Format::Json, b);
    consume_as_record(&mut fresh_chain(), 0, raw);
}

/// The broadcast path past decoding: structural check, then the access check of what passes.
fn check(envelope: &Envelope) -> Option<Envelope> {
    let s = seed();
    let checked = check_broadcast(envelope, CHANNEL, 1 << 20).ok()?;
    let request = Request {
        payload: &envelope.payload,
        signature: &envelope.signature,
        creator: &checked.creator,
        timestamp: checked.timestamp(),
    };
    let now = crate::verify::unix_now();
    let one = s.access.check(&request, PolicyName::Writers, now);
    let all = s.access.check_all(std::slice::from_ref(&request), PolicyName::Writers, now);
    assert_eq!(one.is_ok(), all[0].is_ok(), "one by one and in a batch agree: {one:?} {all:?}");
    one.ok().map(|_| envelope.clone())
}

fn position() -> impl Strategy<Value = Option<SeekPosition>> {
    use crate::core::seek::{newest, oldest, specified};
    prop_oneof![
        Just(None),
        Just(Some(SeekPosition { r#type: None })),
        Just(Some(oldest())),
        Just(Some(newest())),
        prop_oneof![any::<u64>(), 0u64..10, Just(u64::MAX)].prop_map(|n| Some(specified(n))),
    ]
}

#[test]
fn the_unaltered_seed_passes_every_check() {
    // Else every refusal below would be trivial.
    let s = seed();
    assert!(check(&s.envelope).is_some());
    let json = serde_json::to_vec(&s.envelope).unwrap();
    let (envelope, _) = crate::http::broadcast::decode_envelope(Format::Json, json.into()).unwrap();
    assert!(check(&envelope).is_some());
}

/// Writes the corpus's generated inputs (run with `OSN_WRITE_CORPUS=1` after a wire change;
/// hand-made edge cases in the directory are kept).
fn write_corpus() {
    use crate::proto::kafka_message_regular::Class;
    let s = seed();
    let envelope = s.marshaled.to_vec();
    let json = serde_json::to_vec(&s.envelope).unwrap();
    let mut batch = Vec::new();
    for _ in 0..3 {
        s.envelope.encode_length_delimited(&mut batch).unwrap();
    }
    let genesis = crate::core::genesis::bare_genesis(
        CHANNEL,
        crate::proto::BatchSize { max_message_count: 10, absolute_max_bytes: 1 << 20, preferred_max_bytes: 1 << 19 },
    )
    .encode_to_vec();
    let seek = SeekInfo {
        start: Some(crate::core::seek::oldest()),
        stop: Some(crate::core::seek::newest()),
        ..Default::default()
    };
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("envelope.pb", envelope.clone()),
        ("envelope.json", json.clone()),
        ("batch.pb", batch),
        (
            "batch.json",
            format!("[{}, {}]", String::from_utf8_lossy(&json), String::from_utf8_lossy(&json)).into_bytes(),
        ),
        ("genesis-block.pb", genesis),
        ("seek-info.pb", seek.encode_to_vec()),
        ("record-regular.pb", KafkaMessage::regular(envelope.clone().into(), 0, Class::Normal).encode_to_vec()),
        ("record-config.pb", KafkaMessage::regular(envelope.into(), 0, Class::Config).encode_to_vec()),
        ("record-time-to-cut.pb", KafkaMessage::time_to_cut(1).encode_to_vec()),
        ("record-connect.pb", KafkaMessage::connect(Bytes::from_static(&[7; 32])).encode_to_vec()),
    ];
    std::fs::create_dir_all(CORPUS).unwrap();
    for (name, bytes) in files {
        std::fs::write(format!("{CORPUS}/{name}"), bytes).unwrap();
    }
}

#[test]
fn every_corpus_input_decodes_and_is_consumed_without_panicking() {
    if std::env::var_os("OSN_WRITE_CORPUS").is_some() {
        write_corpus();
    }
    let corpus = corpus();
    assert!(corpus.len() >= 10, "the corpus is in tests/corpus ({} files)", corpus.len());
    let mut chain = fresh_chain();
    for (offset, (name, raw)) in corpus.iter().enumerate() {
        decode_everything(raw);
        consume_as_record(&mut chain, offset as i64, raw);
        if let Ok(envelope) = Envelope::decode(raw.as_slice()) {
            if name != "envelope.pb" {
                assert!(check(&envelope).is_none(), "{name} passed the access check");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn a_mutated_corpus_input_never_panics_a_decoder_or_the_chain(
        pick in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        let (_, raw) = pick.get(corpus());
        let raw = mutate(raw.clone(), &mutations);
        decode_everything(&raw);
        // After a valid record, so that a cut is possible.
        let mut chain = fresh_chain();
        let (_, good) = corpus().iter().find(|(n, _)| n == "record-regular.pb").expect("record-regular.pb");
        consume_as_record(&mut chain, 0, good);
        consume_as_record(&mut chain, 1, &raw);
    }

    #[test]
    fn arbitrary_bytes_never_panic_a_decoder(raw in proptest::collection::vec(any::<u8>(), 0..2048)) {
        decode_everything(&raw);
        if let Ok(envelope) = Envelope::decode(raw.as_slice()) {
            prop_assert!(check(&envelope).is_none(), "random bytes passed the access check");
        }
    }

    #[test]
    fn a_mutated_envelope_is_refused_unless_its_signed_content_is_intact(
        mutations in proptest::collection::vec(mutation(), 1..6)
    ) {
        let s = seed();
        let raw = mutate(s.marshaled.to_vec(), &mutations);
        decode_everything(&raw);
        if let Ok(envelope) = Envelope::decode(raw.as_slice()) {
            if let Some(passed) = check(&envelope) {
                prop_assert_eq!(&passed.payload, &s.envelope.payload);
                prop_assert_eq!(&passed.signature, &s.envelope.signature);
            }
        }
        // The same mutations on its JSON form.
        let json = serde_json::to_vec(&s.envelope).expect("an envelope serialises");
        let raw = mutate(json, &mutations);
        if let Ok((envelope, _)) = crate::http::broadcast::decode_envelope(Format::Json, raw.into()) {
            if let Some(passed) = check(&envelope) {
                prop_assert_eq!(&passed.payload, &s.envelope.payload);
                prop_assert_eq!(&passed.signature, &s.envelope.signature);
            }
        }
    }

    #[test]
    fn a_mutated_payload_or_creator_never_passes_with_the_original_signature(
        mutations in proptest::collection::vec(mutation(), 1..6),
        creator_only in any::<bool>(),
    ) {
        let s = seed();
        let mut envelope = s.envelope.clone();
        if creator_only {
            // Re-encode the payload with a mutated creator (certificate bytes from a client).
            let mut payload = Payload::decode(envelope.payload.clone()).unwrap();
            let header = payload.header.as_mut().unwrap();
            let mut sh = SignatureHeader::decode(header.signature_header.clone()).unwrap();
            sh.creator = mutate(sh.creator.to_vec(), &mutations).into();
            header.signature_header = sh.encode_to_vec().into();
            envelope.payload = payload.encode_to_vec().into();
        } else {
            envelope.payload = mutate(envelope.payload.to_vec(), &mutations).into();
        }
        if envelope.payload != s.envelope.payload {
            prop_assert!(check(&envelope).is_none(), "an altered payload passed with the original signature");
        }
    }

    #[test]
    fn any_seek_info_resolves_or_is_refused_by_the_rules(
        start in position(),
        stop in position(),
        behavior in any::<i32>(),
        error_response in any::<i32>(),
        height in prop_oneof![1u64..20, any::<u64>().prop_map(|h| h.max(1))],
    ) {
        let seek = SeekInfo { start, stop, behavior, error_response };
        match resolve(&seek, height) {
            Ok(range) => {
                prop_assert!(range.start <= range.stop);
                prop_assert!(range.start <= height);
                prop_assert!(range.wait || range.start < height);
            }
            Err(e) => {
                // Every refusal maps to its status and says what is wrong.
                let _ = e.status();
                prop_assert!(!e.to_string().is_empty());
                if let SeekError::StopBeforeStart { start, stop } = e {
                    prop_assert!(stop < start);
                }
            }
        }
        // Its encoding round-trips and decodes the same.
        let again = SeekInfo::decode(seek.encode_to_vec().as_slice()).unwrap();
        prop_assert_eq!(again, seek);
    }
}
