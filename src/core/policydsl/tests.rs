//! The policy language against Fabric's compiler: the rules of the shared configtx.yaml compile to
//! the bytes configtxgen wrote into the genesis block, and a nested rule to what configtxgen
//! 1.4.12 made of it.

use std::path::Path;

use prost::Message as _;

use super::*;
use crate::proto::common::{Config, ConfigGroup};

fn genesis_config() -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fabric-1.4.12/genesis/kafka-two-orgs.block");
    let block = crate::proto::Block::decode(std::fs::read(path).unwrap().as_slice()).unwrap();
    crate::ledger::block_config(&block).unwrap()
}

fn policy_at(config: &Config, path: &[&str], name: &str) -> Policy {
    let mut group: &ConfigGroup = config.channel_group.as_ref().unwrap();
    for key in path {
        group = group.groups.iter().find(|e| e.key == *key).unwrap().value.as_ref().unwrap();
    }
    group.policies.iter().find(|e| e.key == name).unwrap().value.clone().unwrap().policy.unwrap()
}

#[test]
fn configtx_yamls_rules_compile_to_the_genesis_blocks_bytes() {
    let config = genesis_config();
    let org1 = ["Consortiums", "SampleConsortium", "Org1MSP"];
    for (path, name, rule) in [
        (&["Orderer", "OrdererOrg"][..], "Readers", "OR('OrdererMSP.member')"),
        (&["Orderer", "OrdererOrg"][..], "Admins", "OR('OrdererMSP.admin')"),
        (&org1[..], "Readers", "OR('Org1MSP.admin', 'Org1MSP.peer', 'Org1MSP.client')"),
        (&org1[..], "Writers", "OR('Org1MSP.admin', 'Org1MSP.client')"),
        (&org1[..], "Admins", "OR('Org1MSP.admin')"),
        (&[][..], "Readers", "ANY Readers"),
        (&[][..], "Admins", "MAJORITY Admins"),
        (&["Orderer"][..], "BlockValidation", "ANY Writers"),
    ] {
        assert_eq!(policy(rule).unwrap(), policy_at(&config, path, name), "{path:?} {name}: {rule}");
    }
}

fn role(msp_id: &str, role: MspRoleType) -> MspPrincipal {
    MspPrincipal {
        principal_classification: Classification::Role as i32,
        principal: MspRole { msp_identifier: msp_id.into(), role: role as i32 }.encode_to_vec().into(),
    }
}

fn signed_by(i: i32) -> SignaturePolicy {
    SignaturePolicy { r#type: Some(signature_policy::Type::SignedBy(i)) }
}

fn out_of(n: i32, rules: Vec<SignaturePolicy>) -> SignaturePolicy {
    SignaturePolicy { r#type: Some(signature_policy::Type::NOutOf(signature_policy::NOutOf { n, rules })) }
}

#[test]
fn nested_gates_number_their_principals_as_fabrics_compiler_does() {
    // configtxgen 1.4.12 compiled this rule (as Org1MSP's Readers of the shared configtx.yaml)
    // to these identities and this rule: nested gates' principals first.
    let rule = "OR('Org2MSP.member', AND('Org1MSP.admin', 'Org1MSP.peer'), \
                OutOf(2, 'Org1MSP.client', and('Org1MSP.member', 'Org2MSP.peer'), 'Org1MSP.admin'))";
    use MspRoleType::*;
    let expected = SignaturePolicyEnvelope {
        version: 0,
        rule: Some(out_of(
            1,
            vec![
                signed_by(6),
                out_of(2, vec![signed_by(0), signed_by(1)]),
                out_of(2, vec![signed_by(4), out_of(2, vec![signed_by(2), signed_by(3)]), signed_by(5)]),
            ],
        )),
        identities: vec![
            role("Org1MSP", Admin),
            role("Org1MSP", Peer),
            role("Org1MSP", Member),
            role("Org2MSP", Peer),
            role("Org1MSP", Client),
            role("Org1MSP", Admin),
            role("Org2MSP", Member),
        ],
    };
    assert_eq!(signature_policy(rule).unwrap().encode_to_vec(), expected.encode_to_vec());
}

#[test]
fn mistakes_are_named() {
    for (rule, says) in [
        ("'Org1MSP.member'", "a principal alone is not a policy"),
        ("OR('Org1MSP.boss')", "principal 'Org1MSP.boss'"),
        ("OR('Org1 MSP.member')", "principal 'Org1 MSP.member'"),
        ("Or('Org1MSP.member'", "expected ',' or ')'"),
        ("XOR('Org1MSP.member')", "expected a quoted principal"),
        ("oR('Org1MSP.member')", "expected a quoted principal"),
        ("OutOf(3, 'A.member')", "invalid t-out-of-n predicate, t 3, n 1"),
        ("OR('A.member') junk", "unexpected 'junk'"),
        ("MAJORITY", "expected 'MAJORITY <policy name>'"),
        ("ANY Readers Writers", "expected 'ANY <policy name>'"),
    ] {
        let err = policy(rule).unwrap_err();
        assert!(err.contains(says), "{rule}: {err}");
    }
    // Fabric allows t = n + 1 (never satisfied) and t = 0 (always).
    assert!(signature_policy("OutOf(2, 'A.member')").is_ok());
    assert!(signature_policy("OutOf(0, 'A.member')").is_ok());
}
