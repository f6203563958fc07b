//! Config updates through the chain, on Fabric's configuration: isolation, LAST_CONFIG, the new
//! batch size from the next block, mod_policies with several approvals, revalidation of records
//! enqueued under an older configuration, re-submitted configs and the 503 window, channel
//! creation on a system chain, and the admission decision's codes.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;

use super::*;
use crate::cli::client::transaction;
use crate::core::admission::{admit, Existing, Stage, Target};
use crate::core::block::{header_hash, kafka_metadata, last_config};
use crate::core::chain::{
    Applied, Chain, ChainTip, Consumed, Derived, DerivedKind, InForce, Refusal, Resubmit, Skip, SystemState,
};
use crate::core::channelconfig::Bundle;
use crate::core::configedit;
use crate::core::configtx::{compute_update, Validator};
use crate::core::genesis::creation_update;
use crate::core::testkit::{self, batch, signer, Org, CONSORTIUM};
use crate::identity::envelope::{config_record, config_update};
use crate::identity::{KeyType, Role, SigningIdentity};
use crate::proto::common::Config;
use crate::proto::{kafka_message, kafka_message_regular::Class, KafkaMessage};

struct World {
    _dir: tempfile::TempDir,
    orderer_org: Org,
    org1: Org,
    org2: Org,
    /// The OSN's identity: an orderer of the orderer organisation.
    osn: SigningIdentity,
    client1: SigningIdentity,
    client2: SigningIdentity,
    /// The system channel: the orderer organisation, and Org1 and Org2 in the consortium.
    system: Config,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let orderer_org = Org::new(dir.path(), "OrdererMSP", KeyType::EcdsaP256);
    let org1 = Org::new(dir.path(), "Org1MSP", KeyType::EcdsaP256);
    let org2 = Org::new(dir.path(), "Org2MSP", KeyType::EcdsaP256);
    let osn = orderer_org.identity("osn", Role::Orderer, KeyType::EcdsaP256, None);
    let client1 = org1.identity("client", Role::Client, KeyType::EcdsaP256, None);
    let client2 = org2.identity("client", Role::Client, KeyType::EcdsaP256, None);
    let system = testkit::system(&[&orderer_org], &[&org1, &org2], batch(10, 1 << 20, 1 << 19), "2s");
    World { _dir: dir, orderer_org, org1, org2, osn, client1, client2, system }
}

/// Channel "ch" of Org1 and Org2, as the system channel creates it.
fn channel_config(w: &World) -> Config {
    testkit::channel(&w.system, "ch", &[&w.org1, &w.org2])
}

fn bundle(name: &str, config: &Config) -> Bundle {
    Bundle::new(name, config.clone()).unwrap()
}

fn chain_of(name: &str, config: &Config, system: Option<SystemState>) -> Chain {
    let genesis = crate::core::genesis::genesis_block(name, config, 0, [0; 24]);
    let tip = ChainTip {
        next_number: 1,
        previous_hash: header_hash(genesis.header.as_ref().unwrap()).into(),
        kafka: crate::core::block::genesis_kafka_metadata(),
        last_config: 0,
    };
    Chain::new(name, tip, InForce::new(Arc::new(bundle(name, config)), 900), 900, system)
}

fn normal(env: &crate::proto::Envelope, seq: u64) -> Vec<u8> {
    KafkaMessage::regular(env.encode_to_vec().into(), seq, Class::Normal).encode_to_vec()
}

/// The update of channel `ch` from `current` to `current` edited.
fn update_of(current: &Config, edit: impl FnOnce(&mut Config)) -> crate::proto::common::ConfigUpdate {
    let mut next = current.clone();
    edit(&mut next);
    compute_update("ch", current, &next).unwrap()
}

/// MaxMessageCount `count`: the orderer organisation's admins' to change.
fn set_batch(current: &Config, count: u32) -> crate::proto::common::ConfigUpdate {
    update_of(current, |c| configedit::set_batch_size(c, batch(count, 1 << 20, 1 << 19)).unwrap())
}

/// What every admin of the world approves: the configuration an update yields, whoever signed
/// its envelope (a receiving OSN that checked nothing could order it).
fn derived_unchecked(w: &World, channel: &str, current: &Config, envelope: &crate::proto::Envelope) -> Config {
    let request = UpdateRequest::parse(envelope).unwrap();
    let everyone = [w.orderer_org.admin_signer(), w.org1.admin_signer(), w.org2.admin_signer()];
    Validator::new(channel, current).unwrap().propose(&request.update_envelope, &everyone).unwrap()
}

/// The CONFIG record an OSN orders for `update` of `current` (sequence `seq`).
fn config_msg(
    w: &World,
    current: &Config,
    update: &crate::proto::common::ConfigUpdate,
    signer: &SigningIdentity,
    approvers: &[&SigningIdentity],
) -> Vec<u8> {
    let envelope = config_update(signer, update, approvers);
    let derived = Derived {
        kind: DerivedKind::Update { channel: update.channel_id.clone() },
        config: derived_unchecked(w, &update.channel_id, current, &envelope),
        last_update: envelope,
    };
    let record = config_record(&w.osn, &derived, "osn-system");
    KafkaMessage::regular(record, current.sequence, Class::Config).encode_to_vec()
}

fn summary(out: &Consumed) -> Vec<(u64, usize, u64)> {
    out.blocks
        .iter()
        .map(|b| (b.header.as_ref().unwrap().number, b.data.as_ref().unwrap().data.len(), last_config(b).unwrap()))
        .collect()
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
    let mut chain = chain_of("ch", &config, None);
    let tx = |c: &SigningIdentity| transaction(c, "ch", 100);
    assert!(chain.consume(0, &normal(&tx(&w.client1), 1)).blocks.is_empty());
    let update = config_msg(&w, &config, &set_batch(&config, 2), &w.orderer_org.admin, &[]);
    let out = chain.consume(1, &update);
    assert_eq!(summary(&out), vec![(1, 1, 0), (2, 1, 2)], "the pending batch is cut, then the config alone");
    let Some(Ok(Applied::Config(new))) = out.outcome.map(|o| o.result) else { panic!("config applied") };
    assert_eq!((new.values.sequence, new.values.batch_size.max_message_count), (2, 2));
    assert_eq!(chain.in_force().access.sequence(), 2);
    // Two envelopes now make a block, which points at the config block.
    assert!(chain.consume(2, &normal(&tx(&w.client1), 2)).blocks.is_empty());
    assert_eq!(summary(&chain.consume(3, &normal(&tx(&w.client2), 2))), vec![(3, 2, 2)]);
}

#[test]
fn an_update_needs_the_mod_policies_of_what_it_changes() {
    let w = world();
    let config = channel_config(&w);
    let b = bundle("ch", &config);
    let request =
        |update: &crate::proto::common::ConfigUpdate, signer: &SigningIdentity, approvers: &[&SigningIdentity]| {
            UpdateRequest::parse(&config_update(signer, update, approvers)).unwrap()
        };
    let access = InForce::new(Arc::new(b.clone()), 900).access;
    let propose = |r: &UpdateRequest| {
        let (signers, _) = access.config_signers(&r.signed_data());
        b.propose(&r.update_envelope, &signers)
    };
    // The batch size is the orderer organisation's admins' (/Channel/Orderer/Admins), not the
    // members'.
    let batch = set_batch(&config, 2);
    let err = propose(&request(&batch, &w.org1.admin, &[&w.org2.admin])).unwrap_err();
    assert!(err.message.contains("[Value]  /Channel/Orderer/BatchSize not satisfied"), "{err}");
    assert!(propose(&request(&batch, &w.orderer_org.admin, &[])).is_ok());
    // Removing Org2 is the channel's admins': a majority of two organisations is both.
    let remove = update_of(&config, |c| configedit::remove_organization(c, &["Application"], "Org2MSP").unwrap());
    assert!(propose(&request(&remove, &w.org1.admin, &[])).is_err());
    assert!(propose(&request(&remove, &w.org1.admin, &[&w.client2])).is_err(), "a client is not an admin");
    assert!(propose(&request(&remove, &w.org1.admin, &[&w.org2.admin])).is_ok());
    // An approval of another update does not count: its signature does not verify.
    let envelope = config_update(&w.org1.admin, &remove, &[&w.org2.admin]);
    let mut env = crate::proto::common::ConfigUpdateEnvelope::decode(
        crate::proto::Payload::decode(envelope.payload.clone()).unwrap().data,
    )
    .unwrap();
    env.config_update = set_batch(&config, 3).encode_to_vec().into();
    let forged = crate::identity::envelope::sign(
        &w.org1.admin,
        &crate::identity::envelope::payload(
            &w.org1.admin,
            "ch",
            crate::proto::HeaderType::ConfigUpdate,
            env.encode_to_vec().into(),
        ),
    );
    let forged = UpdateRequest::parse(&forged).unwrap();
    let (signers, dropped) = access.config_signers(&forged.signed_data());
    assert!(signers.is_empty() && dropped.len() == 2, "{dropped:?}");
}

#[test]
fn a_record_forged_past_the_receiving_osn_is_refused_on_consumption() {
    let w = world();
    let config = channel_config(&w);
    let mut chain = chain_of("ch", &config, None);
    // Approved by a member's admin only: the receiving OSN should have refused it; every
    // consumer refuses it too.
    let under = config_msg(&w, &config, &set_batch(&config, 2), &w.org1.admin, &[]);
    let out = chain.consume(0, &under);
    assert!(out.blocks.is_empty());
    assert!(matches!(out.skip, Some(Skip::Rejected(_))));
    assert!(out.outcome.unwrap().result.is_err());
    assert_eq!(chain.in_force().sequence(), 1);
    // A CONFIG whose configuration is not what its update yields.
    let envelope = config_update(&w.orderer_org.admin, &set_batch(&config, 2), &[]);
    let mut other = derived_unchecked(&w, "ch", &config, &envelope);
    configedit::set_batch_timeout(&mut other, "9s").unwrap();
    let derived = Derived { kind: DerivedKind::Update { channel: "ch".into() }, config: other, last_update: envelope };
    let record = KafkaMessage::regular(config_record(&w.osn, &derived, "osn-system"), 1, Class::Config);
    let out = chain.consume(1, &record.encode_to_vec());
    let reason = out.outcome.unwrap().result.unwrap_err().to_string();
    assert!(reason.contains("did not produce the supplied config result"), "{reason}");
}

#[test]
fn a_removed_organisations_stale_envelopes_are_dropped_and_valid_ones_resubmitted_once() {
    let w = world();
    let config = channel_config(&w);
    let mut chain = chain_of("ch", &config, None);
    let remove = update_of(&config, |c| configedit::remove_organization(c, &["Application"], "Org2MSP").unwrap());
    let out = chain.consume(0, &config_msg(&w, &config, &remove, &w.org1.admin, &[&w.org2.admin]));
    assert_eq!(summary(&out), vec![(1, 1, 1)]);
    // Enqueued under sequence 1 before the update was consumed:
    let from_org2 = normal(&transaction(&w.client2, "ch", 50), 1);
    // Org1's was sent with its fields the other way round: it goes back as Go writes it.
    let tx = transaction(&w.client1, "ch", 50);
    let half = |payload: &Bytes, signature: &Bytes| {
        crate::proto::Envelope { payload: payload.clone(), signature: signature.clone() }.encode_to_vec()
    };
    let swapped = [half(&Bytes::new(), &tx.signature), half(&tx.payload, &Bytes::new())].concat();
    let from_org1 = KafkaMessage::regular(swapped.into(), 1, Class::Normal).encode_to_vec();
    let out = chain.consume(1, &from_org2);
    assert!(matches!(out.skip, Some(Skip::Rejected(ref r)) if r.contains("not valid under 2")), "{:?}", out.skip);
    assert!(out.resubmit.is_none());
    let out = chain.consume(2, &from_org1);
    let Some(Resubmit::Normal(again)) = out.resubmit else { panic!("re-submitted") };
    let Some(kafka_message::Type::Regular(r)) = &again.r#type else { panic!() };
    assert_eq!((r.config_seq, r.original_offset), (2, 2));
    assert_eq!(r.payload, Bytes::from(tx.encode_to_vec()), "as Go re-marshals it");
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
    let mut chain = chain_of("ch", &config, None);
    let first = config_msg(&w, &config, &set_batch(&config, 2), &w.orderer_org.admin, &[]);
    let timeout = update_of(&config, |c| configedit::set_batch_timeout(c, "5s").unwrap());
    let second = config_msg(&w, &config, &timeout, &w.orderer_org.admin, &[]);
    assert_eq!(summary(&chain.consume(0, &first)), vec![(1, 1, 1)]);
    let out = chain.consume(1, &second);
    assert!(out.blocks.is_empty() && out.outcome.is_none());
    let Some(Resubmit::Config { derived, config_seq, original_offset }) = out.resubmit else { panic!("re-submitted") };
    assert_eq!((config_seq, original_offset), (2, 1));
    let values = crate::core::channelconfig::OrderingValues::read(&derived.config).unwrap();
    assert_eq!(values.batch_timeout, std::time::Duration::from_secs(5));
    assert_eq!(values.batch_size.max_message_count, 2, "derived from the configuration in force");
    assert_eq!(values.sequence, 3);
    assert!(chain.reprocessing(), "broadcasts wait for the re-submitted config");
    let mut again = KafkaMessage::regular(config_record(&w.osn, &derived, "osn-system"), config_seq, Class::Config);
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
    assert_eq!(chain.in_force().sequence(), 3);
}

#[test]
fn a_time_to_cut_block_leaves_the_resubmitted_config_offset_out_and_a_restart_keeps_it() {
    use crate::ledger::{memory::MemoryStore, Ledger, Store as _};
    let w = world();
    let config = channel_config(&w);
    let first = config_msg(&w, &config, &set_batch(&config, 2), &w.orderer_org.admin, &[]);
    let timeout = update_of(&config, |c| configedit::set_batch_timeout(c, "5s").unwrap());
    let second = config_msg(&w, &config, &timeout, &w.orderer_org.admin, &[]);
    let ttc = |n| {
        KafkaMessage {
            r#type: Some(kafka_message::Type::TimeToCut(crate::proto::KafkaMessageTimeToCut { block_number: n })),
        }
        .encode_to_vec()
    };
    let genesis = crate::core::genesis::genesis_block("ch", &config, 0, [0; 24]);
    // The same records into two ledgers: one keeps the chain's resume state (OSN's), one only
    // the blocks (a Fabric orderer's, which resumes from the last block's metadata alone).
    let (kept, bare) = (MemoryStore::new(), MemoryStore::new());
    let open = |store: &MemoryStore| Ledger::open("ch", store.channel("ch").unwrap(), &genesis).unwrap();
    let (ours, fabrics) = (open(&kept), open(&bare));
    let mut chain = chain_of("ch", &config, None);
    let write = |chain: &mut Chain, offset: i64, value: &[u8]| {
        let out = chain.consume(offset, value);
        for block in &out.blocks {
            ours.append_resuming(block, Some(chain.last_resubmitted_config_offset())).unwrap();
            fabrics.append(block).unwrap();
        }
        out
    };
    write(&mut chain, 0, &first);
    assert!(write(&mut chain, 1, &second).resubmit.is_some() && chain.reprocessing());
    write(&mut chain, 2, &normal(&transaction(&w.client1, "ch", 100), 2));
    let out = write(&mut chain, 3, &ttc(2));
    let meta = kafka_metadata(&out.blocks[0]).unwrap();
    assert_eq!(
        (meta.last_offset_persisted, meta.last_resubmitted_config_offset),
        (3, 0),
        "as Fabric writes a block cut by a time-to-cut"
    );

    // A restart: the chain resumes from each ledger.
    let resumed = |ledger: &Ledger| {
        let bundle = ledger.config();
        Chain::new("ch", ledger.tip(), InForce::new(bundle, 900), 900, None)
    };
    let (ours, fabrics) = (open(&kept), open(&bare));
    let (restarted, fabric_restarted) = (resumed(&ours), resumed(&fabrics));
    assert!(restarted.reprocessing(), "still waiting for the re-submitted config");
    assert_eq!(restarted.last_resubmitted_config_offset(), 1);
    assert_eq!(fabric_restarted.last_resubmitted_config_offset(), 0, "Fabric's orderer loses it");
    // The next block cut by count carries it, as on an OSN that did not restart.
    let (mut restarted, mut fabric_restarted) = (restarted, fabric_restarted);
    for chain in [&mut chain, &mut restarted, &mut fabric_restarted] {
        assert!(chain.consume(4, &normal(&transaction(&w.client1, "ch", 100), 2)).blocks.is_empty());
    }
    let cut = |chain: &mut Chain| {
        let out = chain.consume(5, &normal(&transaction(&w.client1, "ch", 100), 2));
        kafka_metadata(&out.blocks[0]).unwrap().last_resubmitted_config_offset
    };
    assert_eq!((cut(&mut chain), cut(&mut restarted), cut(&mut fabric_restarted)), (1, 1, 0));
}

/// The ORDERER_TRANSACTION record an OSN orders for the creation of `name` with `members`,
/// approved by `signer`.
fn creation(w: &World, system: &Config, name: &str, members: &[&str], signer: &SigningIdentity) -> Vec<u8> {
    let names: Vec<String> = members.iter().map(|m| m.to_string()).collect();
    let update = creation_update(name, CONSORTIUM, &names, &["V1_4_2".into()]);
    let envelope = config_update(signer, &update, &[]);
    let request = UpdateRequest::parse(&envelope).unwrap();
    let template = crate::core::configtx::channel_template(system, name, &update).unwrap();
    let everyone = [w.org1.admin_signer(), w.org2.admin_signer()];
    let config = Validator::new(name, &template).unwrap().propose(&request.update_envelope, &everyone).unwrap();
    let derived = Derived { kind: DerivedKind::Create { channel: name.into() }, config, last_update: envelope };
    KafkaMessage::regular(config_record(&w.osn, &derived, "osn-system"), system.sequence, Class::Config).encode_to_vec()
}

#[test]
fn the_system_chain_creates_each_channel_once_within_its_limit() {
    let w = world();
    let mut system = w.system.clone();
    configedit::set_max_channels(&mut system, 2).unwrap();
    let mut chain = chain_of("osn-system", &system, Some(SystemState::default()));
    let out = chain.consume(0, &creation(&w, &system, "one", &["Org1MSP"], &w.org1.admin));
    assert_eq!(summary(&out), vec![(1, 1, 0)], "isolated, but not the system channel's config");
    let Some(Ok(Applied::Created { channel, genesis_envelope })) = out.outcome.map(|o| o.result) else { panic!() };
    assert_eq!(channel, "one");
    let genesis = crate::core::block::genesis_block_of(genesis_envelope);
    let config = crate::ledger::block_config(&genesis).unwrap();
    let created = bundle("one", &config);
    assert_eq!((created.values.sequence, created.values.consortium.as_deref()), (1, Some(CONSORTIUM)));
    assert_eq!(created.validator.policies().msps.len(), 2, "OrdererMSP and the member Org1MSP");
    // The same channel again (a concurrent request through another OSN): refused by every OSN.
    let out = chain.consume(1, &creation(&w, &system, "one", &["Org2MSP"], &w.org2.admin));
    assert!(out.blocks.is_empty());
    assert_eq!(out.outcome.unwrap().result, Err(Refusal::Conflict("channel 'one' already exists".into())));
    // A client is not an admin: the consortium's ChannelCreationPolicy refuses it.
    let out = chain.consume(2, &creation(&w, &system, "two", &["Org1MSP"], &w.client1));
    let refusal = out.outcome.unwrap().result.unwrap_err();
    assert!(matches!(&refusal, Refusal::NotApproved(r) if r.contains("[Group]  /Channel/Application")), "{refusal:?}");
    // Nor is an admin of an organisation the channel does not have.
    let out = chain.consume(3, &creation(&w, &system, "two", &["Org1MSP"], &w.org2.admin));
    assert!(matches!(out.outcome.unwrap().result, Err(Refusal::NotApproved(_))));
    assert_eq!(summary(&chain.consume(4, &creation(&w, &system, "two", &["Org2MSP"], &w.org2.admin))).len(), 1);
    let out = chain.consume(5, &creation(&w, &system, "three", &["Org1MSP"], &w.org1.admin));
    let refusal = out.outcome.unwrap().result.unwrap_err();
    assert!(matches!(&refusal, Refusal::NotApproved(r) if r.contains("maximum number of channels: 2")), "{refusal:?}");
}

#[test]
fn an_update_with_too_many_approvals_is_refused_before_any_is_verified() {
    let w = world();
    let config = channel_config(&w);
    let approvers: Vec<&SigningIdentity> = (0..MAX_CONFIG_SIGNATURES).map(|_| &w.org2.admin).collect();
    let envelope = config_update(&w.org1.admin, &set_batch(&config, 2), &approvers);
    assert!(UpdateRequest::parse(&envelope).unwrap_err().contains("signatures, over the 64 accepted"));
    let envelope = config_update(&w.org1.admin, &set_batch(&config, 2), &approvers[1..]);
    assert!(UpdateRequest::parse(&envelope).is_ok());
}

/// The one admission decision, with the status and HTTP code each refusal is answered with; the
/// two stages differ only in what an update that no longer applies means.
#[test]
fn admission_refuses_with_exact_codes_on_arrival_and_at_consumption() {
    let w = world();
    let now = crate::verify::unix_now();
    let mut system_config = w.system.clone();
    configedit::set_max_channels(&mut system_config, 3).unwrap();
    let system = bundle("osn-system", &system_config);
    let access = InForce::new(Arc::new(system.clone()), 900).access;
    let names: BTreeSet<String> = ["osn-system", "one"].into_iter().map(String::from).collect();
    let on_system = |created| Target {
        channel: "osn-system",
        bundle: &system,
        access: &access,
        existing: Some(Existing { names: &names, created }),
        record_limit: None,
    };
    let create = |name: &str, signer: &SigningIdentity, created: usize| {
        let update = creation_update(name, CONSORTIUM, &["Org1MSP".into()], &["V1_4_2".into()]);
        let request = UpdateRequest::parse(&config_update(signer, &update, &[])).unwrap();
        admit(&request, DerivedKind::Create { channel: name.into() }, &on_system(created), now, Stage::Arrival)
    };
    let code = |r: Result<Derived, Refusal>| r.map(|_| 200).unwrap_or_else(|e| e.http_code());
    assert_eq!(code(create("two", &w.org1.admin, 1)), 200);
    assert_eq!(code(create("Bad_Name", &w.org1.admin, 1)), 400);
    assert_eq!(code(create("osn-system", &w.org1.admin, 1)), 400);
    assert_eq!(code(create("two", &w.client1, 1)), 403, "the creation policy is the members' admins'");
    let limit = create("two", &w.org1.admin, 3).unwrap_err();
    assert_eq!(
        (limit.http_code(), limit.status()),
        (403, crate::proto::Status::BadRequest),
        "Fabric answers BAD_REQUEST"
    );
    let conflict = create("one", &w.org1.admin, 1).unwrap_err();
    assert_eq!((conflict.http_code(), conflict.status()), (409, crate::proto::Status::BadRequest));
    let unknown = creation_update("two", "NoSuchConsortium", &["Org1MSP".into()], &[]);
    let request = UpdateRequest::parse(&config_update(&w.org1.admin, &unknown, &[])).unwrap();
    let refusal = admit(&request, DerivedKind::Create { channel: "two".into() }, &on_system(1), now, Stage::Arrival);
    assert!(refusal.unwrap_err().to_string().contains("Unknown consortium name: NoSuchConsortium"));

    // An update: the envelope's creator must be a writer; approvals by mod_policy; one that no
    // longer applies is a bad request on arrival and a conflict at consumption.
    let config = channel_config(&w);
    let b = bundle("ch", &config);
    let access = InForce::new(Arc::new(b.clone()), 900).access;
    let on_channel = Target { channel: "ch", bundle: &b, access: &access, existing: None, record_limit: None };
    let update = |u: &crate::proto::common::ConfigUpdate, signer: &SigningIdentity| {
        UpdateRequest::parse(&config_update(signer, u, &[])).unwrap()
    };
    let kind = || DerivedKind::Update { channel: "ch".into() };
    let five = set_batch(&config, 5);
    let by_orderer_admin = update(&five, &w.orderer_org.admin);
    assert_eq!(code(admit(&by_orderer_admin, kind(), &on_channel, now, Stage::Arrival)), 200);
    assert_eq!(code(admit(&update(&five, &w.org1.admin), kind(), &on_channel, now, Stage::Arrival)), 403);
    let mut stale = five.clone();
    let orderer = stale.read_set.as_mut().unwrap().groups.iter_mut().find(|g| g.key == "Orderer").unwrap();
    orderer.value.as_mut().unwrap().version = 7;
    let stale = update(&stale, &w.orderer_org.admin);
    assert_eq!(code(admit(&stale, kind(), &on_channel, now, Stage::Arrival)), 400);
    assert_eq!(code(admit(&stale, kind(), &on_channel, now, Stage::Consumption)), 409);
    let elsewhere = DerivedKind::Update { channel: "other".into() };
    assert_eq!(
        code(admit(&by_orderer_admin, elsewhere, &on_channel, now, Stage::Arrival)),
        400,
        "the update names 'ch'"
    );
    // Signed an hour ago: outside the 15-minute window of the receiving OSN's clock.
    assert_eq!(code(admit(&by_orderer_admin, kind(), &on_channel, now + 3600, Stage::Arrival)), 400);
    // The producer's limit on AbsoluteMaxBytes.
    let huge = update_of(&config, |c| configedit::set_batch_size(c, batch(10, 200 << 20, 1 << 20)).unwrap());
    let refusal = admit(&update(&huge, &w.orderer_org.admin), kind(), &on_channel, now, Stage::Arrival).unwrap_err();
    assert!(refusal.to_string().contains("the largest record OSN's producer sends"), "{refusal}");
    // The brokers' record limit, when known: AbsoluteMaxBytes needs 1 MiB of room under it.
    let two_mib = update_of(&config, |c| configedit::set_batch_size(c, batch(10, 2 << 20, 1 << 20)).unwrap());
    let request = update(&two_mib, &w.orderer_org.admin);
    let limited = |limit| Target {
        record_limit: Some(limit),
        ..Target { channel: "ch", bundle: &b, access: &access, existing: None, record_limit: None }
    };
    let refusal = admit(&request, kind(), &limited((3 << 20) - 1), now, Stage::Arrival).unwrap_err();
    assert_eq!(refusal.http_code(), 400);
    assert!(refusal.to_string().contains("records of at most 3145727 bytes"), "{refusal}");
    assert_eq!(code(admit(&request, kind(), &limited(3 << 20), now, Stage::Arrival)), 200);
    let _ = (Bytes::new(), signer(&w.osn));
}
