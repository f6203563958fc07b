//! Config updates through the chain: isolation, LAST_CONFIG, the new batch size from the next
//! block, Admins with several signers, revalidation of records enqueued under an older
//! configuration, re-submitted configs and the 503 window, and channel creation on a system chain.

use std::collections::BTreeSet;

use bytes::Bytes;
use prost::Message as _;

use super::*;
use crate::cli::client::transaction;
use crate::core::block::{genesis_block, header_hash, kafka_metadata, last_config};
use crate::core::chain::{
    Applied, Chain, ChainTip, Consumed, Derived, DerivedKind, InForce, Refusal, Resubmit, Skip, SystemState,
};
use crate::identity::envelope::{config_record, config_update};
use crate::identity::{create_ca, issue, load_org_msp, KeyType, Role, SigningIdentity, Validity};
use crate::proto::osn::{AdminsOf, MemberOf, Organization, Policy};
use crate::proto::{kafka_message, kafka_message_regular::Class, BatchSize, KafkaMessage};

struct Org {
    proto: Organization,
    admin: SigningIdentity,
    client: SigningIdentity,
}

struct World {
    _dir: tempfile::TempDir,
    org1: Org,
    org2: Org,
    orderer: SigningIdentity,
    orderer_org: Organization,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let org = |msp: &str| {
        let root = dir.path().join(msp);
        create_ca(msp, &root, KeyType::EcdsaP256, Validity::ca_default()).unwrap();
        let load = |name, role| {
            SigningIdentity::load(&issue(&root, name, role, KeyType::EcdsaP256, Validity::leaf_default()).unwrap())
                .unwrap()
        };
        Org {
            proto: load_org_msp(&root.join("msp")).unwrap().into(),
            admin: load("admin", Role::Admin),
            client: load("client", Role::Client),
        }
    };
    let (org1, org2) = (org("Org1MSP"), org("Org2MSP"));
    let root = dir.path().join("orderer");
    create_ca("OrdererMSP", &root, KeyType::EcdsaP256, Validity::ca_default()).unwrap();
    let orderer = SigningIdentity::load(
        &issue(&root, "osn", Role::Orderer, KeyType::EcdsaP256, Validity::leaf_default()).unwrap(),
    )
    .unwrap();
    let orderer_org = load_org_msp(&root.join("msp")).unwrap().into();
    World { _dir: dir, org1, org2, orderer, orderer_org }
}

fn batch(count: u32) -> BatchSize {
    BatchSize { max_message_count: count, absolute_max_bytes: 1 << 20, preferred_max_bytes: 1 << 19 }
}

/// A channel of Org1 and Org2 whose Admins are the admins of both.
fn channel_config(w: &World) -> ChannelConfig {
    ChannelConfig {
        batch_size: Some(batch(10)),
        organizations: vec![w.org1.proto.clone(), w.org2.proto.clone()],
        admins: Some(Policy {
            rule: Some(crate::proto::osn::policy::Rule::Admins(AdminsOf {
                msp_ids: vec!["Org1MSP".into(), "Org2MSP".into()],
                at_least: 2,
            })),
        }),
        orderer_organizations: vec![w.orderer_org.clone()],
        batch_timeout: "2s".into(),
        ..Default::default()
    }
}

fn chain_of(name: &str, config: ChannelConfig, system: Option<SystemState>) -> Chain {
    let genesis = genesis_block(name, &config);
    let tip = ChainTip {
        next_number: 1,
        previous_hash: header_hash(genesis.header.as_ref().unwrap()).into(),
        kafka: kafka_metadata(&genesis).unwrap(),
        last_config: 0,
    };
    Chain::new(name, tip, InForce::new(config, 900).unwrap(), 900, system)
}

fn normal(env: &crate::proto::Envelope, seq: u64) -> Vec<u8> {
    KafkaMessage::regular(env.encode_to_vec().into(), seq, Class::Normal).encode_to_vec()
}

/// The CONFIG record the receiving OSN would order for `update`, derived from `current`.
fn config_msg(
    w: &World,
    current: &ChannelConfig,
    update: &ConfigUpdate,
    signer: &SigningIdentity,
    approvers: &[&SigningIdentity],
) -> Vec<u8> {
    let envelope = config_update(signer, update, approvers);
    let derived = Derived {
        kind: DerivedKind::Update { channel: update.channel_id.clone() },
        config: apply(current, update).unwrap(),
        last_update: envelope,
    };
    let record = config_record(&w.orderer, &derived, "osn-system");
    KafkaMessage::regular(record, current.sequence, Class::Config).encode_to_vec()
}

fn summary(out: &Consumed) -> Vec<(u64, usize, u64)> {
    out.blocks
        .iter()
        .map(|b| (b.header.as_ref().unwrap().number, b.data.as_ref().unwrap().data.len(), last_config(b).unwrap()))
        .collect()
}

fn set_batch(count: u32) -> ConfigUpdate {
    ConfigUpdate {
        channel_id: "ch".into(),
        batch_size: Some(BatchSize { max_message_count: count, ..Default::default() }),
        ..Default::default()
    }
}

#[test]
fn channel_ids_follow_fabrics_rule() {
    for ok in ["a", "ch1", "my.channel-2", &"a".repeat(249)] {
        assert!(validate_channel_id(ok).is_ok(), "{ok}");
    }
    for bad in ["", "1ch", "Ch", "ch_1", "ch/1", "é", &"a".repeat(250)] {
        assert!(validate_channel_id(bad).is_err(), "{bad}");
    }
}

#[test]
fn an_update_is_isolated_becomes_last_config_and_changes_the_batch_size_from_the_next_block() {
    let w = world();
    let config = channel_config(&w);
    let mut chain = chain_of("ch", config.clone(), None);
    let tx = |c: &Org| transaction(&c.client, "ch", 100);
    assert!(chain.consume(0, &normal(&tx(&w.org1), 0)).blocks.is_empty());
    let update = config_msg(&w, &config, &set_batch(2), &w.org1.admin, &[&w.org2.admin]);
    let out = chain.consume(1, &update);
    assert_eq!(summary(&out), vec![(1, 1, 0), (2, 1, 2)], "the pending batch is cut, then the config alone");
    let Some(Ok(Applied::Config(new))) = out.outcome.map(|o| o.result) else { panic!("config applied") };
    assert_eq!((new.sequence, new.batch_size.unwrap().max_message_count), (1, 2));
    assert_eq!(new.batch_size.unwrap().absolute_max_bytes, 1 << 20, "zero fields keep their values");
    assert_eq!(chain.in_force().access.sequence(), 1);
    // Two envelopes now make a block, which points at the config block.
    assert!(chain.consume(2, &normal(&tx(&w.org1), 1)).blocks.is_empty());
    assert_eq!(summary(&chain.consume(3, &normal(&tx(&w.org2), 1))), vec![(3, 2, 2)]);
}

#[test]
fn an_update_needs_the_admins_policy() {
    let w = world();
    let config = channel_config(&w);
    let envelope = config_update(&w.org1.admin, &set_batch(2), &[]);
    let request = UpdateRequest::parse(&envelope).unwrap();
    let access = Access::new(&config, 900).unwrap();
    let now = request.timestamp().unwrap();
    let err = request.authorise(&access, PolicyName::Admins, now).unwrap_err();
    assert!(matches!(err, Denied::PolicySet { .. }), "{err}");
    assert!(err.to_string().contains("admin of Org1MSP"), "{err}");
    // A client's approval is not an admin's.
    let envelope = config_update(&w.org1.admin, &set_batch(2), &[&w.org2.client]);
    assert!(UpdateRequest::parse(&envelope).unwrap().authorise(&access, PolicyName::Admins, now).is_err());
    let envelope = config_update(&w.org1.admin, &set_batch(2), &[&w.org2.admin]);
    assert_eq!(UpdateRequest::parse(&envelope).unwrap().authorise(&access, PolicyName::Admins, now).unwrap().len(), 2);
    // An approval of another update does not count.
    let mut env = crate::proto::osn::ConfigUpdateEnvelope::decode(
        crate::proto::Payload::decode(envelope.payload.clone()).unwrap().data,
    )
    .unwrap();
    env.config_update = set_batch(3).encode_to_vec().into();
    let forged = crate::identity::envelope::sign(
        &w.org1.admin,
        &crate::identity::envelope::payload(
            &w.org1.admin,
            "ch",
            crate::proto::HeaderType::ConfigUpdate,
            env.encode_to_vec().into(),
        ),
    );
    let err = UpdateRequest::parse(&forged).unwrap().authorise(&access, PolicyName::Admins, now).unwrap_err();
    assert!(matches!(err, Denied::Signature(_)), "{err}");
}

#[test]
fn a_record_forged_past_the_receiving_osn_is_refused_on_consumption() {
    let w = world();
    let config = channel_config(&w);
    let mut chain = chain_of("ch", config.clone(), None);
    // Under-signed: the receiving OSN should have refused it; every consumer refuses it too.
    let under = config_msg(&w, &config, &set_batch(2), &w.org1.admin, &[]);
    let out = chain.consume(0, &under);
    assert!(out.blocks.is_empty());
    assert!(matches!(out.skip, Some(Skip::Rejected(_))));
    assert!(out.outcome.unwrap().result.is_err());
    assert_eq!(chain.in_force().config.sequence, 0);
}

#[test]
fn a_removed_organisations_stale_envelopes_are_dropped_and_valid_ones_resubmitted_once() {
    let w = world();
    let mut config = channel_config(&w);
    config.admins = None; // a majority of two: both admins
    let mut chain = chain_of("ch", config.clone(), None);
    let remove =
        ConfigUpdate { channel_id: "ch".into(), remove_organizations: vec!["Org2MSP".into()], ..Default::default() };
    let out = chain.consume(0, &config_msg(&w, &config, &remove, &w.org1.admin, &[&w.org2.admin]));
    assert_eq!(summary(&out), vec![(1, 1, 1)]);
    // Enqueued under sequence 0 before the update was consumed:
    let from_org2 = normal(&transaction(&w.org2.client, "ch", 50), 0);
    let from_org1 = normal(&transaction(&w.org1.client, "ch", 50), 0);
    let out = chain.consume(1, &from_org2);
    assert!(matches!(out.skip, Some(Skip::Rejected(ref r)) if r.contains("not valid under 1")), "{:?}", out.skip);
    assert!(out.resubmit.is_none());
    let out = chain.consume(2, &from_org1);
    let Some(Resubmit::Normal(again)) = out.resubmit else { panic!("re-submitted") };
    let Some(kafka_message::Type::Regular(r)) = &again.r#type else { panic!() };
    assert_eq!((r.config_seq, r.original_offset), (1, 2));
    // Every OSN re-submits it: the first copy is ordered, the others dropped.
    let again = again.encode_to_vec();
    assert!(chain.consume(3, &again).skip == Some(Skip::Pending));
    assert_eq!(chain.consume(4, &again).skip, Some(Skip::AlreadyProcessed { original_offset: 2 }));
    assert_eq!(chain.pending_len(), 1);
}

#[test]
fn a_config_enqueued_under_an_older_sequence_is_rederived_resubmitted_and_blocks_broadcasts_until_consumed() {
    let w = world();
    let config = channel_config(&w);
    let mut chain = chain_of("ch", config.clone(), None);
    let first = config_msg(&w, &config, &set_batch(2), &w.org1.admin, &[&w.org2.admin]);
    let timeout = ConfigUpdate { channel_id: "ch".into(), batch_timeout: "5s".into(), ..Default::default() };
    let second = config_msg(&w, &config, &timeout, &w.org2.admin, &[&w.org1.admin]);
    assert_eq!(summary(&chain.consume(0, &first)), vec![(1, 1, 1)]);
    let out = chain.consume(1, &second);
    assert!(out.blocks.is_empty() && out.outcome.is_none());
    let Some(Resubmit::Config { derived, config_seq, original_offset }) = out.resubmit else { panic!("re-submitted") };
    assert_eq!((config_seq, original_offset), (1, 1));
    assert_eq!(derived.config.batch_timeout, "5s");
    assert_eq!(derived.config.batch_size.unwrap().max_message_count, 2, "derived from the configuration in force");
    assert!(chain.reprocessing(), "broadcasts wait for the re-submitted config");
    let mut again = KafkaMessage::regular(config_record(&w.orderer, &derived, "osn-system"), config_seq, Class::Config);
    if let Some(kafka_message::Type::Regular(r)) = again.r#type.as_mut() {
        r.original_offset = original_offset;
    }
    let again = again.encode_to_vec();
    let out = chain.consume(2, &again);
    assert_eq!(summary(&out), vec![(2, 1, 2)]);
    assert_eq!(out.outcome.unwrap().offset, 1, "the sender of offset 1 learns the outcome");
    assert!(!chain.reprocessing());
    let meta = kafka_metadata(&out.blocks[0]).unwrap();
    assert_eq!((meta.last_original_offset_processed, meta.last_resubmitted_config_offset), (1, 1));
    assert_eq!(chain.consume(3, &again).skip, Some(Skip::AlreadyProcessed { original_offset: 1 }));
    assert_eq!(chain.in_force().config.sequence, 2);
}

#[test]
fn the_system_chain_creates_each_channel_once_within_its_limit() {
    let w = world();
    let system = ChannelConfig {
        batch_size: Some(batch(10)),
        organizations: vec![w.org1.proto.clone(), w.org2.proto.clone()],
        writers: Some(Policy {
            rule: Some(crate::proto::osn::policy::Rule::Admins(AdminsOf {
                msp_ids: vec!["Org1MSP".into(), "Org2MSP".into()],
                at_least: 1,
            })),
        }),
        readers: Some(Policy {
            rule: Some(crate::proto::osn::policy::Rule::AnyMember(MemberOf { msp_ids: vec!["Org1MSP".into()] })),
        }),
        orderer_organizations: vec![w.orderer_org.clone()],
        batch_timeout: "1s".into(),
        max_channels: 2,
        ..Default::default()
    };
    let mut chain = chain_of("osn-system", system.clone(), Some(SystemState::default()));
    let create = |name: &str, signer: &SigningIdentity| {
        let update = ConfigUpdate {
            channel_id: name.into(),
            set_organizations: vec![Organization { msp_id: "Org1MSP".into(), ..Default::default() }],
            ..Default::default()
        };
        let envelope = config_update(signer, &update, &[]);
        let derived = Derived {
            kind: DerivedKind::Create { channel: name.into() },
            config: new_channel(&system, &update).unwrap(),
            last_update: envelope,
        };
        KafkaMessage::regular(config_record(&w.orderer, &derived, "osn-system"), 0, Class::Config).encode_to_vec()
    };
    let out = chain.consume(0, &create("one", &w.org1.admin));
    assert_eq!(summary(&out), vec![(1, 1, 0)], "isolated, but not the system channel's config");
    let Some(Ok(Applied::Created { channel, genesis_envelope })) = out.outcome.map(|o| o.result) else { panic!() };
    assert_eq!(channel, "one");
    let genesis = crate::core::block::genesis_block_of(genesis_envelope);
    let config = crate::ledger::block_config(&genesis).unwrap();
    assert_eq!((config.sequence, config.batch_timeout.as_str(), config.organizations.len()), (0, "1s", 1));
    assert_eq!(config.orderer_organizations, system.orderer_organizations);
    // The same channel again (a concurrent request through another OSN): refused by every OSN.
    let out = chain.consume(1, &create("one", &w.org2.admin));
    assert!(out.blocks.is_empty());
    assert_eq!(out.outcome.unwrap().result, Err(Refusal::Conflict("channel 'one' already exists".into())));
    // A client may not create channels.
    let out = chain.consume(2, &create("two", &w.org1.client));
    let refusal = out.outcome.unwrap().result.unwrap_err();
    assert!(matches!(&refusal, Refusal::Forbidden(r) if r.contains("Writers")), "{refusal:?}");
    assert_eq!(summary(&chain.consume(3, &create("two", &w.org2.admin))).len(), 1);
    let out = chain.consume(4, &create("three", &w.org1.admin));
    assert_eq!(
        out.outcome.unwrap().result,
        Err(Refusal::Forbidden("the channel limit of 2 is reached (2 channels created)".into()))
    );
}

#[test]
fn new_channels_take_their_members_certificates_from_the_system_channel() {
    let w = world();
    let system = ChannelConfig {
        batch_size: Some(batch(10)),
        organizations: vec![w.org1.proto.clone()],
        orderer_organizations: vec![w.orderer_org.clone()],
        ..Default::default()
    };
    let named = |msp: &str| Organization { msp_id: msp.into(), ..Default::default() };
    let update = |orgs: Vec<Organization>| ConfigUpdate {
        channel_id: "ch".into(),
        set_organizations: orgs,
        ..Default::default()
    };
    let config = new_channel(&system, &update(vec![named("Org1MSP")])).unwrap();
    assert_eq!(config.organizations, vec![w.org1.proto.clone()]);
    assert_eq!(config.batch_timeout, DEFAULT_BATCH_TIMEOUT);
    assert!(new_channel(&system, &update(vec![named("Org2MSP")])).unwrap_err().contains("may not be a channel member"));
    assert!(
        new_channel(&system, &update(vec![w.org2.proto.clone()])).is_err(),
        "an unknown organisation's own certificates do not help"
    );
    assert!(new_channel(&system, &update(vec![])).unwrap_err().contains("at least one"));
    let mut bad = update(vec![named("Org1MSP")]);
    bad.batch_size =
        Some(BatchSize { preferred_max_bytes: 2 << 20, absolute_max_bytes: 1 << 20, max_message_count: 1 });
    assert!(new_channel(&system, &bad).unwrap_err().contains("preferred max bytes"));
    let mut bad = update(vec![named("Org1MSP")]);
    bad.batch_timeout = "soon".into();
    assert!(new_channel(&system, &bad).unwrap_err().contains("batch timeout"));
    let _ = Bytes::new();
}

#[test]
fn updates_validate_what_they_change() {
    let w = world();
    let config = channel_config(&w);
    let remove_all = ConfigUpdate {
        channel_id: "ch".into(),
        remove_organizations: vec!["Org1MSP".into(), "Org2MSP".into()],
        ..Default::default()
    };
    assert!(apply(&config, &remove_all).unwrap_err().contains("no organisations"));
    let remove_named =
        ConfigUpdate { channel_id: "ch".into(), remove_organizations: vec!["Org2MSP".into()], ..Default::default() };
    assert!(apply(&config, &remove_named).unwrap_err().contains("Admins policy names organisation 'Org2MSP'"));
    let unknown =
        ConfigUpdate { channel_id: "ch".into(), remove_organizations: vec!["Org9MSP".into()], ..Default::default() };
    assert!(apply(&config, &unknown).unwrap_err().contains("not in the channel"));
    assert!(apply(&config, &ConfigUpdate { channel_id: "ch".into(), ..Default::default() })
        .unwrap_err()
        .contains("changes nothing"));
    let zero = ConfigUpdate { channel_id: "ch".into(), batch_timeout: "0s".into(), ..Default::default() };
    assert!(apply(&config, &zero).is_err());
}

#[test]
fn an_update_with_too_many_approvals_is_refused_before_any_is_verified() {
    let w = world();
    let approvers: Vec<&SigningIdentity> = (0..=MAX_CONFIG_SIGNATURES).map(|_| &w.org2.admin).collect();
    let envelope = config_update(&w.org1.admin, &set_batch(2), &approvers);
    assert!(UpdateRequest::parse(&envelope).unwrap_err().contains("signatures, over the 64 accepted"));
    let envelope = config_update(&w.org1.admin, &set_batch(2), &approvers[1..]);
    assert!(UpdateRequest::parse(&envelope).is_ok());
}

/// The one admission decision, with the status and HTTP code each refusal is answered with; the
/// two stages differ only in what an update that no longer derives means.
#[test]
fn admission_refuses_with_exact_codes_on_arrival_and_at_consumption() {
    use crate::core::admission::{admit, Existing, Stage, Target};
    let w = world();
    let now = crate::verify::unix_now();
    let system = ChannelConfig {
        writers: Some(Policy {
            rule: Some(crate::proto::osn::policy::Rule::Admins(AdminsOf {
                msp_ids: vec!["Org1MSP".into(), "Org2MSP".into()],
                at_least: 1,
            })),
        }),
        max_channels: 3,
        ..channel_config(&w)
    };
    let access = Access::new(&system, 900).unwrap();
    let names: BTreeSet<String> = ["osn-system", "one", "declared"].into_iter().map(String::from).collect();
    let on_system = |created| Target {
        channel: "osn-system",
        config: &system,
        access: &access,
        existing: Some(Existing { names: &names, created }),
    };
    let create = |name: &str, signer: &SigningIdentity, created: usize| {
        let update = ConfigUpdate {
            channel_id: name.into(),
            set_organizations: vec![Organization { msp_id: "Org1MSP".into(), ..Default::default() }],
            ..Default::default()
        };
        let request = UpdateRequest::parse(&config_update(signer, &update, &[])).unwrap();
        admit(&request, DerivedKind::Create { channel: name.into() }, &on_system(created), now, Stage::Arrival)
    };
    let code = |r: Result<Derived, Refusal>| r.map(|_| 200).unwrap_or_else(|e| e.http_code());
    assert_eq!(code(create("two", &w.org1.admin, 1)), 200);
    assert_eq!(code(create("Bad_Name", &w.org1.admin, 1)), 400);
    assert_eq!(code(create("osn-system", &w.org1.admin, 1)), 400);
    assert_eq!(code(create("declared", &w.org1.admin, 1)), 409, "a declared channel exists too");
    assert_eq!(code(create("two", &w.org1.client, 1)), 403, "Writers are admins");
    let limit = create("two", &w.org1.admin, 3).unwrap_err();
    assert_eq!((limit.http_code(), limit.status()), (403, crate::proto::Status::Forbidden));
    let conflict = create("one", &w.org1.admin, 1).unwrap_err();
    assert_eq!((conflict.http_code(), conflict.status()), (409, crate::proto::Status::BadRequest));

    // An update: Admins of both organisations; one that does not derive is a bad request on
    // arrival and a conflict at consumption (it derived when it arrived).
    let config = channel_config(&w);
    let access = Access::new(&config, 900).unwrap();
    let on_channel = Target { channel: "ch", config: &config, access: &access, existing: None };
    let update = |u: &ConfigUpdate, approvers: &[&SigningIdentity]| {
        UpdateRequest::parse(&config_update(&w.org1.admin, u, approvers)).unwrap()
    };
    let kind = || DerivedKind::Update { channel: "ch".into() };
    let both = update(&set_batch(5), &[&w.org2.admin]);
    assert_eq!(code(admit(&both, kind(), &on_channel, now, Stage::Arrival)), 200);
    assert_eq!(code(admit(&update(&set_batch(5), &[]), kind(), &on_channel, now, Stage::Arrival)), 403);
    let nothing = update(&ConfigUpdate { channel_id: "ch".into(), ..Default::default() }, &[&w.org2.admin]);
    assert_eq!(code(admit(&nothing, kind(), &on_channel, now, Stage::Arrival)), 400);
    assert_eq!(code(admit(&nothing, kind(), &on_channel, now, Stage::Consumption)), 409);
    let elsewhere = DerivedKind::Update { channel: "other".into() };
    assert_eq!(code(admit(&both, elsewhere, &on_channel, now, Stage::Arrival)), 400, "the update names 'ch'");
    // Signed an hour ago: outside the 15-minute window of the receiving OSN's clock.
    assert_eq!(code(admit(&both, kind(), &on_channel, now + 3600, Stage::Arrival)), 400);
}
