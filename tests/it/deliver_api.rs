//! Deliver over a streamed HTTP response and over websocket: every transport and encoding gives
//! the same blocks; requests are served one after another on a socket; refusals carry their
//! status and info; STRICT and BEST_EFFORT differ when Kafka is gone.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use osn::cli::deliver::next_delimited;
use osn::core::seek::{newest, oldest, specified};
use osn::proto::orderer::deliver_response;
use osn::proto::orderer::seek_info::{SeekBehavior, SeekErrorResponse};
use osn::proto::{Block, DeliverResponse, SeekInfo, SeekPosition, Status};
use prost::Message as _;

use crate::harness::*;
use osn::cli::client::seek_request;

fn seek(start: SeekPosition, stop: SeekPosition, behavior: SeekBehavior, errors: SeekErrorResponse) -> SeekInfo {
    SeekInfo { start: Some(start), stop: Some(stop), behavior: behavior as i32, error_response: errors as i32 }
}

fn range(start: SeekPosition, stop: SeekPosition) -> SeekInfo {
    seek(start, stop, SeekBehavior::BlockUntilReady, SeekErrorResponse::Strict)
}

/// POSTs a seek request (protobuf or JSON) and reads the whole streamed answer: the HTTP code,
/// the Content-Type and the DeliverResponses.
async fn post_deliver(base: &str, channel: &str, seek: &SeekInfo, json: bool) -> (u16, String, Vec<DeliverResponse>) {
    post_deliver_notify(base, channel, seek, json, None).await
}

/// [`post_deliver`], telling `started` once the response head arrived (the server answers it as
/// soon as the request was resolved against the ledger).
async fn post_deliver_notify(
    base: &str,
    channel: &str,
    seek: &SeekInfo,
    json: bool,
    started: Option<tokio::sync::oneshot::Sender<()>>,
) -> (u16, String, Vec<DeliverResponse>) {
    let request = seek_request(&crypto().client, channel, seek);
    let req = client().post(format!("{base}/v1/channels/{channel}/deliver"));
    let mut resp = if json {
        req.insert_header(("Content-Type", "application/json"))
            .insert_header(("Accept", "application/x-ndjson"))
            .send_body(serde_json::to_vec(&request).unwrap())
            .await
    } else {
        req.insert_header(("Content-Type", "application/x-protobuf")).send_body(request.encode_to_vec()).await
    }
    .expect("deliver request");
    if let Some(started) = started {
        let _ = started.send(());
    }
    let content_type = resp.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    loop {
        let chunk = actix_rt::time::timeout(Duration::from_secs(30), resp.next()).await.expect("chunk in time");
        let Some(chunk) = chunk else { break };
        buf.extend_from_slice(&chunk.unwrap());
        if json {
            while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                let line = buf.split_to(i + 1);
                out.push(serde_json::from_slice(&line).expect("one DeliverResponse per line"));
            }
        } else {
            while let Some(raw) = next_delimited(&mut buf).unwrap() {
                out.push(DeliverResponse::decode(raw).unwrap());
            }
        }
    }
    assert!(buf.is_empty(), "trailing bytes in the stream");
    (resp.status().as_u16(), content_type, out)
}

fn split(responses: Vec<DeliverResponse>) -> (Vec<Block>, Option<(i32, String)>) {
    let mut blocks = Vec::new();
    let mut end = None;
    for r in responses {
        assert!(end.is_none(), "nothing after the final status");
        match r.r#type {
            Some(deliver_response::Type::Block(b)) => blocks.push(b),
            Some(deliver_response::Type::Status(s)) => end = Some((s, r.info)),
            None => panic!("empty DeliverResponse"),
        }
    }
    (blocks, end)
}

/// Reads websocket frames until a status; text frames are JSON, binary protobuf.
async fn ws_until_status(
    ws: &mut actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>,
) -> (Vec<Block>, (i32, String)) {
    let mut blocks = Vec::new();
    loop {
        let frame = actix_rt::time::timeout(Duration::from_secs(30), ws.next()).await.expect("frame in time");
        let resp: DeliverResponse = match frame {
            Some(Ok(awc::ws::Frame::Binary(b))) => DeliverResponse::decode(b).unwrap(),
            Some(Ok(awc::ws::Frame::Text(t))) => serde_json::from_slice(&t).unwrap(),
            other => panic!("unexpected {other:?}"),
        };
        match resp.r#type {
            Some(deliver_response::Type::Block(b)) => blocks.push(b),
            Some(deliver_response::Type::Status(s)) => return (blocks, (s, resp.info)),
            None => panic!("empty DeliverResponse"),
        }
    }
}

async fn ws_connect(base: &str, channel: &str) -> actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec> {
    let url = format!("{}/v1/channels/{channel}/deliver", base.replace("http://", "ws://"));
    awc::Client::new().ws(url).max_frame_size(64 << 20).connect().await.expect("ws connect").1
}

const SUCCESS: i32 = Status::Success as i32;

#[actix_rt::test]
async fn every_transport_and_encoding_gives_the_same_blocks() {
    let channel = channel_name("same");
    let broker = Broker::with_topic(&channel);
    let spec = OsnSpec { max_message_count: 10, ..OsnSpec::new(&channel, &broker) };
    let osn = Osn::start(spec.clone()).await;
    // Half the envelopes sent as JSON, half as protobuf.
    let sent = envelopes(&channel, 60, 500);
    broadcast_all(&osn.broadcast_url(), &sent[..30], 8).await;
    for env in &sent[30..] {
        let mut resp = client()
            .post(osn.broadcast_url())
            .insert_header(("Content-Type", "application/json"))
            .send_body(serde_json::to_vec(env).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{:?}", resp.body().await);
    }
    let chain = osn.wait_for_transactions(sent.len(), Duration::from_secs(30)).await;
    check_chain(&chain, &sent, &spec);

    // GET blocks: JSON and protobuf decode to the same block.
    for (n, block) in chain.iter().enumerate() {
        let mut resp = client()
            .get(format!("{}/v1/channels/{channel}/blocks/{n}", osn.url))
            .insert_header(("Accept", "application/json"))
            .insert_header(("Authorization", osn::cli::client::read_authorization(&crypto().client, &channel)))
            .send()
            .await
            .unwrap();
        let from_json: Block = serde_json::from_slice(&resp.body().limit(64 << 20).await.unwrap()).unwrap();
        assert_eq!(&from_json, block, "block {n} as JSON");
    }

    // Deliver: POST (NDJSON and delimited protobuf), websocket (binary and text frames).
    let all = range(oldest(), newest());
    for json in [false, true] {
        let (code, content_type, responses) = post_deliver(&osn.url, &channel, &all, json).await;
        assert_eq!(code, 200);
        assert_eq!(content_type, if json { "application/x-ndjson" } else { "application/x-protobuf" });
        let (blocks, end) = split(responses);
        assert_eq!(end, Some((SUCCESS, String::new())));
        assert_eq!(blocks, chain, "POST deliver, json={json}");
    }
    let mut ws = ws_connect(&osn.url, &channel).await;
    let request = seek_request(&crypto().client, &channel, &all);
    ws.send(awc::ws::Message::Binary(request.encode_to_vec().into())).await.unwrap();
    assert_eq!(ws_until_status(&mut ws).await, (chain.clone(), (SUCCESS, String::new())));
    ws.send(awc::ws::Message::Text(serde_json::to_string(&request).unwrap().into())).await.unwrap();
    assert_eq!(ws_until_status(&mut ws).await, (chain.clone(), (SUCCESS, String::new())));
}

#[actix_rt::test]
async fn streamed_deliver_refuses_with_status_and_info_and_waits_for_new_blocks() {
    let channel = channel_name("stream");
    let broker = Broker::with_topic(&channel);
    let spec = OsnSpec { max_message_count: 1, ..OsnSpec::new(&channel, &broker) };
    let osn = Osn::start(spec.clone()).await;
    let sent = envelopes(&channel, 3, 200);
    broadcast_all(&osn.broadcast_url(), &sent, 1).await;
    let chain = osn.wait_for_transactions(3, Duration::from_secs(30)).await;
    let height = chain.len() as u64; // 4: genesis + one block per envelope
    use SeekBehavior::*;
    use SeekErrorResponse::*;

    // Refusals before any block: the HTTP code of the status, one DeliverResponse with info.
    let cases = [
        (seek(specified(height + 1), newest(), BlockUntilReady, Strict), 404, "beyond the next block"),
        (seek(specified(height), specified(height + 3), FailIfNotReady, Strict), 404, "FAIL_IF_NOT_READY"),
        (seek(specified(2), specified(1), BlockUntilReady, Strict), 400, "before start block"),
        (SeekInfo { start: Some(oldest()), ..Default::default() }, 400, "no stop"),
    ];
    for (s, code, info) in cases {
        for json in [false, true] {
            let (got, _, responses) = post_deliver(&osn.url, &channel, &s, json).await;
            let (blocks, end) = split(responses);
            let (status, text) = end.expect("a status");
            assert_eq!((got, blocks.len()), (code, 0), "{s:?}");
            assert_eq!(status, code as i32, "{s:?}");
            assert!(text.contains(info), "{s:?}: {text}");
        }
    }
    // FAIL_IF_NOT_READY past the end: the existing blocks, then NOT_FOUND (status 200: the stream
    // had started).
    let (code, _, responses) =
        post_deliver(&osn.url, &channel, &seek(specified(2), specified(9), FailIfNotReady, Strict), false).await;
    let (blocks, end) = split(responses);
    assert_eq!((code, blocks.len()), (200, 2));
    assert_eq!(end.unwrap().0, Status::NotFound as i32);

    // Unknown channel, bad body, a broadcast envelope instead of a seek request.
    let base = osn.url.clone();
    let raw = |path: String, content_type: &'static str, body: Bytes| {
        let url = format!("{base}{path}");
        async move {
            let mut resp =
                client().post(url).insert_header(("Content-Type", content_type)).send_body(body).await.unwrap();
            let line: serde_json::Value = serde_json::from_slice(&resp.body().await.unwrap()).unwrap();
            (resp.status().as_u16(), line)
        }
    };
    let request =
        Bytes::from(serde_json::to_vec(&seek_request(&crypto().client, "nope", &range(oldest(), newest()))).unwrap());
    let (code, line) = raw("/v1/channels/nope/deliver".into(), "application/json", request).await;
    assert_eq!((code, line["status"].as_str()), (404, Some("NOT_FOUND")), "{line}");
    let (code, line) = raw(format!("/v1/channels/{channel}/deliver"), "application/json", "{oops".into()).await;
    assert_eq!((code, line["status"].as_str()), (400, Some("BAD_REQUEST")), "{line}");
    let tx = Bytes::from(serde_json::to_vec(&sent[0]).unwrap());
    let (code, line) = raw(format!("/v1/channels/{channel}/deliver"), "application/json", tx).await;
    assert_eq!((code, line["status"].as_str()), (400, Some("BAD_REQUEST")), "{line}");

    // A stream waiting for a block not yet written gets it as soon as it is cut, then SUCCESS.
    let (started, head) = tokio::sync::oneshot::channel();
    let waiting = {
        let (url, channel) = (osn.url.clone(), channel.clone());
        let next = range(specified(height), specified(height));
        actix_rt::spawn(async move { post_deliver_notify(&url, &channel, &next, true, Some(started)).await })
    };
    // The answer's head arrived: the request was accepted while block `height` did not exist.
    actix_rt::time::timeout(Duration::from_secs(10), head).await.unwrap().unwrap();
    assert!(!waiting.is_finished(), "the stream waits for block {height}");
    let late = envelopes(&channel, 1, 200);
    broadcast_all(&osn.broadcast_url(), &late, 1).await;
    let (code, _, responses) = actix_rt::time::timeout(Duration::from_secs(30), waiting).await.unwrap().unwrap();
    let (blocks, end) = split(responses);
    assert_eq!(code, 200);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].header.as_ref().unwrap().number, height);
    assert_eq!(end.unwrap().0, SUCCESS);
}

#[actix_rt::test]
async fn websocket_serves_requests_one_after_another() {
    let channel = channel_name("wsseq");
    let broker = Broker::with_topic(&channel);
    let spec = OsnSpec { max_message_count: 1, ..OsnSpec::new(&channel, &broker) };
    let osn = Osn::start(spec.clone()).await;
    broadcast_all(&osn.broadcast_url(), &envelopes(&channel, 3, 200), 1).await;
    let chain = osn.wait_for_transactions(3, Duration::from_secs(30)).await;
    let height = chain.len() as u64;

    let mut ws = ws_connect(&osn.url, &channel).await;
    // Three requests sent at once, the first one waiting for a future block: they are answered
    // in order, the second and third only after the first ends.
    let requests = [
        range(specified(height - 1), specified(height)),
        range(specified(1), specified(1)),
        range(specified(3), specified(1)),
    ];
    for r in &requests {
        ws.send(awc::ws::Message::Binary(seek_request(&crypto().client, &channel, r).encode_to_vec().into()))
            .await
            .unwrap();
    }
    broadcast_all(&osn.broadcast_url(), &envelopes(&channel, 1, 200), 1).await;
    let (blocks, end) = ws_until_status(&mut ws).await;
    assert_eq!(blocks.iter().map(|b| b.header.as_ref().unwrap().number).collect::<Vec<_>>(), [height - 1, height]);
    assert_eq!(end.0, SUCCESS);
    assert_eq!(ws_until_status(&mut ws).await, (vec![chain[1].clone()], (SUCCESS, String::new())));
    let (blocks, (status, info)) = ws_until_status(&mut ws).await;
    assert_eq!((blocks.len(), status), (0, Status::BadRequest as i32));
    assert!(info.contains("before start"), "{info}");
    // A frame that is not an Envelope is a refused request; the socket stays usable.
    ws.send(awc::ws::Message::Binary(Bytes::from_static(b"\xff\xff"))).await.unwrap();
    let (_, (status, info)) = ws_until_status(&mut ws).await;
    assert_eq!(status, Status::BadRequest as i32);
    assert!(info.contains("not a valid protobuf"), "{info}");
    ws.send(awc::ws::Message::Binary(
        seek_request(&crypto().client, &channel, &range(oldest(), oldest())).encode_to_vec().into(),
    ))
    .await
    .unwrap();
    assert_eq!(ws_until_status(&mut ws).await, (vec![chain[0].clone()], (SUCCESS, String::new())));
}

#[actix_rt::test]
async fn strict_is_refused_and_best_effort_served_while_kafka_is_gone() {
    let channel = channel_name("strict");
    let broker = Broker::with_topic(&channel);
    let spec = OsnSpec { max_message_count: 1, ..OsnSpec::new(&channel, &broker) };
    let mut osn = Osn::start(spec.clone()).await;
    let sent = envelopes(&channel, 2, 200);
    broadcast_all(&osn.broadcast_url(), &sent, 1).await;
    let chain = osn.wait_for_transactions(2, Duration::from_secs(30)).await;

    // Kafka disappears; the OSN restarts on its ledger and cannot connect.
    drop(broker);
    osn.restart_listening().await;
    let info: serde_json::Value =
        client().get(format!("{}/v1/channels/{channel}", osn.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["status"], "STARTING", "{info}");

    let strict = seek(oldest(), newest(), SeekBehavior::FailIfNotReady, SeekErrorResponse::Strict);
    let (code, _, responses) = post_deliver(&osn.url, &channel, &strict, true).await;
    let (blocks, end) = split(responses);
    let (status, info) = end.unwrap();
    assert_eq!((code, blocks.len(), status), (503, 0, Status::ServiceUnavailable as i32));
    assert!(info.contains("BEST_EFFORT"), "{info}");

    let best_effort = seek(oldest(), newest(), SeekBehavior::FailIfNotReady, SeekErrorResponse::BestEffort);
    let (code, _, responses) = post_deliver(&osn.url, &channel, &best_effort, false).await;
    assert_eq!(code, 200);
    assert_eq!(split(responses), (chain, Some((SUCCESS, String::new()))));
}
