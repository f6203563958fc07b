//! Fabric's configtx on what Fabric 1.4.12 did: every config update and channel creation of the
//! recorded runs recomputes to the configuration Fabric's orderer ordered, and the rules' refusals
//! on variations of a real update.

use std::path::{Path, PathBuf};

use prost::Message as _;

use super::*;
use crate::proto::common::ConfigEnvelope;
use crate::proto::msp::SerializedIdentity;
use crate::proto::Block;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fabric-1.4.12")
}

fn block(path: &Path) -> Block {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Block::decode(raw.as_slice()).unwrap()
}

/// The first envelope of a block, its payload and its header type.
fn first(block: &Block) -> (Payload, i32) {
    let envelope = Envelope::decode(block.data.as_ref().unwrap().data[0].clone()).unwrap();
    let payload = Payload::decode(envelope.payload).unwrap();
    let header =
        crate::core::envelope::decode_channel_header(payload.header.as_ref().unwrap().channel_header.clone()).unwrap();
    (payload, header.r#type)
}

fn config_envelope(block: &Block) -> Option<ConfigEnvelope> {
    let (payload, kind) = first(block);
    (kind == HeaderType::Config as i32).then(|| ConfigEnvelope::decode(payload.data).unwrap())
}

/// The approvals whose signatures verify, as the verification pool hands them on.
fn verified(update: &ConfigUpdateEnvelope) -> Vec<(Identity, Bytes)> {
    signed_data(update)
        .unwrap()
        .into_iter()
        .filter_map(|s| {
            let id = Identity::deserialize(&s.identity).ok()?;
            id.cert.public_key.verify(&s.data, &s.signature).ok()?;
            Some((id, s.identity))
        })
        .collect()
}

/// A cryptogen identity of the shared crypto, as `msp_id` claims it (no signature: the caller
/// verified it).
fn identity(org: &str, who: &str, msp_id: &str) -> (Identity, Bytes) {
    let dir = shared().join("crypto").join(org).join(who).join("msp/signcerts");
    let file = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    let serialized =
        SerializedIdentity { mspid: msp_id.into(), id_bytes: std::fs::read(file).unwrap().into() }.encode_to_vec();
    (Identity::deserialize(&serialized).unwrap(), serialized.into())
}

/// A channel's blocks in number order, from `dir`.
fn chain(dir: &Path) -> Vec<Block> {
    let mut numbered: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| Some((p.file_stem()?.to_str()?.parse().ok()?, p)))
        .collect();
    numbered.sort();
    numbered.iter().map(|(_, p)| block(p)).collect()
}

/// The ledgers of the two runs' first orderer: (system channel dir, ch1 dir).
fn runs() -> [(PathBuf, PathBuf); 2] {
    let single = shared().join("runs/single/blocks");
    let two = shared().join("runs/two-orderers/blocks/orderer1");
    [(single.join("syschannel"), single.join("ch1")), (two.join("syschannel"), two.join("ch1"))]
}

#[test]
fn every_recorded_config_update_recomputes_to_the_configuration_fabric_ordered() {
    let mut checked = 0;
    for (_, ch1) in runs() {
        let blocks = chain(&ch1);
        let mut current = config_envelope(&blocks[0]).unwrap().config.unwrap();
        for (number, block) in blocks.iter().enumerate().skip(1) {
            let Some(envelope) = config_envelope(block) else { continue };
            let at = format!("{} block {number}", ch1.display());
            let next = envelope.config.unwrap();
            let update = config_update_envelope(envelope.last_update.as_ref().unwrap()).unwrap();
            let signers = verified(&update);
            assert!(!signers.is_empty(), "{at}: no approval verifies");
            let validator = Validator::new("ch1", &current).unwrap();
            validator.validate(&next, &update, &signers).unwrap_or_else(|e| panic!("{at}: {e}"));
            let proposed = validator.propose(&update, &signers).unwrap();
            assert_eq!(proposed.sequence, current.sequence + 1, "{at}");
            assert!(same_group(proposed.channel_group.as_ref().unwrap(), next.channel_group.as_ref().unwrap()));
            // What the validator sees, the chain runs on.
            crate::core::channelconfig::OrderingValues::read(&next).unwrap_or_else(|e| panic!("{at}: {e}"));
            current = next;
            checked += 1;
        }
    }
    // Two updates in the single run, three in the two-orderer run.
    assert_eq!(checked, 5);
}

#[test]
fn every_recorded_channel_creation_recomputes_to_the_new_channels_block_0() {
    for (syschannel, ch1) in runs() {
        let system = config_envelope(&chain(&syschannel)[0]).unwrap().config.unwrap();
        let (payload, kind) = first(&chain(&syschannel)[1]);
        assert_eq!(kind, HeaderType::OrdererTransaction as i32);
        let inner = Envelope::decode(payload.data).unwrap();
        let inner = ConfigEnvelope::decode(Payload::decode(inner.payload).unwrap().data).unwrap();
        let last_update = inner.last_update.as_ref().unwrap();
        let update_envelope = config_update_envelope(last_update).unwrap();
        let update = ConfigUpdate::decode(update_envelope.config_update.clone()).unwrap();
        let signers = verified(&update_envelope);
        assert_eq!(signers.len(), 1, "peer channel create signs once, as Admin@org1");

        let template = channel_template(&system, "ch1", &update).unwrap();
        assert_eq!(template.sequence, 0);
        let validator = Validator::new("ch1", &template).unwrap();
        let config = inner.config.unwrap();
        validator.validate(&config, &update_envelope, &signers).unwrap_or_else(|e| panic!("{}: {e}", ch1.display()));
        // The new channel's block 0 holds that configuration.
        let block0 = config_envelope(&chain(&ch1)[0]).unwrap().config.unwrap();
        assert_eq!(block0.sequence, 1);
        assert!(same_group(block0.channel_group.as_ref().unwrap(), config.channel_group.as_ref().unwrap()));

        // The creation policy is the consortium's: ANY Admins of the members named; a member's
        // client is not one.
        let user = identity("peerOrganizations/org1.example.com", "users/User1@org1.example.com", "Org1MSP");
        let refused = validator.propose(&update_envelope, &[user]).unwrap_err();
        assert_eq!(refused.kind, Kind::Unauthorized, "{refused}");
        assert!(refused.message.contains("[Group]  /Channel/Application"), "{refused}");
    }
}

/// The single run's first update (MaxMessageCount 10 → 25, signed by Admin@example.com), with
/// the configuration it applied to.
fn u1() -> (Config, ConfigUpdateEnvelope, ConfigUpdate, Vec<(Identity, Bytes)>) {
    let blocks = chain(&shared().join("runs/single/blocks/ch1"));
    let current = config_envelope(&blocks[0]).unwrap().config.unwrap();
    let envelope = config_envelope(&blocks[19]).unwrap();
    let update_envelope = config_update_envelope(envelope.last_update.as_ref().unwrap()).unwrap();
    let update = ConfigUpdate::decode(update_envelope.config_update.clone()).unwrap();
    let signers = verified(&update_envelope);
    (current, update_envelope, update, signers)
}

/// `update` re-encoded into the envelope (the signers stay: verification is the caller's).
fn with(envelope: &ConfigUpdateEnvelope, update: &ConfigUpdate) -> ConfigUpdateEnvelope {
    ConfigUpdateEnvelope { config_update: update.encode_to_vec().into(), ..envelope.clone() }
}

fn child<'a>(group: &'a mut ConfigGroup, key: &str) -> &'a mut ConfigGroup {
    group.groups.iter_mut().find(|e| e.key == key).unwrap().value.as_mut().unwrap()
}

fn value_of<'a>(group: &'a mut ConfigGroup, key: &str) -> &'a mut ConfigValue {
    group.values.iter_mut().find(|e| e.key == key).unwrap().value.as_mut().unwrap()
}

#[test]
fn a_real_update_is_refused_when_any_rule_is_broken() {
    let (current, envelope, update, signers) = u1();
    let validator = Validator::new("ch1", &current).unwrap();
    validator.propose(&envelope, &signers).expect("the update as Fabric ordered it");

    let refuse = |update: &ConfigUpdate, signers: &[(Identity, Bytes)]| {
        validator.propose(&with(&envelope, update), signers).expect_err("refused")
    };
    let expect = |e: ConfigtxError, kind: Kind, words: &str| {
        assert_eq!(e.kind, kind, "{e}");
        assert!(e.message.contains(words), "'{e}' does not say '{words}'");
    };

    // Nobody, or a client of the orderer organisation's peer organisation, is not the orderer
    // organisation's admins (BatchSize's mod_policy resolves to /Channel/Orderer/Admins).
    expect(refuse(&update, &[]), Kind::Unauthorized, "policy for [Value]  /Channel/Orderer/BatchSize not satisfied");
    let user = identity("peerOrganizations/org1.example.com", "users/User1@org1.example.com", "Org1MSP");
    expect(refuse(&update, &[user]), Kind::Unauthorized, "/Channel/Orderer/Admins");
    let orderer = identity("ordererOrganizations/example.com", "orderers/orderer.example.com", "OrdererMSP");
    expect(refuse(&update, &[orderer]), Kind::Unauthorized, "/Channel/Orderer/Admins");

    // Another channel's validator.
    let other = Validator::new("ch2", &current).unwrap();
    expect(
        other.propose(&envelope, &signers).unwrap_err(),
        Kind::Invalid,
        "ConfigUpdate for channel 'ch1' but envelope for channel 'ch2'",
    );

    // A read set at another version than the configuration's.
    let mut stale = update.clone();
    child(stale.read_set.as_mut().unwrap(), "Orderer").version = 3;
    expect(refuse(&stale, &signers), Kind::Invalid, "requires that key [Group]  /Channel/Orderer be at version 3");

    // A read set naming what the configuration lacks.
    let mut ghost = update.clone();
    ghost
        .read_set
        .as_mut()
        .unwrap()
        .groups
        .push(ConfigGroupEntry { key: "Ghost".into(), value: Some(Default::default()) });
    expect(refuse(&ghost, &signers), Kind::Invalid, "does not contain element for [Group]  /Channel/Ghost");

    // A version bumped by two.
    let mut jump = update.clone();
    value_of(child(jump.write_set.as_mut().unwrap(), "Orderer"), "BatchSize").version = 2;
    expect(refuse(&jump, &signers), Kind::Invalid, "to version 2, but key is at version 0");

    // Nothing changed.
    let mut nothing = update.clone();
    nothing.write_set = nothing.read_set.clone();
    expect(refuse(&nothing, &signers), Kind::Invalid, "delta set was empty");

    // A new element must start at version 0.
    let mut new = update.clone();
    child(new.write_set.as_mut().unwrap(), "Orderer").values.push(ConfigValueEntry {
        key: "NewThing".into(),
        value: Some(ConfigValue { version: 1, mod_policy: "Admins".into(), ..Default::default() }),
    });
    expect(
        refuse(&new, &signers),
        Kind::Invalid,
        "[Value]  /Channel/Orderer/NewThing to version 1, but key does not exist",
    );

    // A changed element needs a mod_policy, and keys need Fabric's characters.
    let mut unpoliced = update.clone();
    value_of(child(unpoliced.write_set.as_mut().unwrap(), "Orderer"), "BatchSize").mod_policy.clear();
    expect(refuse(&unpoliced, &signers), Kind::Invalid, "mod_policy not set");
    let mut dotted = update.clone();
    value_of(child(dotted.write_set.as_mut().unwrap(), "Orderer"), "BatchSize").mod_policy = "../Admins".into();
    expect(refuse(&dotted, &signers), Kind::Invalid, "name '..' for config ID is not allowed");
    let mut illegal = update.clone();
    child(illegal.write_set.as_mut().unwrap(), "Orderer").values[0].key = "Batch Size".into();
    expect(refuse(&illegal, &signers), Kind::Invalid, "illegal key");

    // A CONFIG whose configuration is not what its update yields, or not the next sequence.
    let mut proposed = validator.propose(&envelope, &signers).unwrap();
    validator.validate(&proposed, &envelope, &signers).unwrap();
    let mut skipped = proposed.clone();
    skipped.sequence += 1;
    expect(
        validator.validate(&skipped, &envelope, &signers).unwrap_err(),
        Kind::Invalid,
        "cannot validate config at sequence",
    );
    value_of(child(proposed.channel_group.as_mut().unwrap(), "Orderer"), "BatchTimeout").value =
        Bytes::from_static(b"\n\x021s");
    expect(
        validator.validate(&proposed, &envelope, &signers).unwrap_err(),
        Kind::Invalid,
        "did not produce the supplied config result",
    );
}

#[test]
fn a_bumped_group_keeps_only_the_children_its_write_set_lists() {
    let (current, envelope, mut update, signers) = u1();
    // Bump the Orderer group itself (mod_policy Admins of /Channel/Orderer: the orderer admins
    // sign) and leave BatchTimeout out of it.
    let read_orderer = child(update.read_set.as_mut().unwrap(), "Orderer").clone();
    let orderer = child(update.write_set.as_mut().unwrap(), "Orderer");
    orderer.version = read_orderer.version + 1;
    orderer.mod_policy = "Admins".into();
    let mut full = current.channel_group.clone().unwrap();
    let current_orderer = child(&mut full, "Orderer").clone();
    for entry in &current_orderer.values {
        if entry.key != "BatchSize" && entry.key != "BatchTimeout" {
            orderer.values.push(entry.clone());
        }
    }
    for entry in current_orderer.policies.iter().chain(std::iter::empty()) {
        orderer.policies.push(entry.clone());
    }
    for entry in &current_orderer.groups {
        orderer.groups.push(entry.clone());
    }
    // Their read-set versions must match to leave them unchanged.
    let read = child(update.read_set.as_mut().unwrap(), "Orderer");
    for entry in current_orderer.values.iter().filter(|e| e.key != "BatchSize" && e.key != "BatchTimeout") {
        read.values.push(entry.clone());
    }
    for entry in current_orderer.policies.iter() {
        read.policies.push(entry.clone());
    }
    for entry in current_orderer.groups.iter() {
        read.groups.push(entry.clone());
    }
    let validator = Validator::new("ch1", &current).unwrap();
    let proposed = validator.propose(&with(&envelope, &update), &signers).unwrap();
    let mut group = proposed.channel_group.unwrap();
    let orderer = child(&mut group, "Orderer");
    assert_eq!(orderer.version, 1);
    assert!(orderer.values.iter().all(|e| e.key != "BatchTimeout"), "BatchTimeout was left out, so deleted");
    assert!(orderer.values.iter().any(|e| e.key == "BatchSize"));
    // And the channel cannot run without it.
    let err =
        crate::core::channelconfig::OrderingValues::read(&Config { sequence: 2, channel_group: Some(group.clone()) })
            .unwrap_err();
    assert!(err.contains("BatchTimeout is missing"), "{err}");
}

#[test]
fn a_creation_is_refused_for_what_the_system_channel_does_not_offer() {
    let [(syschannel, _), _] = runs();
    let system = config_envelope(&chain(&syschannel)[0]).unwrap().config.unwrap();
    let raw = std::fs::read(shared().join("envelopes/create-channel-tx-unsigned.pb")).unwrap();
    let update_envelope = config_update_envelope(&Envelope::decode(raw.as_slice()).unwrap()).unwrap();
    let update = ConfigUpdate::decode(update_envelope.config_update.clone()).unwrap();
    channel_template(&system, "ch1", &update).expect("configtxgen's creation transaction");

    let refused = |update: &ConfigUpdate, id: &str| channel_template(&system, id, update).unwrap_err().message;
    assert!(refused(&update, "ch2").contains("mismatched channel IDs: 'ch1' != 'ch2'"));

    let mut unknown = update.clone();
    value_of(unknown.write_set.as_mut().unwrap(), "Consortium").value =
        Consortium { name: "Nobody".into() }.encode_to_vec().into();
    assert!(refused(&unknown, "ch1").contains("Unknown consortium name: Nobody"));

    let mut stranger = update.clone();
    let app = child(stranger.write_set.as_mut().unwrap(), "Application");
    app.groups.push(ConfigGroupEntry { key: "Org9MSP".into(), value: Some(Default::default()) });
    assert!(refused(&stranger, "ch1").contains("not in the consortium (Org9MSP)"));

    let mut empty = update.clone();
    child(empty.write_set.as_mut().unwrap(), "Application").groups.clear();
    assert!(refused(&empty, "ch1").contains("no application group members"));

    let mut unversioned = update.clone();
    child(unversioned.write_set.as_mut().unwrap(), "Application").version = 0;
    assert!(refused(&unversioned, "ch1").contains("does not set application group version to 1, was 0"));

    let mut no_app = update.clone();
    no_app.write_set.as_mut().unwrap().groups.retain(|e| e.key != "Application");
    assert!(refused(&no_app, "ch1").contains("missing application group"));

    // An unsigned creation: the template takes it, the policy does not.
    let template = channel_template(&system, "ch1", &update).unwrap();
    let refused = Validator::new("ch1", &template).unwrap().propose(&update_envelope, &[]).unwrap_err();
    assert_eq!(refused.kind, Kind::Unauthorized);
}

#[test]
fn trees_are_the_same_whatever_the_order_of_their_entries() {
    let (current, ..) = u1();
    let group = current.channel_group.unwrap();
    let mut reversed = group.clone();
    reversed.groups.reverse();
    reversed.values.reverse();
    reversed.policies.reverse();
    assert!(same_group(&group, &reversed));
    let mut bumped = group.clone();
    bumped.values[0].value.as_mut().unwrap().version += 1;
    assert!(!same_group(&group, &bumped));
    let mut fewer = group.clone();
    fewer.policies.pop();
    assert!(!same_group(&group, &fewer));
}

#[test]
fn compute_update_makes_what_configtxlator_made_for_every_recorded_update() {
    let mut checked = 0;
    for run in ["single", "two-orderers"] {
        let dir = shared().join("runs").join(run).join("updates");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let update_dir = entry.unwrap().path();
            let read = |name: &str| std::fs::read(update_dir.join(name)).unwrap();
            let original = Config::decode(read("original_config.pb").as_slice()).unwrap();
            let modified = Config::decode(read("modified_config.pb").as_slice()).unwrap();
            let theirs = ConfigUpdate::decode(read("config_update.pb").as_slice()).unwrap();
            let ours = compute_update(&theirs.channel_id, &original, &modified).unwrap();
            let at = update_dir.display();
            assert!(same_group(ours.read_set.as_ref().unwrap(), theirs.read_set.as_ref().unwrap()), "{at}: read set");
            assert!(
                same_group(ours.write_set.as_ref().unwrap(), theirs.write_set.as_ref().unwrap()),
                "{at}: write set"
            );
            checked += 1;
        }
    }
    // Two in the single run, three in the two-orderer run.
    assert_eq!(checked, 5);
    let (current, ..) = u1();
    let e = compute_update("ch1", &current, &current).unwrap_err();
    assert!(e.contains("no differences"), "{e}");
}
