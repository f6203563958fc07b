//! The cost of checking a signed envelope, on one thread (so the figures are per core): the
//! access checks of `osn::core::access` (creator from the cache, certificate validity, signature,
//! chain, Writers, timestamp) for ECDSA P-256 and Ed25519 creators, Ed25519 in batches, and
//! the client's cost of signing, beside the bare signature verification as the baseline (ring's,
//! and ECDSA with the key's precomputed table, `osn::core::p256`).
//! Run: `cargo bench --bench verify`.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use prost::Message as _;

use osn::cli::client::transaction;
use osn::core::access::{Access, Request};
use osn::core::policy::PolicyName;
use osn::identity::{create_ca, issue, KeyType, Role, SigningIdentity, Validity};
use osn::proto::{ChannelHeader, Envelope, Payload, SignatureHeader};

struct Fixture {
    _dir: tempfile::TempDir,
    access: std::sync::Arc<Access>,
    ecdsa: SigningIdentity,
    ed25519: SigningIdentity,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let org = dir.path().join("org");
    create_ca("BenchMSP", &org, KeyType::EcdsaP256, Validity::ca_default()).unwrap();
    let load = |name, key| {
        SigningIdentity::load(&issue(&org, name, Role::Client, key, Validity::leaf_default()).unwrap()).unwrap()
    };
    let (ecdsa, ed25519) = (load("ecdsa", KeyType::EcdsaP256), load("ed25519", KeyType::Ed25519));
    // A channel of BenchMSP, created from a system channel with it in its consortium: its
    // /Channel/Writers is what the checks evaluate.
    let admin = SigningIdentity::load(
        &issue(&org, "admin", Role::Admin, KeyType::EcdsaP256, Validity::leaf_default()).unwrap(),
    )
    .unwrap();
    let msp = osn::identity::fabric_msp::verifying_config(&org.join("msp"), "BenchMSP").unwrap();
    let mut profile =
        osn::core::genesis::SystemProfile::kafka(vec!["127.0.0.1:9092".into()], vec!["127.0.0.1:7050".into()]);
    profile.consortiums = vec![osn::core::genesis::Consortium {
        name: "Bench".into(),
        members: vec![osn::core::genesis::Organization::application("BenchMSP", msp)],
    }];
    let system = osn::core::genesis::system_config(&profile);
    let approver = (osn::core::msp::Identity::deserialize(&admin.serialized()).unwrap(), admin.serialized());
    let config =
        osn::core::genesis::created_channel_config(&system, "bench", "Bench", &["BenchMSP".into()], &[approver])
            .unwrap();
    let bundle = osn::core::channelconfig::Bundle::new("bench", config).unwrap();
    let access = osn::core::chain::InForce::new(std::sync::Arc::new(bundle), 900).access;
    Fixture { access, ecdsa, ed25519, _dir: dir }
}

/// An envelope and the parts of it the checks read.
struct Signed {
    env: Envelope,
    creator: Bytes,
    timestamp: Option<i64>,
}

fn signed(signer: &SigningIdentity, n: usize) -> Vec<Signed> {
    (0..n)
        .map(|_| {
            let env = transaction(signer, "bench", 2048);
            let header = Payload::decode(env.payload.clone()).unwrap().header.unwrap();
            let creator = SignatureHeader::decode(header.signature_header).unwrap().creator;
            let timestamp = ChannelHeader::decode(header.channel_header).unwrap().timestamp.map(|t| t.seconds);
            Signed { env, creator, timestamp }
        })
        .collect()
}

fn requests(signed: &[Signed]) -> Vec<Request<'_>> {
    signed
        .iter()
        .map(|s| Request {
            payload: &s.env.payload,
            signature: &s.env.signature,
            creator: &s.creator,
            timestamp: s.timestamp,
        })
        .collect()
}

fn now() -> i64 {
    osn::verify::unix_now()
}

fn check_one(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("check_one_2KB");
    g.throughput(Throughput::Elements(1));
    for (name, signer) in [("ecdsa_p256", &f.ecdsa), ("ed25519", &f.ed25519)] {
        let envs = signed(signer, 256);
        let reqs = requests(&envs);
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % reqs.len();
                f.access.check(&reqs[i], PolicyName::Writers, now()).unwrap()
            })
        });
    }
    g.finish();
}

/// The baseline: the signature verification alone (ring for ECDSA, ed25519-dalek for Ed25519),
/// with no creator lookup, chain, policy or timestamp.
fn verify_raw(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("raw_verify_2KB");
    g.throughput(Throughput::Elements(1));
    for (name, signer) in [("ecdsa_p256", &f.ecdsa), ("ed25519", &f.ed25519)] {
        let envs = signed(signer, 256);
        let key = osn::core::msp::Identity::deserialize(&envs[0].creator).unwrap().cert.public_key;
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % envs.len();
                key.verify(&envs[i].env.payload, &envs[i].env.signature).unwrap()
            })
        });
    }
    // The same check with the key's table (`osn::core::p256`), what a repeat creator gets; and
    // what building that table costs, once per key.
    let envs = signed(&f.ecdsa, 256);
    let point = match osn::core::msp::Identity::deserialize(&envs[0].creator).unwrap().cert.public_key {
        osn::core::msp::PublicKey::EcdsaP256(point) => point,
        other => panic!("not ECDSA: {other:?}"),
    };
    let prepared = osn::core::p256::PreparedKey::new(&point).unwrap();
    let mut i = 0;
    g.bench_function("ecdsa_p256_table", |b| {
        b.iter(|| {
            i = (i + 1) % envs.len();
            prepared.verify_der(&envs[i].env.payload, &envs[i].env.signature).unwrap()
        })
    });
    g.bench_function("ecdsa_p256_build_table", |b| b.iter(|| osn::core::p256::PreparedKey::new(&point).unwrap()));
    g.finish();
}

fn check_batch(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("check_all_2KB");
    for (name, signer) in [("ecdsa_p256", &f.ecdsa), ("ed25519", &f.ed25519)] {
        for size in [16usize, 64, 256] {
            let envs = signed(signer, size);
            let reqs = requests(&envs);
            g.throughput(Throughput::Elements(size as u64));
            g.bench_with_input(BenchmarkId::new(name, size), &reqs, |b, reqs| {
                b.iter(|| {
                    let all = f.access.check_all(reqs, PolicyName::Writers, now());
                    assert!(all.iter().all(Result::is_ok));
                })
            });
        }
    }
    g.finish();
}

fn sign(c: &mut Criterion) {
    let f = fixture();
    let message = vec![7u8; 2048];
    let mut g = c.benchmark_group("sign_2KB");
    g.throughput(Throughput::Elements(1));
    for (name, signer) in [("ecdsa_p256", &f.ecdsa), ("ed25519", &f.ed25519)] {
        g.bench_function(name, |b| b.iter(|| signer.sign(&message)));
    }
    g.finish();
}

criterion_group!(benches, verify_raw, check_one, check_batch, sign);
criterion_main!(benches);
