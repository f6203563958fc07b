//! Go's re-marshal of an Envelope, case by case, and on every envelope of the recorded runs
//! (which Fabric's orderer wrote into its blocks unchanged: they were Go's bytes already).

use std::path::Path;

use bytes::Bytes;
use prost::Message as _;

use super::*;

fn field(number: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![number << 3 | 2, contents.len() as u8];
    out.extend_from_slice(contents);
    out
}

fn go(parts: &[Vec<u8>]) -> Vec<u8> {
    envelope(&Bytes::from(parts.concat())).unwrap().to_vec()
}

#[test]
fn what_go_writes_is_kept_as_it_is() {
    let raw = Bytes::from([field(1, b"payload"), field(2, b"sig")].concat());
    let same = envelope(&raw).unwrap();
    assert_eq!(same, raw);
    assert_eq!(same.as_ptr(), raw.as_ptr(), "no copy");
    // An envelope made by prost (OSN's clients) is Go's too.
    let made = crate::proto::Envelope { payload: Bytes::from_static(b"p"), signature: Bytes::from_static(b"s") };
    let raw = Bytes::from(made.encode_to_vec());
    assert_eq!(envelope(&raw).unwrap(), raw);
}

#[test]
fn other_bytes_become_what_go_writes() {
    let (p, s) = (field(1, b"payload"), field(2, b"sig"));
    // Fields in number order.
    assert_eq!(go(&[s.clone(), p.clone()]), [p.clone(), s.clone()].concat());
    // The last occurrence wins; the earlier one is gone.
    assert_eq!(go(&[field(1, b"old"), s.clone(), p.clone()]), [p.clone(), s.clone()].concat());
    // Empty fields are omitted.
    assert_eq!(go(&[p.clone(), field(2, b"")]), p.clone());
    assert_eq!(go(&[field(1, b""), s.clone()]), s.clone());
    assert_eq!(go(&[field(1, b""), field(2, b"")]), Vec::<u8>::new());
    // Unknown fields are kept, as they came and in order, after the known ones.
    let (u7, u9) = (field(7, b"x"), vec![9 << 3, 0x96, 0x01]); // a length-delimited and a varint field
    assert_eq!(
        go(&[u9.clone(), p.clone(), u7.clone(), s.clone()]),
        [p.clone(), s.clone(), u9.clone(), u7.clone()].concat()
    );
    // A known field with another wire type is an unknown one.
    let odd = vec![1 << 3, 5]; // field 1 as a varint
    assert_eq!(go(&[odd.clone(), p.clone(), s.clone()]), [p.clone(), s.clone(), odd.clone()].concat());
    // A padded tag or length is written afresh.
    let padded = [vec![0x8a, 0x00, 0x87, 0x00], b"payload".to_vec()].concat();
    assert_eq!(go(&[padded, s.clone()]), [p.clone(), s.clone()].concat());
    // A group (with a nested one) is kept whole.
    let group = vec![5 << 3 | 3, 6 << 3 | 3, 6 << 3 | 4, 3 << 3, 1, 5 << 3 | 4];
    assert_eq!(go(&[group.clone(), p.clone(), s.clone()]), [p.clone(), s.clone(), group].concat());
}

#[test]
fn what_go_cannot_parse_is_refused() {
    for raw in [
        vec![1 << 3 | 2, 10, b'a'],  // a length past the end
        vec![1 << 3 | 2],            // a length missing
        vec![0xff; 11],              // a varint too long
        vec![3 << 3 | 7, 0],         // wire type 7
        vec![3 << 3 | 4],            // an end of group outside any group
        vec![5 << 3 | 3, 1 << 3, 1], // a group that does not end
        vec![4 << 3 | 1, 1, 2, 3],   // a fixed64 cut short
    ] {
        assert!(envelope(&Bytes::from(raw.clone())).is_err(), "{raw:?}");
    }
}

#[test]
fn every_recorded_envelope_is_gos_already() {
    let runs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fabric-1.4.12/runs");
    let mut checked = 0;
    for run in ["single", "two-orderers/orderer1"] {
        let dir = runs.join(run.replace("/orderer1", "")).join("blocks").join(run.split('/').nth(1).unwrap_or(""));
        for channel in ["syschannel", "ch1"] {
            for n in 0.. {
                let Ok(raw) = std::fs::read(dir.join(channel).join(format!("{n}.block"))) else { break };
                let block = crate::proto::Block::decode(raw.as_slice()).unwrap();
                for data in block.data.unwrap().data {
                    assert_eq!(envelope(&data).unwrap(), data, "{run} {channel} block {n}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 710, "every envelope of both runs");
}

#[test]
fn the_chain_orders_gos_bytes() {
    use crate::core::chain::{Chain, ChainTip};
    use crate::proto::{kafka_message_regular::Class, BatchSize, KafkaMessage};
    let tip = ChainTip {
        next_number: 1,
        previous_hash: Bytes::new(),
        kafka: crate::core::block::genesis_kafka_metadata(),
        last_config: 0,
    };
    let batch = BatchSize { max_message_count: 1, absolute_max_bytes: 1000, preferred_max_bytes: 500 };
    let mut chain = Chain::with_batch_size("ch", tip, batch);
    let sent = Bytes::from([field(2, b"sig"), field(7, b"x"), field(1, b"payload")].concat());
    let gos = Bytes::from([field(1, b"payload"), field(2, b"sig"), field(7, b"x")].concat());
    let out = chain.consume(0, &KafkaMessage::regular(sent.clone(), 0, Class::Normal).encode_to_vec());
    assert_eq!(out.blocks[0].data.as_ref().unwrap().data, vec![gos]);
}

#[test]
fn deeply_nested_groups_do_not_exhaust_the_stack() {
    let depth = 1 << 20;
    let raw = [vec![5 << 3 | 3; depth], vec![5 << 3 | 4; depth]].concat();
    let kept = envelope(&Bytes::from(raw.clone())).unwrap();
    assert_eq!(kept.len(), raw.len());
    assert!(envelope(&Bytes::from(vec![5 << 3 | 3; depth])).is_err());
}
