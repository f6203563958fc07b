//! Known-bytes vectors, encoded by hand from the protobuf wire format and Fabric's field numbers,
//! so a wrong field number or type in the `.proto` files fails here.

use bytes::Bytes;
use prost::Message;

use super::*;

#[test]
fn envelope_known_bytes() {
    // field 1 (payload, bytes) = "ab"; field 2 (signature, bytes) = "c"
    let raw = [0x0a, 0x02, b'a', b'b', 0x12, 0x01, b'c'];
    let env = Envelope::decode(&raw[..]).unwrap();
    assert_eq!(env, Envelope { payload: Bytes::from_static(b"ab"), signature: Bytes::from_static(b"c") });
    assert_eq!(env.encode_to_vec(), raw);
}

#[test]
fn block_known_bytes() {
    #[rustfmt::skip]
    let raw = [
        0x0a, 0x08, 0x08, 0x01, 0x12, 0x01, 0xaa, 0x1a, 0x01, 0xbb, // header{number 1, previous_hash aa, data_hash bb}
        0x12, 0x03, 0x0a, 0x01, b'x',                               // data{data ["x"]}
        0x1a, 0x05, 0x0a, 0x00, 0x0a, 0x01, b'm',                   // metadata{metadata ["", "m"]}
    ];
    let block = Block::decode(&raw[..]).unwrap();
    let header = block.header.as_ref().unwrap();
    assert_eq!((header.number, &header.previous_hash[..], &header.data_hash[..]), (1, &[0xaa][..], &[0xbb][..]));
    assert_eq!(block.data.as_ref().unwrap().data, vec![Bytes::from_static(b"x")]);
    assert_eq!(block.metadata.as_ref().unwrap().metadata, vec![Bytes::new(), Bytes::from_static(b"m")]);
    assert_eq!(block.encode_to_vec(), raw);
}

#[test]
fn kafka_message_known_bytes() {
    // regular{payload "p", config_seq 2, class NORMAL, original_offset 7}
    let raw = [0x0a, 0x09, 0x0a, 0x01, b'p', 0x10, 0x02, 0x18, 0x01, 0x20, 0x07];
    let msg = KafkaMessage::decode(&raw[..]).unwrap();
    match msg.r#type {
        Some(kafka_message::Type::Regular(ref r)) => {
            assert_eq!(&r.payload[..], b"p");
            assert_eq!(r.config_seq, 2);
            assert_eq!(r.class(), kafka_message_regular::Class::Normal);
            assert_eq!(r.original_offset, 7);
        }
        other => panic!("expected regular, got {other:?}"),
    }
    assert_eq!(msg.encode_to_vec(), raw);

    // time_to_cut{block_number 300}: field 2, 300 = varint ac 02
    let raw = [0x12, 0x03, 0x08, 0xac, 0x02];
    assert_eq!(KafkaMessage::decode(&raw[..]).unwrap(), KafkaMessage::time_to_cut(300));
    // connect{}: field 3, empty
    assert_eq!(KafkaMessage::connect(Bytes::new()).encode_to_vec(), vec![0x1a, 0x00]);

    // KafkaMetadata{last_offset_persisted -1}: int64 -1 is a ten-byte varint
    let raw = [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    assert_eq!(KafkaMetadata::decode(&raw[..]).unwrap().last_offset_persisted, -1);
}

#[test]
fn seek_info_and_responses_known_bytes() {
    // start{specified{number 5}}, stop{newest{}}, behavior FAIL_IF_NOT_READY, error_response BEST_EFFORT
    let raw = [0x0a, 0x04, 0x1a, 0x02, 0x08, 0x05, 0x12, 0x02, 0x0a, 0x00, 0x18, 0x01, 0x20, 0x01];
    let seek = SeekInfo::decode(&raw[..]).unwrap();
    assert_eq!(seek.start, Some(crate::core::seek::specified(5)));
    assert_eq!(seek.stop, Some(crate::core::seek::newest()));
    assert_eq!(seek.encode_to_vec(), raw);
    // DeliverResponse{status NOT_FOUND}: 404 = varint 94 03
    let resp = DeliverResponse::status(Status::NotFound, "");
    assert_eq!(resp.encode_to_vec(), vec![0x08, 0x94, 0x03]);
    // OSN's info extension is field 100 (tag 100<<3|2 = varint a2 06), after the oneof.
    let resp = DeliverResponse::status(Status::NotFound, "x");
    assert_eq!(resp.encode_to_vec(), vec![0x08, 0x94, 0x03, 0xa2, 0x06, 0x01, b'x']);
    assert_eq!(serde_json::to_string(&resp).unwrap(), r#"{"info":"x","status":"NOT_FOUND"}"#);
    // BroadcastResponse{status SUCCESS, info "ok"}: 200 = varint c8 01
    let resp = BroadcastResponse { status: Status::Success as i32, info: "ok".into() };
    assert_eq!(resp.encode_to_vec(), vec![0x08, 0xc8, 0x01, 0x12, 0x02, b'o', b'k']);
}

#[test]
fn json_follows_the_canonical_mapping() {
    let env = Envelope { payload: Bytes::from_static(b"ab"), signature: Bytes::from_static(b"c") };
    assert_eq!(serde_json::to_string(&env).unwrap(), r#"{"payload":"YWI=","signature":"Yw=="}"#);
    assert_eq!(serde_json::from_str::<Envelope>(r#"{"payload":"YWI=","signature":"Yw=="}"#).unwrap(), env);
    let meta = KafkaMetadata {
        last_offset_persisted: -1,
        last_original_offset_processed: 0,
        last_resubmitted_config_offset: 3,
    };
    assert_eq!(
        serde_json::to_string(&meta).unwrap(),
        r#"{"lastOffsetPersisted":"-1","lastResubmittedConfigOffset":"3"}"#
    );
    let resp = BroadcastResponse { status: Status::Forbidden as i32, info: "no".into() };
    assert_eq!(serde_json::to_string(&resp).unwrap(), r#"{"status":"FORBIDDEN","info":"no"}"#);
}

#[test]
fn status_maps_to_http_codes() {
    assert_eq!(Status::Success.http_code(), 200);
    assert_eq!(Status::RequestEntityTooLarge.http_code(), 413);
    assert_eq!(Status::ServiceUnavailable.http_code(), 503);
    assert_eq!(Status::Unknown.http_code(), 500);
}
