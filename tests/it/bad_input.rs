//! Bad input on the API: each gets its Fabric status, the matching HTTP code and an `info` a
//! user can act on; the channel keeps ordering afterwards.

use std::time::Duration;

use bytes::Bytes;
use osn::proto::{ChannelHeader, Envelope, Header, HeaderType, Payload};
use prost::Message as _;

use crate::harness::*;

struct Case {
    name: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Bytes,
    code: u16,
    status: &'static str,
    info_contains: &'static str,
}

fn envelope_with(header: Option<ChannelHeader>, data_len: usize) -> Envelope {
    let payload = Payload {
        header: Some(Header {
            channel_header: header.map(|h| h.encode_to_vec().into()).unwrap_or_default(),
            signature_header: Bytes::new(),
        }),
        data: vec![7u8; data_len].into(),
    };
    Envelope { payload: payload.encode_to_vec().into(), signature: Bytes::new() }
}

fn header(t: HeaderType, channel: &str) -> Option<ChannelHeader> {
    Some(ChannelHeader { r#type: t as i32, channel_id: channel.into(), tx_id: "t".into(), ..Default::default() })
}

#[actix_rt::test]
async fn bad_broadcasts_get_fabric_statuses_and_the_channel_keeps_working() {
    let channel = channel_name("bad");
    let broker = Broker::with_topic(&channel);
    let spec =
        OsnSpec { absolute_max_bytes: 64 * 1024, preferred_max_bytes: 32 * 1024, ..OsnSpec::new(&channel, &broker) };
    let osn = Osn::start(spec.clone()).await;
    let bc = format!("/v1/channels/{channel}/broadcast");
    let pb = Some("application/x-protobuf");
    let good = |h| Bytes::from(envelope_with(h, 10).encode_to_vec());
    let cases = vec![
        Case {
            name: "garbage protobuf",
            path: bc.clone(),
            content_type: pb,
            body: Bytes::from_static(b"\xff\xff\xff\xff garbage"),
            code: 400,
            status: "BAD_REQUEST",
            info_contains: "protobuf common.Envelope",
        },
        Case {
            name: "invalid JSON",
            path: bc.clone(),
            content_type: Some("application/json"),
            body: Bytes::from_static(b"{\"payload\": "),
            code: 400,
            status: "BAD_REQUEST",
            info_contains: "JSON common.Envelope",
        },
        Case {
            name: "JSON with bad base64",
            path: bc.clone(),
            content_type: Some("application/json"),
            body: Bytes::from_static(b"{\"payload\": \"@@@\"}"),
            code: 400,
            status: "BAD_REQUEST",
            info_contains: "JSON common.Envelope",
        },
        Case {
            name: "wrong content type",
            path: bc.clone(),
            content_type: Some("text/plain"),
            body: good(header(HeaderType::Message, &channel)),
            code: 400,
            status: "BAD_REQUEST",
            info_contains: "unsupported Content-Type 'text/plain'",
        },
        Case {
            name: "missing content type",
            path: bc.clone(),
            content_type: None,
            body: good(header(HeaderType::Message, &channel)),
            code: 400,
            status: "BAD_REQUEST",
            info_contains: "missing Content-Type",
        },
        Case {
            name: "unknown channel",
            path: "/v1/channels/nosuchchannel/broadcast".into(),
            content_type: pb,
            body: good(header(HeaderType::Message, "nosuchchannel")),
            code: 404,
            status: "NOT_FOUND",
            info_contains: "'nosuchchannel' does not exist",
        },
        Case {
            name: "empty envelope",
            path: bc.clone(),
            content_type: pb,
            body: Bytes::new(),
            code: 400,
            status: "BAD_REQUEST",
            info_contains: "empty payload",
        },
        Case {
            name: "missing channel header",
            path: bc.clone(),
            content_type: pb,
            body: good(None),
            code: 400,
            status: "BAD_REQUEST",
            info_contains: "no channel header",
        },
        Case {
            name: "channel header for another channel",
            path: bc.clone(),
            content_type: pb,
            body: good(header(HeaderType::Message, "elsewhere")),
            code: 400,
            status: "BAD_REQUEST",
            info_contains: "'elsewhere'",
        },
        Case {
            name: "seek info on broadcast",
            path: bc.clone(),
            content_type: pb,
            body: good(header(HeaderType::DeliverSeekInfo, &channel)),
            code: 400,
            status: "BAD_REQUEST",
            info_contains: "deliver route",
        },
        Case {
            name: "config update",
            path: bc.clone(),
            content_type: pb,
            body: good(header(HeaderType::ConfigUpdate, &channel)),
            code: 400,
            status: "BAD_REQUEST",
            info_contains: "POST /v1/channels/{channel}/config",
        },
        Case {
            name: "envelope over AbsoluteMaxBytes",
            path: bc.clone(),
            content_type: pb,
            body: Bytes::from(envelope_with(header(HeaderType::Message, &channel), 65 * 1024).encode_to_vec()),
            code: 413,
            status: "REQUEST_ENTITY_TOO_LARGE",
            info_contains: "AbsoluteMaxBytes of 65536",
        },
        Case {
            name: "body far over the limit",
            path: bc.clone(),
            content_type: pb,
            body: Bytes::from(vec![0u8; 512 * 1024]),
            code: 413,
            status: "REQUEST_ENTITY_TOO_LARGE",
            info_contains: "exceeds this route's limit",
        },
        Case {
            name: "block number not a number",
            path: format!("/v1/channels/{channel}/blocks/abc"),
            content_type: None,
            body: Bytes::new(),
            code: 400,
            status: "BAD_REQUEST",
            info_contains: "'abc'",
        },
        Case {
            name: "negative block number",
            path: format!("/v1/channels/{channel}/blocks/-1"),
            content_type: None,
            body: Bytes::new(),
            code: 400,
            status: "BAD_REQUEST",
            info_contains: "'-1'",
        },
        Case {
            name: "a signed block number",
            path: format!("/v1/channels/{channel}/blocks/+1"),
            content_type: None,
            body: Bytes::new(),
            code: 400,
            status: "BAD_REQUEST",
            info_contains: "'+1'",
        },
        Case {
            name: "a block number of 20 digits",
            path: format!("/v1/channels/{channel}/blocks/18446744073709551615"),
            content_type: None,
            body: Bytes::new(),
            code: 400,
            status: "BAD_REQUEST",
            info_contains: "at most 19 digits",
        },
        Case {
            name: "enormous block number",
            path: format!("/v1/channels/{channel}/blocks/9999999999999999999"),
            content_type: None,
            body: Bytes::new(),
            code: 404,
            status: "NOT_FOUND",
            info_contains: "does not exist yet",
        },
        Case {
            name: "block number beyond u64",
            path: format!("/v1/channels/{channel}/blocks/99999999999999999999999"),
            content_type: None,
            body: Bytes::new(),
            code: 400,
            status: "BAD_REQUEST",
            info_contains: "not a non-negative integer",
        },
        Case {
            name: "unknown route",
            path: "/v2/nothing".into(),
            content_type: None,
            body: Bytes::new(),
            code: 404,
            status: "NOT_FOUND",
            info_contains: "no route",
        },
    ];
    let client = client();
    for case in &cases {
        let is_get = case.path.contains("/blocks/") || case.path.starts_with("/v2");
        let mut req = if is_get {
            // Signed as a reader of the channel, so that only the path is wrong.
            let authorization = osn::cli::client::read_authorization(&crypto().client, &channel);
            client.get(format!("{}{}", osn.url, case.path)).insert_header(("Authorization", authorization))
        } else {
            client.post(format!("{}{}", osn.url, case.path))
        };
        if let Some(ct) = case.content_type {
            req = req.insert_header(("Content-Type", ct));
        }
        req = req.insert_header(("Accept", "application/json"));
        let mut resp = if is_get { req.send().await } else { req.send_body(case.body.clone()).await }
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let body: serde_json::Value =
            resp.json().limit(1 << 20).await.unwrap_or_else(|e| panic!("{}: body is not JSON: {e}", case.name));
        assert_eq!(resp.status().as_u16(), case.code, "{}: {body}", case.name);
        assert_eq!(body["status"], case.status, "{}: {body}", case.name);
        let info = body["info"].as_str().unwrap_or_default();
        assert!(
            info.contains(case.info_contains),
            "{}: info {info:?} should mention {:?}",
            case.name,
            case.info_contains
        );
    }

    // A protobuf client gets its error as a protobuf BroadcastResponse.
    let (code, resp) = broadcast(&osn.broadcast_url(), &envelope_with(None, 3)).await;
    assert_eq!((code, resp.status), (400, osn::proto::Status::BadRequest as i32));

    // The channel is unharmed: valid envelopes, in both encodings, are ordered.
    let sent = envelopes(&channel, 20, 300);
    broadcast_all(&osn.broadcast_url(), &sent[..19], 5).await;
    let mut resp = client
        .post(osn.broadcast_url())
        .insert_header(("Content-Type", "application/json"))
        .send_body(serde_json::to_vec(&sent[19]).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ok: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(ok["status"], "SUCCESS", "JSON answer to a JSON request: {ok}");
    let chain = osn.wait_for_transactions(sent.len(), Duration::from_secs(30)).await;
    check_chain(&chain, &sent, &spec);
}

/// The websocket subscribers the OSN counts on `channel` (`osn_deliver_websocket_subscribers`).
async fn subscribers(osn: &Osn, channel: &str) -> Option<f64> {
    let mut resp = client().get(format!("{}/metrics", osn.url)).send().await.ok()?;
    let text = String::from_utf8(resp.body().limit(16 << 20).await.ok()?.to_vec()).ok()?;
    let sample = format!("osn_deliver_websocket_subscribers{{channel=\"{channel}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(sample.as_str())).and_then(|v| v.parse().ok())
}

#[actix_rt::test]
async fn abrupt_disconnects_and_truncated_bodies_leave_the_osn_serving() {
    use osn::core::seek::{oldest, specified};
    use osn::proto::SeekInfo;
    use tokio::io::AsyncWriteExt;

    let channel = channel_name("abrupt");
    let broker = Broker::with_topic(&channel);
    let osn = Osn::start(OsnSpec::new(&channel, &broker)).await;
    let first = envelopes(&channel, 200, 500);
    broadcast_all(&osn.broadcast_url(), &first, 16).await;
    osn.wait_for_transactions(first.len(), Duration::from_secs(30)).await;
    let addr = osn.url.trim_start_matches("http://").to_owned();

    // Twenty deliver websockets asking for every block from the oldest on, each dropped (no close
    // frame) after its first two frames.
    let seek = SeekInfo { start: Some(oldest()), stop: Some(specified(u64::MAX)), behavior: 0, error_response: 0 };
    let request = osn::cli::client::seek_request(&crypto().client, &channel, &seek).encode_to_vec();
    let deliver = format!("/v1/channels/{channel}/deliver");
    for _ in 0..20 {
        let mut tcp = raw_ws::connect(&osn.url, &deliver).await;
        tcp.write_all(&raw_ws::masked(2, &request)).await.unwrap();
        let mut frames = 0;
        raw_ws::read_frames(&mut tcp, Duration::from_secs(10), |_| {
            frames += 1;
            frames == 2
        })
        .await;
        assert_eq!(frames, 2, "blocks were streaming");
        drop(tcp);
    }

    // A broadcast websocket cut in the middle of a frame.
    let mut tcp = raw_ws::connect(&osn.url, &format!("/v1/channels/{channel}/broadcast")).await;
    let frame = raw_ws::masked(2, &envelopes(&channel, 1, 500)[0].encode_to_vec());
    tcp.write_all(&frame[..frame.len() / 2]).await.unwrap();
    drop(tcp);

    // HTTP requests whose bodies stop short of their Content-Length, then the connection closes:
    // a single broadcast, a batch, and a JSON one.
    let envelope = envelopes(&channel, 1, 500)[0].encode_to_vec();
    for (path, content_type) in [
        ("broadcast", "application/x-protobuf"),
        ("broadcast:batch", "application/x-protobuf"),
        ("broadcast", "application/json"),
    ] {
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /v1/channels/{channel}/{path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\n\r\n",
            envelope.len() * 4
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(&envelope[..envelope.len() / 2]).await.unwrap();
        drop(tcp);
    }

    // The OSN let go of every subscriber, is healthy, never panicked, and keeps ordering.
    wait_for("every dropped subscriber released", Duration::from_secs(30), || async {
        (subscribers(&osn, &channel).await == Some(0.0)).then_some(())
    })
    .await;
    let (code, _) = {
        let mut resp = client().get(format!("{}/healthz", osn.url)).send().await.unwrap();
        (resp.status().as_u16(), resp.body().await.unwrap())
    };
    assert_eq!(code, 200);
    let second = envelopes(&channel, 50, 500);
    broadcast_all(&osn.broadcast_url(), &second, 8).await;
    let chain = osn.wait_for_transactions(first.len() + second.len(), Duration::from_secs(30)).await;
    assert_all_once(&chain, &[first, second].concat());
    assert!(!osn.log().contains("panicked"), "{}", osn.log_tail());
}

/// Every route naming a channel: a name that cannot be a channel ID gets 400 saying the ID rule,
/// one that could be but is not on this OSN gets 404 naming the channels it has, whatever the
/// method, body or websocket; and a well-formed envelope of the wrong type gets 400 on each
/// route that takes envelopes. The channel keeps ordering afterwards.
#[actix_rt::test]
async fn every_route_refuses_invalid_and_unknown_channel_ids_and_envelopes_of_the_wrong_type() {
    let channel = channel_name("ids");
    let broker = Broker::with_topic(&channel);
    let osn = Osn::start(OsnSpec::new(&channel, &broker)).await;
    let client = client();
    let long = "a".repeat(300);
    // (in the path, as the server decodes it, the answer)
    let ids: [(&str, &str, u16, &str); 7] = [
        ("Bad_Name", "Bad_Name", 400, "invalid channel ID 'Bad_Name'"),
        ("-leading-dash", "-leading-dash", 400, "invalid channel ID"),
        ("with%20space", "with space", 400, "invalid channel ID 'with space'"),
        ("%C3%A9t%C3%A9", "été", 400, "invalid channel ID 'été'"),
        ("a%00b", "a\0b", 400, "invalid channel ID"),
        (&long, &long, 400, "at most 249 characters"),
        ("nosuchchannel", "nosuchchannel", 404, "'nosuchchannel' does not exist on this OSN (channels: "),
    ];
    // (method, route after /v1/channels/{id}, what the body is)
    let routes = [
        ("GET", "", ""),
        ("GET", "/config", ""),
        ("POST", "/config", "config update"),
        ("POST", "/broadcast", "message"),
        ("GET", "/broadcast", "websocket"),
        ("POST", "/broadcast:batch", "batch"),
        ("GET", "/blocks/0", ""),
        ("GET", "/deliver", "websocket"),
        ("POST", "/deliver", "seek"),
    ];
    let mut tried = 0;
    for (id, decoded, code, info) in &ids {
        for (method, route, kind) in routes {
            let url = format!("{}/v1/channels/{id}{route}", osn.url);
            let envelope = |t| envelope_with(header(t, decoded), 10).encode_to_vec();
            let body: Vec<u8> = match kind {
                "config update" => envelope(HeaderType::ConfigUpdate),
                "message" => envelope(HeaderType::Message),
                "batch" => envelope_with(header(HeaderType::Message, decoded), 10).encode_length_delimited_to_vec(),
                "seek" => envelope(HeaderType::DeliverSeekInfo),
                _ => Vec::new(),
            };
            let mut req = if method == "GET" { client.get(&url) } else { client.post(&url) };
            req = req
                .insert_header(("Accept", "application/json"))
                .insert_header(("Authorization", osn::cli::client::read_authorization(&crypto().client, &channel)));
            if kind == "websocket" {
                req = req
                    .insert_header(("Upgrade", "websocket"))
                    .insert_header(("Connection", "Upgrade"))
                    .insert_header(("Sec-WebSocket-Version", "13"))
                    .insert_header(("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="));
            }
            let sent = if method == "GET" {
                req.send().await
            } else {
                req.insert_header(("Content-Type", "application/x-protobuf")).send_body(body).await
            };
            let mut resp = sent.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let text = String::from_utf8_lossy(&resp.body().limit(1 << 20).await.unwrap()).into_owned();
            assert_eq!(resp.status().as_u16(), *code, "{method} {url}: {text}");
            assert!(text.contains(info), "{method} {url}: {text:?} should say {info:?}");
            assert!(text.len() < 2048, "{method} {url}: the answer echoes too much ({} bytes)", text.len());
            tried += 1;
        }
    }
    assert_eq!(tried, 63);

    // The right channel, the wrong kind of envelope for the route.
    let here = |t| envelope_with(header(t, &channel), 10).encode_to_vec();
    // (A batch answers 200 with each envelope's own status.)
    let seek_in_batch =
        envelope_with(header(HeaderType::DeliverSeekInfo, &channel), 10).encode_length_delimited_to_vec();
    for (route, body, code, info) in [
        ("/config", here(HeaderType::Message), 400, "CONFIG_UPDATE"),
        ("/broadcast:batch", seek_in_batch, 200, "deliver route"),
        ("/deliver", here(HeaderType::Message), 400, "DELIVER_SEEK_INFO"),
    ] {
        let url = format!("{}/v1/channels/{channel}{route}", osn.url);
        let mut resp = client
            .post(&url)
            .insert_header(("Content-Type", "application/x-protobuf"))
            .insert_header(("Accept", "application/json"))
            .send_body(body)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&resp.body().await.unwrap()).into_owned();
        assert_eq!(resp.status().as_u16(), code, "POST {route}: {text}");
        assert!(text.contains(info), "POST {route}: {text:?} should say {info:?}");
    }
    let mut resp = client
        .post(format!("{}/v1/channels", osn.url))
        .insert_header(("Content-Type", "application/x-protobuf"))
        .insert_header(("Accept", "application/json"))
        .send_body(here(HeaderType::Message))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&resp.body().await.unwrap()).into_owned();
    assert_eq!(resp.status().as_u16(), 400, "POST /v1/channels: {text}");
    assert!(text.contains("CONFIG_UPDATE"), "POST /v1/channels: {text}");

    let sent = envelopes(&channel, 5, 200);
    broadcast_all(&osn.broadcast_url(), &sent, 5).await;
    assert_all_once(&osn.wait_for_transactions(5, Duration::from_secs(30)).await, &sent);
    assert!(!osn.log().contains("panicked"), "{}", osn.log_tail());
}

/// A websocket handshake that is started but not valid (no `Connection: Upgrade`, no key, another
/// version, a key that is not 16 bytes) gets a JSON error body naming what is wrong, on both
/// websocket routes, not an empty 400; the rules are RFC 6455's, as the API document's header
/// patterns give them (any case for the tokens, `Upgrade` anywhere in `Connection`); a plain GET
/// there still says the route is a websocket.
#[actix_rt::test]
async fn incomplete_websocket_handshakes_are_told_what_is_missing() {
    let channel = channel_name("handshake");
    let broker = Broker::with_topic(&channel);
    let osn = Osn::start(OsnSpec::new(&channel, &broker)).await;
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    for route in ["deliver", "broadcast"] {
        let url = format!("{}/v1/channels/{channel}/{route}", osn.url);
        let full = |replace: (&'static str, &'static str)| {
            let mut headers = vec![
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", KEY),
            ];
            headers.retain(|(name, _)| *name != replace.0);
            if !replace.1.is_empty() {
                headers.push(replace);
            }
            headers
        };
        for (what, headers, code, says) in [
            ("no Connection", full(("Connection", "")), 400, "no Connection header"),
            ("Connection without Upgrade", full(("Connection", "keep-alive")), 400, "does not list Upgrade"),
            ("no version", full(("Sec-WebSocket-Version", "")), 400, "no Sec-WebSocket-Version"),
            ("version 8", full(("Sec-WebSocket-Version", "8")), 400, "version 13"),
            ("no key", full(("Sec-WebSocket-Key", "")), 400, "no Sec-WebSocket-Key"),
            ("a short key", full(("Sec-WebSocket-Key", "c2hvcnQ=")), 400, "not the base64 of 16 bytes"),
            ("a key with stray bits", full(("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZR==")), 400, "16 bytes"),
            ("another protocol", full(("Upgrade", "h2c")), 400, "not websocket"),
            ("tokens in other cases", full(("Upgrade", "WebSocket")), 101, ""),
            ("Upgrade among options", full(("Connection", "keep-alive, upgrade")), 101, ""),
        ] {
            // Raw, because a client library manages Connection itself.
            let path = format!("/v1/channels/{channel}/{route}");
            let (got, body) = crate::harness::raw_ws::raw_get(&osn.url, &path, &headers).await;
            assert_eq!(got, code, "{route}, {what}: {body}");
            if code == 101 {
                continue;
            }
            let body: serde_json::Value =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("{route}, {what}: {e}"));
            assert_eq!(body["status"], "BAD_REQUEST", "{route}, {what}: {body}");
            let info = body["info"].as_str().unwrap();
            assert!(info.contains("not a valid websocket handshake") && info.contains(says), "{what}: {body}");
        }
        let mut resp = client().get(&url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(body["info"].as_str().unwrap().contains("is a websocket route"), "{body}");
    }
}
