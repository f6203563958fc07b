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
    // Both organisations are in the channel.
    let spec = OsnSpec { members: vec!["Org1MSP", "Org2MSP"], ..OsnSpec::new(&channel, &broker) };
    let osn = Osn::start(spec).await;
    let c = crypto();
    let ch = channel.as_str();
    // Then, by a config update as Fabric's admins make one: only Org1's admins may write (Org1's
    // Writers: its admins; Org2's: nobody), only Org2 may read (Org1's Readers: nobody). Each
    // organisation's policies are its own admins' to change: both approve.
    let nobody = osn::proto::common::SignaturePolicyEnvelope {
        version: 0,
        rule: Some(osn::proto::common::SignaturePolicy {
            r#type: Some(osn::proto::common::signature_policy::Type::NOutOf(
                osn::proto::common::signature_policy::NOutOf { n: 1, rules: vec![] },
            )),
        }),
        identities: vec![],
    };
    let admins_of_org1 = osn::core::genesis::any_of("Org1MSP", &[osn::proto::msp::msp_role::MspRoleType::Admin]);
    let set = |config: &mut osn::proto::common::Config,
               org: &str,
               key: &str,
               rule: &osn::proto::common::SignaturePolicyEnvelope| {
        let group = osn::core::configedit::group_mut(config, &["Application", org]).unwrap();
        let policy = group.policies.iter_mut().find(|p| p.key == key).unwrap().value.as_mut().unwrap();
        policy.policy.as_mut().unwrap().value = rule.encode_to_vec().into();
    };
    let edit = |config: &mut osn::proto::common::Config| {
        set(config, "Org1MSP", "Writers", &admins_of_org1);
        set(config, "Org2MSP", "Writers", &nobody);
        set(config, "Org1MSP", "Readers", &nobody);
    };
    let (code, body) = change_config(&osn, ch, edit, &c.admin, &[&c.admin2]).await;
    assert_eq!(code, 200, "{body}");

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
    let got = osn::core::channelconfig::Bundle::new(ch, osn::proto::common::Config::decode(body).unwrap()).unwrap();
    let policies = got.validator.policies();
    let mut orgs: Vec<&String> = policies.msps.keys().collect();
    orgs.sort();
    assert_eq!(orgs, ["OrdererMSP", "Org1MSP", "Org2MSP"]);
    assert_eq!(policies.describe("/Channel/Application/Org1MSP/Writers"), "1 of [Org1MSP.admin]");
    assert_eq!(got.values.sequence, 2, "created at 1, then the policy update");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_osn"))
        .args(["channel", "config", "get", "--channel", ch, "--url", &osn.url, "--identity"])
        .arg(c.org2.join("identities").join("client"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("configuration sequence 2"), "{text}");
    assert!(text.contains("/Channel/Writers") && text.contains("ANY Writers of"), "{text}");
    assert!(text.contains("/Channel/Application/Org2MSP") && text.contains("OrdererMSP"), "{text}");
    // --json: as configtxlator shows it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_osn"))
        .args(["channel", "config", "get", "--json", "--channel", ch, "--url", &osn.url, "--identity"])
        .arg(c.org2.join("identities").join("client"))
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let writers = &json["channel_group"]["groups"]["Application"]["groups"]["Org1MSP"]["policies"]["Writers"];
    assert_eq!(writers["policy"]["type"], 1, "{writers}");
    assert_eq!(writers["policy"]["value"]["identities"][0]["principal"]["role"], "ADMIN", "{writers}");
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
    let genesis = dir.path().join("genesis.block");
    let batch =
        osn::proto::BatchSize { max_message_count: 10, absolute_max_bytes: 1 << 20, preferred_max_bytes: 1 << 19 };
    std::fs::write(&genesis, genesis_block("127.0.0.1:9", batch, "1s", 0).encode_to_vec()).unwrap();
    let start = |identity: &std::path::Path, genesis: Option<&std::path::Path>| {
        let config = dir.path().join("osn.toml");
        let system = genesis.map_or(String::new(), |g| format!("[system]\ngenesis-file = {g:?}\n"));
        let text = format!(
            "[http]\naddress = \"127.0.0.1:0\"\n[grpc]\naddress = \"127.0.0.1:0\"\n[ledger]\npath = {:?}\n\
             [identity]\ndir = {:?}\n{system}",
            dir.path().join("ledger"),
            identity,
        );
        std::fs::write(&config, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_osn"))
            .args(["start", "--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A client's identity cannot sign blocks: it is not an orderer organisation's member.
    let err = start(&c.org1.join("identities").join("client"), Some(&genesis));
    assert!(err.contains("does not satisfy the system channel's /Channel/Orderer/BlockValidation policy"), "{err}");
    assert!(
        err.contains("client of 'Org1MSP'") && err.contains("orderer organisation of the genesis block (OrdererMSP)"),
        "{err}"
    );
    // An orderer certificate claiming another organisation.
    let mixed = dir.path().join("mixed");
    let osn0 = c.osn_identity(0);
    for sub in ["signcerts", "keystore", "cacerts"] {
        std::fs::create_dir_all(mixed.join(sub)).unwrap();
    }
    std::fs::copy(osn0.join("signcerts/cert.pem"), mixed.join("signcerts/cert.pem")).unwrap();
    std::fs::copy(osn0.join("keystore/key.pem"), mixed.join("keystore/key.pem")).unwrap();
    std::fs::copy(c.org1.join("msp/cacerts/ca.pem"), mixed.join("cacerts/ca.pem")).unwrap();
    std::fs::write(mixed.join("mspid"), "Org1MSP\n").unwrap();
    let err = start(&mixed, Some(&genesis));
    assert!(err.contains("BlockValidation"), "{err}");
    // No genesis block, a file that is not one, and an application channel's block 0.
    let err = start(&osn0, None);
    assert!(err.contains("[system] genesis-file is required"), "{err}");
    let junk = dir.path().join("junk.block");
    std::fs::write(&junk, b"not a block").unwrap();
    let err = start(&osn0, Some(&junk));
    assert!(err.contains("is not a block") || err.contains("not a genesis block"), "{err}");
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fabric-1.4.12");
    let err = start(&osn0, Some(&shared.join("runs/single/blocks/ch1/0.block")));
    assert!(err.contains("no Consortiums group"), "{err}");
}
