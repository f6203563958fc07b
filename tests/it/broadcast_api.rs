//! broadcast:batch and the broadcast websocket: one answer per envelope, in order, with Fabric's
//! statuses; a refused envelope does not stop the others; malformed input gets an error and a
//! clean close; everything accepted is ordered exactly once.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use osn::proto::{BroadcastResponse, ChannelHeader, Envelope, HeaderType, Payload, Status};
use prost::Message as _;

use crate::harness::*;
use osn::cli::client::transaction;

/// A valid envelope whose channel header names `channel`.
fn for_channel(channel: &str) -> Envelope {
    transaction(&crypto().client, channel, 300)
}

fn oversized(channel: &str, spec: &OsnSpec) -> Envelope {
    transaction(&crypto().client, channel, spec.absolute_max_bytes as usize + 1024)
}

fn empty() -> Envelope {
    Envelope::default()
}

fn seek_on_broadcast(channel: &str) -> Envelope {
    let ch =
        ChannelHeader { r#type: HeaderType::DeliverSeekInfo as i32, channel_id: channel.into(), ..Default::default() };
    let payload = Payload {
        header: Some(osn::proto::Header { channel_header: ch.encode_to_vec().into(), ..Default::default() }),
        data: Bytes::new(),
    };
    Envelope { payload: payload.encode_to_vec().into(), signature: Bytes::new() }
}

fn delimited(envs: &[Envelope]) -> Bytes {
    let mut out = BytesMut::new();
    envs.iter().for_each(|e| e.encode_length_delimited(&mut out).unwrap());
    out.freeze()
}

/// POSTs a batch; the answer comes in the request's format.
async fn post(url: &str, content_type: &str, body: impl Into<Bytes>) -> (u16, Bytes) {
    post_accept(url, content_type, content_type, body).await
}

async fn post_accept(url: &str, content_type: &str, accept: &str, body: impl Into<Bytes>) -> (u16, Bytes) {
    let mut resp = client()
        .post(url)
        .insert_header(("Content-Type", content_type))
        .insert_header(("Accept", accept))
        .send_body(body.into())
        .await
        .expect("batch request");
    (resp.status().as_u16(), resp.body().limit(64 << 20).await.unwrap())
}

fn statuses(answers: &[BroadcastResponse]) -> Vec<i32> {
    answers.iter().map(|a| a.status).collect()
}

#[actix_rt::test]
async fn batch_broadcast_answers_every_envelope_in_order() {
    let channel = channel_name("batch");
    let broker = Broker::with_topic(&channel);
    let spec = OsnSpec::new(&channel, &broker);
    let osn = Osn::start(spec.clone()).await;
    let url = format!("{}/v1/channels/{channel}/broadcast:batch", osn.url);
    let mut sent = Vec::new();

    // Protobuf: mixed valid and refused envelopes get their own answers, in order.
    let valid: Vec<Envelope> = (0..4).map(|_| for_channel(&channel)).collect();
    let batch = vec![
        valid[0].clone(),
        oversized(&channel, &spec),
        for_channel("another-channel"),
        valid[1].clone(),
        empty(),
        seek_on_broadcast(&channel),
        valid[2].clone(),
    ];
    let (code, mut body) = post(&url, "application/x-protobuf", delimited(&batch)).await;
    assert_eq!(code, 200);
    let mut answers = Vec::new();
    while body.has_remaining() {
        answers.push(BroadcastResponse::decode_length_delimited(&mut body).unwrap());
    }
    use Status::*;
    let want = [Success, RequestEntityTooLarge, BadRequest, Success, BadRequest, BadRequest, Success];
    assert_eq!(statuses(&answers), want.map(|s| s as i32), "{answers:#?}");
    assert!(answers[1].info.contains("AbsoluteMaxBytes"), "{:?}", answers[1]);
    assert!(answers[2].info.contains("another-channel"), "{:?}", answers[2]);
    sent.extend_from_slice(&valid[..3]);

    // JSON: an array of Envelopes, each with its own answer.
    let json = format!(
        "[{}, {}]",
        serde_json::to_string(&valid[3]).unwrap(),
        serde_json::to_string(&oversized(&channel, &spec)).unwrap()
    );
    let (code, body) = post(&url, "application/json", json).await;
    assert_eq!(code, 200);
    let answers: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    let names: Vec<&str> = answers.iter().map(|a| a["status"].as_str().unwrap()).collect();
    assert_eq!(names, ["SUCCESS", "REQUEST_ENTITY_TOO_LARGE"], "{answers:?}");
    sent.push(valid[3].clone());

    // Whole-request failures: one BroadcastResponse with the status's HTTP code. An item that is
    // not an envelope at all makes the request a BAD_REQUEST naming it, and nothing is relayed
    // (the first item here would be ordered otherwise).
    let first = serde_json::to_string(&for_channel(&channel)).unwrap();
    let bytes = |s: String| Bytes::from(s);
    let cases: Vec<(&str, &str, Bytes, u16, &str)> = vec![
        ("application/json", "not JSON", Bytes::from_static(b"{\"payload\":"), 400, "JSON array"),
        ("application/json", "an object, not an array", Bytes::from_static(b"{}"), 400, "JSON array"),
        ("application/json", "an empty array", Bytes::from_static(b"[]"), 400, "no envelope"),
        (
            "application/json",
            "a number among envelopes",
            bytes(format!("[{first}, 7]")),
            400,
            "envelope 1 of the batch",
        ),
        (
            "application/json",
            "an unknown field",
            bytes(format!("[{first}, {{\"payload\":\"AQ==\",\"extra\":1}}]")),
            400,
            "envelope 1 of the batch",
        ),
        ("application/x-protobuf", "a truncated frame", Bytes::from_static(&[0x20, 1, 2, 3]), 400, "length prefix"),
        (
            "application/x-protobuf",
            "a frame that is no envelope",
            Bytes::from_static(&[0x02, 0x0a, 0xff]),
            400,
            "envelope 0 of the batch",
        ),
        ("text/plain", "an unsupported content type", Bytes::from_static(b"x"), 400, "Content-Type"),
    ];
    for (content_type, what, body, code, info) in cases {
        let (got, answer) = post_accept(&url, content_type, "application/json", body).await;
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
        assert_eq!(got, code, "{what}: {answer}");
        assert!(answer["info"].as_str().unwrap_or_default().contains(info), "{what}: {answer}");
    }
    let (code, _) = post(&format!("{}/v1/channels/nope/broadcast:batch", osn.url), "application/json", "[]").await;
    assert_eq!(code, 404);

    // Too many envelopes: the count limit (10,000 by default) is a 413 for the whole request.
    let many = vec![empty(); 10_001];
    let (code, body) = post(&url, "application/x-protobuf", delimited(&many)).await;
    assert_eq!(code, 413, "{}", String::from_utf8_lossy(&body));

    // Everything accepted is ordered, exactly once.
    let chain = osn.wait_for_transactions(sent.len(), Duration::from_secs(30)).await;
    check_chain(&chain, &sent, &spec);
}

#[actix_rt::test]
async fn broadcast_websocket_streams_answers_in_order_and_closes_on_garbage() {
    let channel = channel_name("bcws");
    let broker = Broker::with_topic(&channel);
    let spec = OsnSpec::new(&channel, &broker);
    let osn = Osn::start(spec.clone()).await;
    let url = format!("{}/v1/channels/{channel}/broadcast", osn.url.replace("http://", "ws://"));
    let (_, mut ws) = awc::Client::new().ws(url).connect().await.expect("ws connect");

    // 300 protobuf frames, a JSON frame, an oversized one, then more: answered in order, each in
    // its own frame type, and the refusal does not end the stream.
    let mut sent = envelopes(&channel, 300, 400);
    for env in &sent {
        ws.send(awc::ws::Message::Binary(env.encode_to_vec().into())).await.unwrap();
    }
    let json_one = for_channel(&channel);
    ws.send(awc::ws::Message::Text(serde_json::to_string(&json_one).unwrap().into())).await.unwrap();
    ws.send(awc::ws::Message::Binary(oversized(&channel, &spec).encode_to_vec().into())).await.unwrap();
    let after = envelopes(&channel, 10, 400);
    for env in &after {
        ws.send(awc::ws::Message::Binary(env.encode_to_vec().into())).await.unwrap();
    }
    sent.push(json_one);
    sent.extend(after);

    let mut answers = Vec::new();
    while answers.len() < 312 {
        let frame = actix_rt::time::timeout(Duration::from_secs(30), ws.next()).await.expect("answer in time");
        match frame {
            Some(Ok(awc::ws::Frame::Binary(b))) => answers.push(("binary", BroadcastResponse::decode(b).unwrap())),
            Some(Ok(awc::ws::Frame::Text(t))) => answers.push(("text", serde_json::from_slice(&t).unwrap())),
            other => panic!("unexpected {other:?} after {} answers", answers.len()),
        }
    }
    for (i, (kind, a)) in answers.iter().enumerate() {
        let want = match i {
            300 => ("text", Status::Success),
            301 => ("binary", Status::RequestEntityTooLarge),
            _ => ("binary", Status::Success),
        };
        assert_eq!((*kind, a.status), (want.0, want.1 as i32), "answer {i}: {a:?}");
    }

    // A frame that is not an Envelope: BAD_REQUEST, then the server closes the socket.
    ws.send(awc::ws::Message::Binary(Bytes::from_static(b"\xff\xff\xff\xff"))).await.unwrap();
    let mut got_bad_request = false;
    let closed = loop {
        match actix_rt::time::timeout(Duration::from_secs(10), ws.next()).await.expect("close in time") {
            Some(Ok(awc::ws::Frame::Binary(b))) => {
                let a = BroadcastResponse::decode(b).unwrap();
                assert_eq!(a.status, Status::BadRequest as i32, "{a:?}");
                assert!(a.info.contains("not a valid protobuf"), "{a:?}");
                got_bad_request = true;
            }
            Some(Ok(awc::ws::Frame::Close(reason))) => break reason,
            other => panic!("expected the answer then a close, got {other:?}"),
        }
    };
    assert!(got_bad_request);
    assert_eq!(closed.map(|r| r.code), Some(awc::ws::CloseCode::Invalid));

    let chain = osn.wait_for_transactions(sent.len(), Duration::from_secs(30)).await;
    check_chain(&chain, &sent, &spec);
}

#[actix_rt::test]
async fn malformed_websocket_frames_get_an_error_and_a_clean_close() {
    let channel = channel_name("rawws");
    let broker = Broker::with_topic(&channel);
    let spec = OsnSpec::new(&channel, &broker);
    let osn = Osn::start(spec.clone()).await;
    use tokio::io::AsyncWriteExt;

    for route in ["broadcast", "deliver"] {
        let path = format!("/v1/channels/{channel}/{route}");
        let bad_frames: Vec<(&str, Vec<u8>)> = vec![
            ("unmasked client frame", vec![0x82, 0x03, 1, 2, 3]),
            ("reserved opcode", raw_ws::masked(0x3, b"abc")),
            ("text that is not UTF-8", raw_ws::masked(0x1, &[0xff, 0xfe, 0xfd])),
        ];
        for (what, frame) in bad_frames {
            let mut tcp = raw_ws::connect(&osn.url, &path).await;
            tcp.write_all(&frame).await.unwrap();
            let frames = raw_ws::frames_until_closed(&mut tcp).await;
            let text = frames.iter().find(|f| f.opcode == 0x1).unwrap_or_else(|| panic!("{route}, {what}: {frames:?}"));
            let answer: serde_json::Value = serde_json::from_slice(&text.payload).unwrap();
            assert_eq!(answer["status"], "BAD_REQUEST", "{route}, {what}: {answer}");
            assert!(!answer["info"].as_str().unwrap_or_default().is_empty(), "{route}, {what}: {answer}");
            assert_eq!(frames.last().map(|f| f.opcode), Some(0x8), "{route}, {what}: ends with a close frame");
        }
    }

    // The OSN and the channel are unharmed.
    let sent = envelopes(&channel, 5, 300);
    broadcast_all(&osn.broadcast_url(), &sent, 5).await;
    let chain = osn.wait_for_transactions(sent.len(), Duration::from_secs(30)).await;
    check_chain(&chain, &sent, &spec);
}

/// Sends `head` (request line and headers) and then `chunks` one by one, and returns the status
/// line of the answer and how many chunks had been written when it arrived.
async fn answer_while_sending(base: &str, head: String, chunks: usize, chunk: &[u8]) -> (String, usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
    let (mut rd, mut tcp) = tcp.into_split();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = [0u8; 64];
    for sent in 0..=chunks {
        tokio::select! {
            n = rd.read(&mut answer) => {
                let line = String::from_utf8_lossy(&answer[..n.unwrap()]).lines().next().unwrap_or_default().to_owned();
                return (line, sent);
            }
            written = tcp.write_all(chunk), if sent < chunks => {
                if written.is_err() {
                    // The server stopped reading and closed: read what it answered.
                    let n = rd.read(&mut answer).await.unwrap_or(0);
                    return (String::from_utf8_lossy(&answer[..n]).lines().next().unwrap_or_default().to_owned(), sent);
                }
            }
        }
    }
    let n = actix_rt::time::timeout(Duration::from_secs(10), rd.read(&mut answer)).await.unwrap().unwrap();
    (String::from_utf8_lossy(&answer[..n]).lines().next().unwrap_or_default().to_owned(), chunks)
}

#[actix_rt::test]
async fn oversized_bodies_are_refused_before_they_are_read() {
    let channel = channel_name("limits");
    let broker = Broker::with_topic(&channel);
    let osn = Osn::start(OsnSpec::new(&channel, &broker)).await;
    let addr = osn.url.trim_start_matches("http://");
    for route in ["broadcast", "broadcast:batch"] {
        // A declared length over the limit: answered 413 before a byte of the body is sent.
        let head = format!(
            "POST /v1/channels/{channel}/{route} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\n\
             Content-Length: 1073741824\r\n\r\n"
        );
        let (line, sent) = answer_while_sending(&osn.url, head, 0, b"").await;
        assert!(line.contains("413"), "{route}: {line}");
        assert_eq!(sent, 0);

        // A chunked body (no length) is refused once it passes the limit, long before its end.
        let head = format!(
            "POST /v1/channels/{channel}/{route} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-protobuf\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        );
        let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
        chunk.extend(std::iter::repeat_n(0u8, 64 * 1024));
        chunk.extend_from_slice(b"\r\n");
        // 4 GiB would follow; the limit is 32 MiB (batch) or about 272 KiB (one envelope).
        let (line, sent) = answer_while_sending(&osn.url, head, 65536, &chunk).await;
        assert!(line.contains("413"), "{route}: {line}");
        assert!(sent < 1024, "{route}: answered only after {sent} chunks of 64 KiB");
    }
}
