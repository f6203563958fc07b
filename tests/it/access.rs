//! Access control against a running OSN: every broadcast refusal in Fabric's order with its exact
//! status and a message naming the check, the Writers and Readers policies, and clients of
//! organisations outside the channel.

use std::time::Duration;

use bytes::Bytes;
use osn::cli::client::{payload, seek_request, sign, transaction};
use osn::identity::{KeyType, Role, SigningIdentity, Validity};
use osn::proto::{ChannelHeader, Envelope, HeaderType, Payload, Status};
use prost::Message as _;
use time::OffsetDateTime;

use crate::harness::*;

/// Broadcasts `env` and checks the answer's status and that its info contains `needle`.
async fn expect(osn: &Osn, env: &Envelope, status: Status, needle: &str) {
    let (code, resp) = broadcast(&osn.broadcast_url(), env).await;
    assert_eq!(resp.status, status as i32, "wanted {status:?} ({needle}), got {resp:?}");
    assert_eq!(code, status.http_code(), "{resp:?}");
    assert!(resp.info.contains(needle), "info {:?} should mention {needle:?}", resp.info);
}

/// A payload whose channel header timestamp is moved by `shift_secs`.
fn shifted(signer: &SigningIdentity, channel: &str, shift_secs: i64) -> Envelope {
    let mut p: Payload = payload(signer, channel, HeaderType::EndorserTransaction, Bytes::from_static(b"tx"));
    let header = p.header.as_mut().unwrap();
    let mut ch = ChannelHeader::decode(header.channel_header.clone()).unwrap();
    ch.timestamp.as_mut().unwrap().seconds += shift_secs;
    header.channel_header = ch.encode_to_vec().into();
    sign(signer, &p)
}

fn validity(from_secs: i64, until_secs: i64) -> Validity {
    let now = OffsetDateTime::now_utc();
    Validity::new(now + time::Duration::seconds(from_secs), now + time::Duration::seconds(until_secs)).unwrap()
}

#[actix_rt::test]
async fn broadcast_refusals_in_fabrics_order() {
    let channel = channel_name("access");
    let broker = Broker::with_topic(&channel);
    let spec = OsnSpec::new(&channel, &broker);
    let max = spec.absolute_max_bytes as usize;
    let osn = Osn::start(spec).await;
    let c = crypto();
    let ch = channel.as_str();

    // Accepted: ECDSA and Ed25519 members of Org1.
    expect(&osn, &transaction(&c.client, ch, 1000), Status::Success, "").await;
    expect(&osn, &transaction(&c.ed25519_client, ch, 1000), Status::Success, "").await;

    // 1. Empty payload.
    expect(&osn, &Envelope::default(), Status::BadRequest, "empty payload").await;
    // 2. Size (checked before anything about the creator).
    let mut big = transaction(&c.outsider, ch, max + 1000);
    big.signature = Bytes::from_static(b"not even a signature");
    expect(&osn, &big, Status::RequestEntityTooLarge, "AbsoluteMaxBytes").await;
    // 3. Certificate expired / not yet valid (before the signature is looked at).
    let expired = c.issue(&c.org1, "expired", Role::Client, KeyType::EcdsaP256, validity(-7200, -3600));
    let mut env = transaction(&expired, ch, 1000);
    env.signature = Bytes::from_static(b"bad");
    expect(&osn, &env, Status::Forbidden, "has expired").await;
    let early = c.issue(&c.org1, "early", Role::Client, KeyType::EcdsaP256, validity(3600, 7200));
    expect(&osn, &transaction(&early, ch, 1000), Status::Forbidden, "not yet valid").await;
    // 4. Signature: altered, not over this payload, or ECDSA in high-S form.
    let mut env = transaction(&c.client, ch, 1000);
    let last = env.signature.len() - 1;
    let mut sig = env.signature.to_vec();
    sig[last] ^= 1;
    env.signature = sig.into();
    expect(&osn, &env, Status::Forbidden, "does not verify").await;
    let mut env = transaction(&c.ed25519_client, ch, 1000);
    env.signature = transaction(&c.ed25519_client, ch, 1000).signature;
    expect(&osn, &env, Status::Forbidden, "does not verify").await;
    let mut env = transaction(&c.client, ch, 1000);
    let (r, s) = osn::core::ecdsa::decode_der(&env.signature).unwrap();
    env.signature = osn::core::ecdsa::encode_der(&r, &osn::core::ecdsa::negate_scalar(&s)).into();
    expect(&osn, &env, Status::Forbidden, "low-S").await;
    // 5. Not issued by a CA of an organisation of the channel: a valid client of Org2 (defined on
    //    the OSN, not in the channel), and Org2's certificate claiming to be of Org1.
    expect(&osn, &transaction(&c.outsider, ch, 1000), Status::Forbidden, "'Org2MSP' is not a member").await;
    let org2_client = c.org2.join("identities").join("client");
    let forged = SigningIdentity::from_pem(
        "Org1MSP",
        &std::fs::read(org2_client.join("signcerts").join("cert.pem")).unwrap(),
        &std::fs::read(org2_client.join("keystore").join("key.pem")).unwrap(),
    )
    .unwrap();
    expect(&osn, &transaction(&forged, ch, 1000), Status::Forbidden, "not issued by a CA").await;
    // 7. Timestamp outside the window (15 minutes by default), either way.
    expect(&osn, &shifted(&c.client, ch, -3600), Status::BadRequest, "timestamp").await;
    expect(&osn, &shifted(&c.client, ch, 3600), Status::BadRequest, "timestamp").await;
    expect(&osn, &shifted(&c.client, ch, -600), Status::Success, "").await;

    // Only the accepted ones were ordered.
    osn.wait_for_transactions(3, Duration::from_secs(20)).await;
}

#[actix_rt::test]
async fn writers_and_readers_policies() {
    let channel = channel_name("policies");
    let broker = Broker::with_topic(&channel);
    let mut spec = OsnSpec::new(&channel, &broker);
    // Both organisations are in the channel; only Org1's admins may write, only Org2 may read.
    spec.channel_extra = r#"organizations = ["Org1MSP", "Org2MSP"]
writers = { admins-of = ["Org1MSP"], at-least = 1 }
readers = { members-of = ["Org2MSP"] }"#
        .into();
    let osn = Osn::start(spec).await;
    let c = crypto();
    let ch = channel.as_str();

    // 6. Writers: an Org1 client and an Org2 client are members of the channel, but no admins.
    expect(&osn, &transaction(&c.client, ch, 1000), Status::Forbidden, "Writers policy").await;
    expect(&osn, &transaction(&c.outsider, ch, 1000), Status::Forbidden, "Writers policy").await;
    expect(&osn, &transaction(&c.admin, ch, 1000), Status::Success, "").await;

    // Readers on Deliver: Org2's client reads, Org1's admin is refused, and so is a request with
    // a bad signature.
    let all = osn::proto::SeekInfo {
        start: Some(osn::core::seek::oldest()),
        stop: Some(osn::core::seek::newest()),
        ..Default::default()
    };
    let deliver = |signer: &'static SigningIdentity, tamper: bool| {
        let url = format!("{}/v1/channels/{ch}/deliver", osn.url);
        let mut request = seek_request(signer, ch, &all);
        if tamper {
            request.signature = transaction(signer, ch, 100).signature;
        }
        async move {
            let mut resp = client()
                .post(url)
                .insert_header(("Content-Type", "application/x-protobuf"))
                .insert_header(("Accept", "application/x-protobuf"))
                .send_body(request.encode_to_vec())
                .await
                .unwrap();
            let body = resp.body().limit(64 << 20).await.unwrap();
            (resp.status().as_u16(), String::from_utf8_lossy(&body).into_owned())
        }
    };
    let (code, body) = deliver(&c.outsider, false).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = deliver(&c.admin, false).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("Readers policy"), "{body}");
    let (code, body) = deliver(&c.outsider, true).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("signature"), "{body}");

    // GET blocks needs the same: a signed seek request in the Authorization header.
    let get = |authorization: Option<String>| {
        let mut req = client().get(format!("{}/v1/channels/{ch}/blocks/0", osn.url));
        if let Some(value) = authorization {
            req = req.insert_header(("Authorization", value));
        }
        async move {
            let mut resp = req.send().await.unwrap();
            let body = resp.body().limit(64 << 20).await.unwrap();
            (resp.status().as_u16(), String::from_utf8_lossy(&body).into_owned())
        }
    };
    // No credentials at all: HTTP's 401 with a challenge naming the scheme, FORBIDDEN in the body.
    let resp = client().get(format!("{}/v1/channels/{ch}/blocks/0", osn.url)).send().await.unwrap();
    assert_eq!(resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Envelope"));
    let (code, body) = get(None).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("FORBIDDEN") && body.contains("no Authorization header"), "{body}");
    let (code, body) = get(Some(osn::cli::client::read_authorization(&c.admin, ch))).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("Readers policy"), "{body}");
    // Credentials that cannot be read are no credentials: 401 with the challenge, BAD_REQUEST in
    // the body saying what is wrong.
    for (header, says) in [
        ("Envelope !!!", "not base64"),
        ("Bearer abc", "not of the Envelope scheme"),
        ("Envelope AQID", "not a common.Envelope"),
    ] {
        let resp = client()
            .get(format!("{}/v1/channels/{ch}/blocks/0", osn.url))
            .insert_header(("Authorization", header))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Envelope"), "{header}");
        let (code, body) = get(Some(header.into())).await;
        assert_eq!(code, 401, "{header}: {body}");
        assert!(body.contains("BAD_REQUEST") && body.contains(says), "{header}: {body}");
    }
    // A reader's envelope for another channel is no credentials for this one.
    let (code, body) = get(Some(osn::cli::client::read_authorization(&c.outsider, "another-channel"))).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("BAD_REQUEST") && body.contains("another-channel"), "{body}");
    let (code, body) = get(Some(osn::cli::client::read_authorization(&c.outsider, ch))).await;
    assert_eq!(code, 200, "{body}");

    // The configuration in force, to readers only: both organisations and the policies above.
    let config = |signer: &'static SigningIdentity| {
        let req = client()
            .get(format!("{}/v1/channels/{ch}/config", osn.url))
            .insert_header(("Accept", "application/x-protobuf"))
            .insert_header(("Authorization", osn::cli::client::read_authorization(signer, ch)));
        async move {
            let mut resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.body().await.unwrap())
        }
    };
    let (code, body) = config(&c.admin).await;
    assert_eq!(code, 403, "{body:?}");
    let (code, body) = config(&c.outsider).await;
    assert_eq!(code, 200);
    let got = osn::proto::osn::ChannelConfig::decode(body).unwrap();
    let orgs: Vec<&str> = got.organizations.iter().map(|o| o.msp_id.as_str()).collect();
    assert_eq!(orgs, ["Org1MSP", "Org2MSP"]);
    assert_eq!(got.orderer_organizations[0].msp_id, "OrdererMSP");
    let writers = osn::core::policy::Policy::from_proto(got.writers.as_ref().unwrap()).unwrap();
    assert_eq!(writers.to_string(), "admins of at least 1 of [Org1MSP]");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_osn"))
        .args(["channel", "config", "get", "--channel", ch, "--url", &osn.url, "--identity"])
        .arg(c.org2.join("identities").join("client"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("writers        admins of at least 1 of [Org1MSP]"), "{text}");
    assert!(text.contains("readers        a member of one of [Org2MSP]"), "{text}");
    assert!(text.contains("Org2MSP") && text.contains("OrdererMSP"), "{text}");
}

#[actix_rt::test]
async fn a_batch_is_checked_envelope_by_envelope() {
    let channel = channel_name("batchaccess");
    let broker = Broker::with_topic(&channel);
    let osn = Osn::start(OsnSpec::new(&channel, &broker)).await;
    let c = crypto();
    let ch = channel.as_str();
    let mut bad_sig = transaction(&c.ed25519_client, ch, 500);
    bad_sig.signature = transaction(&c.ed25519_client, ch, 500).signature;
    let mut batch = vec![
        transaction(&c.client, ch, 500),
        bad_sig,
        transaction(&c.outsider, ch, 500),
        shifted(&c.client, ch, -7200),
    ];
    // Many Ed25519 envelopes, verified as batches on the pool.
    batch.extend((0..200).map(|_| transaction(&c.ed25519_client, ch, 500)));
    let body: Vec<u8> = batch.iter().flat_map(|e| e.encode_length_delimited_to_vec()).collect();
    let mut resp = client()
        .post(format!("{}:batch", osn.broadcast_url()))
        .insert_header(("Content-Type", "application/x-protobuf"))
        .insert_header(("Accept", "application/x-protobuf"))
        .send_body(body)
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = resp.body().limit(64 << 20).await.unwrap();
    let mut statuses = Vec::new();
    while !body.is_empty() {
        statuses.push(osn::proto::BroadcastResponse::decode_length_delimited(&mut body).unwrap().status);
    }
    let want: Vec<i32> = [Status::Success, Status::Forbidden, Status::Forbidden, Status::BadRequest]
        .into_iter()
        .chain(std::iter::repeat_n(Status::Success, 200))
        .map(|s| s as i32)
        .collect();
    assert_eq!(statuses, want);
    osn.wait_for_transactions(201, Duration::from_secs(30)).await;
}

#[test]
fn start_refuses_an_identity_whose_block_signatures_would_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let c = crypto();
    let start = |identity: &std::path::Path| {
        let config = dir.path().join("osn.toml");
        let text = format!(
            "[http]\naddress = \"127.0.0.1:0\"\n[grpc]\naddress = \"127.0.0.1:0\"\n[kafka]\nbrokers = \"127.0.0.1:9\"\n[ledger]\npath = {:?}\n\
             [identity]\ndir = {:?}\n[[organizations]]\nmsp-dir = {:?}\n[[channels]]\nname = \"ch\"\n",
            dir.path().join("ledger"),
            identity,
            c.org1.join("msp"),
        );
        std::fs::write(&config, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_osn"))
            .args(["start", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A client's identity cannot sign blocks.
    let err = start(&c.org1.join("identities").join("client"));
    assert!(err.contains("role is client, not orderer"), "{err}");
    // An orderer certificate next to another organisation's CA.
    let mixed = dir.path().join("mixed");
    let osn0 = c.osn_identity(0);
    for sub in ["signcerts", "keystore", "cacerts"] {
        std::fs::create_dir_all(mixed.join(sub)).unwrap();
    }
    std::fs::copy(osn0.join("signcerts/cert.pem"), mixed.join("signcerts/cert.pem")).unwrap();
    std::fs::copy(osn0.join("keystore/key.pem"), mixed.join("keystore/key.pem")).unwrap();
    std::fs::copy(c.org1.join("msp/cacerts/ca.pem"), mixed.join("cacerts/ca.pem")).unwrap();
    std::fs::write(mixed.join("mspid"), "OrdererMSP\n").unwrap();
    let err = start(&mixed);
    assert!(err.contains("does not chain to its cacerts"), "{err}");
}
