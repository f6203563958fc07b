//! Round trips through the files: create a CA, issue, load, sign, verify with ring against the
//! public key read back from the certificate.

use std::path::Path;

use prost::Message;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ED25519};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;

fn org(dir: &Path, msp_id: &str, key_type: KeyType) -> std::path::PathBuf {
    let org = dir.join(msp_id.to_lowercase());
    create_ca(msp_id, &org, key_type, Validity::ca_default()).unwrap();
    org
}

fn verify(public_key: &[u8], key_type: KeyType, message: &[u8], sig: &[u8]) -> bool {
    let alg: &dyn ring::signature::VerificationAlgorithm = match key_type {
        KeyType::EcdsaP256 => &ECDSA_P256_SHA256_ASN1,
        KeyType::Ed25519 => &ED25519,
    };
    UnparsedPublicKey::new(alg, public_key).verify(message, sig).is_ok()
}

/// Checks that `cert_pem` was signed by the key of `issuer_pem`.
fn signed_by(cert_pem: &[u8], issuer_pem: &[u8]) -> bool {
    let der = cert::pem_certificates(cert_pem).unwrap().remove(0);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let issuer = CertInfo::from_pem(issuer_pem).unwrap();
    let sig = cert.signature_value.data.as_ref();
    if issuer.key_type == Some(KeyType::EcdsaP256) {
        assert_eq!(crate::core::ecdsa::is_low_s(sig), Some(true), "certificate signatures are low-S too");
    }
    verify(&issuer.public_key, issuer.key_type.unwrap(), cert.tbs_certificate.as_ref(), sig)
}

fn round_trip(key_type: KeyType) {
    let tmp = tempfile::tempdir().unwrap();
    let org = org(tmp.path(), "Org1MSP", key_type);
    let dir = issue(&org, "client1", Role::Client, key_type, Validity::leaf_default()).unwrap();
    assert_eq!(dir, org.join("identities/client1"));

    let id = SigningIdentity::load(&dir).unwrap();
    assert_eq!(id.msp_id(), "Org1MSP");
    assert_eq!(id.key_type(), key_type);
    let info = CertInfo::from_pem(id.cert_pem()).unwrap();
    assert_eq!(info.common_name.as_deref(), Some("client1"));
    assert_eq!(info.organization.as_deref(), Some("Org1MSP"));
    assert_eq!(info.role(), Some(Role::Client));
    assert_eq!(info.key_type, Some(key_type));
    assert!(!info.is_ca);
    assert!(info.is_valid_at(OffsetDateTime::now_utc()));

    let message = b"a payload to sign";
    let sig = id.sign(message);
    assert!(verify(&info.public_key, key_type, message, &sig));
    assert!(!verify(&info.public_key, key_type, b"another payload", &sig));

    let ca_pem = std::fs::read(org.join("ca/cert.pem")).unwrap();
    let ca = CertInfo::from_pem(&ca_pem).unwrap();
    assert!(ca.is_ca);
    assert_eq!(ca.common_name.as_deref(), Some("ca.Org1MSP"));
    assert_eq!(info.issuer, ca.subject);
    assert!(signed_by(id.cert_pem(), &ca_pem));
    assert_eq!(std::fs::read(dir.join("cacerts/ca.pem")).unwrap(), ca_pem);

    let serialized = crate::proto::msp::SerializedIdentity::decode(id.serialized()).unwrap();
    assert_eq!(serialized.mspid, "Org1MSP");
    assert_eq!(serialized.id_bytes.as_ref(), id.cert_pem());
}

#[test]
fn ecdsa_identity_round_trip() {
    round_trip(KeyType::EcdsaP256);
}

#[test]
fn ed25519_identity_round_trip() {
    round_trip(KeyType::Ed25519);
}

#[test]
fn ecdsa_signatures_are_low_s_der() {
    let tmp = tempfile::tempdir().unwrap();
    let org = org(tmp.path(), "Org1MSP", KeyType::EcdsaP256);
    let id =
        SigningIdentity::load(&issue(&org, "c", Role::Client, KeyType::EcdsaP256, Validity::leaf_default()).unwrap())
            .unwrap();
    let public_key = CertInfo::from_pem(id.cert_pem()).unwrap().public_key;
    for i in 0..1000u32 {
        let message = i.to_be_bytes();
        let sig = id.sign(&message);
        assert_eq!(crate::core::ecdsa::is_low_s(&sig), Some(true), "signature {i}");
        assert_eq!(crate::core::ecdsa::normalize_der(&sig).as_deref(), Some(sig.as_slice()), "DER round trip {i}");
        assert!(verify(&public_key, KeyType::EcdsaP256, &message, &sig), "signature {i}");
    }
}

#[test]
fn high_s_form_of_a_real_signature_is_detected_and_still_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let org = org(tmp.path(), "Org1MSP", KeyType::EcdsaP256);
    let id =
        SigningIdentity::load(&issue(&org, "c", Role::Client, KeyType::EcdsaP256, Validity::leaf_default()).unwrap())
            .unwrap();
    let public_key = CertInfo::from_pem(id.cert_pem()).unwrap().public_key;
    let sig = id.sign(b"m");
    let (r, s) = crate::core::ecdsa::decode_der(&sig).unwrap();
    let high = crate::core::ecdsa::encode_der(&r, &crate::core::ecdsa::negate_scalar(&s));
    assert_eq!(crate::core::ecdsa::is_low_s(&high), Some(false));
    assert!(verify(&public_key, KeyType::EcdsaP256, b"m", &high), "ring accepts both forms");
    assert_eq!(crate::core::ecdsa::normalize_der(&high), Some(sig));
}

#[test]
fn explicit_validity_is_honoured() {
    fn check(org: &Path, name: &str, not_before: OffsetDateTime, not_after: OffsetDateTime, valid_now: bool) {
        let validity = Validity::new(not_before, not_after).unwrap();
        let dir = issue(org, name, Role::Client, KeyType::EcdsaP256, validity).unwrap();
        let info = CertInfo::from_pem(&std::fs::read(dir.join("signcerts/cert.pem")).unwrap()).unwrap();
        assert_eq!(info.not_before.unix_timestamp(), not_before.unix_timestamp(), "{name}");
        assert_eq!(info.not_after.unix_timestamp(), not_after.unix_timestamp(), "{name}");
        assert_eq!(info.is_valid_at(OffsetDateTime::now_utc()), valid_now, "{name}");
        SigningIdentity::load(&dir).unwrap(); // loading does not judge validity
    }
    let tmp = tempfile::tempdir().unwrap();
    let org = org(tmp.path(), "Org1MSP", KeyType::EcdsaP256);
    let now = OffsetDateTime::now_utc();
    check(&org, "expired", now - Duration::days(30), now - Duration::days(1), false);
    check(&org, "future", now + Duration::days(1), now + Duration::days(30), false);
    check(&org, "current", now - Duration::days(1), now + Duration::days(1), true);
    assert!(Validity::new(now, now - Duration::seconds(1)).is_err());
}

#[test]
fn every_role_is_read_back_from_the_ou() {
    let tmp = tempfile::tempdir().unwrap();
    let org = org(tmp.path(), "Org1MSP", KeyType::EcdsaP256);
    for role in [Role::Client, Role::Admin, Role::Orderer, Role::Peer] {
        let dir = issue(&org, role.as_str(), role, KeyType::Ed25519, Validity::leaf_default()).unwrap();
        let info = CertInfo::from_pem(SigningIdentity::load(&dir).unwrap().cert_pem()).unwrap();
        assert_eq!(info.organizational_units, vec![role.as_str().to_string()]);
        assert_eq!(info.role(), Some(role));
        assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
    }
    assert!("root".parse::<Role>().is_err());
}

#[test]
fn nothing_is_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let org = org(tmp.path(), "Org1MSP", KeyType::EcdsaP256);
    let err = create_ca("Org1MSP", &org, KeyType::EcdsaP256, Validity::ca_default()).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let dir = issue(&org, "c", Role::Client, KeyType::EcdsaP256, Validity::leaf_default()).unwrap();
    let before = std::fs::read(dir.join("keystore/key.pem")).unwrap();
    let err = issue(&org, "c", Role::Admin, KeyType::EcdsaP256, Validity::leaf_default()).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(std::fs::read(dir.join("keystore/key.pem")).unwrap(), before);
}

#[test]
fn errors_name_the_missing_file_or_directory() {
    fn check(err: anyhow::Error, needle: &str) {
        let text = format!("{err:#}");
        assert!(text.contains(needle), "{needle:?} not in {text:?}");
    }
    let tmp = tempfile::tempdir().unwrap();
    check(
        issue(&tmp.path().join("nope"), "c", Role::Client, KeyType::EcdsaP256, Validity::leaf_default()).unwrap_err(),
        "nope/msp/mspid",
    );
    check(SigningIdentity::load(&tmp.path().join("nope")).unwrap_err(), "nope/mspid");
    let org = org(tmp.path(), "Org1MSP", KeyType::EcdsaP256);
    let dir = issue(&org, "c", Role::Client, KeyType::EcdsaP256, Validity::leaf_default()).unwrap();
    std::fs::remove_file(dir.join("keystore/key.pem")).unwrap();
    check(SigningIdentity::load(&dir).unwrap_err(), "keystore/key.pem");
    check(issue(&org, "../x", Role::Client, KeyType::EcdsaP256, Validity::leaf_default()).unwrap_err(), "invalid name");
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let org = org(tmp.path(), "Org1MSP", KeyType::EcdsaP256);
    let a = issue(&org, "a", Role::Client, KeyType::EcdsaP256, Validity::leaf_default()).unwrap();
    let b = issue(&org, "b", Role::Client, KeyType::EcdsaP256, Validity::leaf_default()).unwrap();
    let cert = std::fs::read(a.join("signcerts/cert.pem")).unwrap();
    let key = std::fs::read(b.join("keystore/key.pem")).unwrap();
    let err = SigningIdentity::from_pem("Org1MSP", &cert, &key).unwrap_err();
    assert!(err.to_string().contains("does not belong"), "{err}");
}

#[test]
fn debug_does_not_show_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let org = org(tmp.path(), "Org1MSP", KeyType::EcdsaP256);
    let dir = issue(&org, "c", Role::Client, KeyType::EcdsaP256, Validity::leaf_default()).unwrap();
    let text = format!("{:?}", SigningIdentity::load(&dir).unwrap());
    assert!(text.contains("Org1MSP"));
    assert!(!text.contains("PRIVATE") && !text.contains("key:") && text.len() < 200, "{text}");
}

#[cfg(unix)]
#[test]
fn private_keys_are_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let org = org(tmp.path(), "Org1MSP", KeyType::EcdsaP256);
    let dir = issue(&org, "c", Role::Client, KeyType::EcdsaP256, Validity::leaf_default()).unwrap();
    for key in [org.join("ca/key.pem"), dir.join("keystore/key.pem")] {
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
    }
}

#[test]
fn org_msp_reads_every_pem_block() {
    let tmp = tempfile::tempdir().unwrap();
    let org = org(tmp.path(), "Org1MSP", KeyType::EcdsaP256);
    let msp = load_org_msp(&org.join("msp")).unwrap();
    assert_eq!(msp.msp_id, "Org1MSP");
    assert_eq!(msp.root_certs_pem.len(), 1);
    assert!(msp.intermediate_certs_pem.is_empty());

    let other = self::org(tmp.path(), "Org2MSP", KeyType::Ed25519);
    let mut bundle = std::fs::read(org.join("msp/cacerts/ca.pem")).unwrap();
    bundle.extend(std::fs::read(other.join("msp/cacerts/ca.pem")).unwrap());
    std::fs::write(org.join("msp/cacerts/ca.pem"), bundle).unwrap();
    let msp = load_org_msp(&org.join("msp")).unwrap();
    assert_eq!(msp.root_certs_pem.len(), 2);
    for pem in &msp.root_certs_pem {
        CertInfo::from_pem(pem).unwrap();
    }
    assert!(load_org_msp(&tmp.path().join("none")).is_err());
}

#[test]
fn an_intermediate_ca_issues_identities() {
    let tmp = tempfile::tempdir().unwrap();
    let org = org(tmp.path(), "Org1MSP", KeyType::EcdsaP256);
    let inter = issue_intermediate(&org, "ica", KeyType::Ed25519, Validity::ca_default()).unwrap();
    let inter_pem = std::fs::read(inter.join("cert.pem")).unwrap();
    assert!(signed_by(&inter_pem, &std::fs::read(org.join("ca/cert.pem")).unwrap()));
    assert!(CertInfo::from_pem(&inter_pem).unwrap().is_ca);

    let dir = issue_by(&org, Some("ica"), "p", Role::Peer, KeyType::EcdsaP256, Validity::leaf_default()).unwrap();
    let id = SigningIdentity::load(&dir).unwrap();
    assert!(signed_by(id.cert_pem(), &inter_pem));
    assert_eq!(CertInfo::from_pem(id.cert_pem()).unwrap().issuer, CertInfo::from_pem(&inter_pem).unwrap().subject);
    assert_eq!(std::fs::read(dir.join("intermediatecerts/ica.pem")).unwrap(), inter_pem);
    let msp = load_org_msp(&org.join("msp")).unwrap();
    assert_eq!(msp.intermediate_certs_pem.len(), 1);
    assert!(issue_by(&org, Some("nope"), "q", Role::Peer, KeyType::EcdsaP256, Validity::leaf_default()).is_err());
}

#[test]
fn dev_crypto_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let first = dev_crypto(tmp.path()).unwrap();
    let cert = std::fs::read(first.orderer_identity.join("signcerts/cert.pem")).unwrap();
    let second = dev_crypto(tmp.path()).unwrap();
    assert_eq!(first, second);
    assert_eq!(std::fs::read(second.orderer_identity.join("signcerts/cert.pem")).unwrap(), cert);
    for (dir, msp, role) in [
        (&first.orderer_identity, "OrdererMSP", Role::Orderer),
        (&first.client_identity, "DevOrgMSP", Role::Client),
        (&first.admin_identity, "DevOrgMSP", Role::Admin),
    ] {
        let id = SigningIdentity::load(dir).unwrap();
        assert_eq!(id.msp_id(), msp);
        assert_eq!(CertInfo::from_pem(id.cert_pem()).unwrap().role(), Some(role));
    }
}

#[test]
fn signing_identity_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SigningIdentity>();
}

/// A Fabric local MSP directory as cryptogen wrote it (`../shared/fabric-1.4.12`: no `mspid`
/// file, `keystore/<ski>_sk`) loads with its MSP ID given, signs, and what it signs verifies and
/// satisfies the Admins policy of the genesis block's Org1MSP, by Fabric's rules.
#[test]
fn a_cryptogen_msp_directory_loads_with_its_msp_id_and_signs_as_fabric_expects() {
    use crate::core::fabric_policy::Policies;
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fabric-1.4.12");
    let dir = shared.join("crypto/peerOrganizations/org1.example.com/users/Admin@org1.example.com/msp");
    let e = SigningIdentity::load(&dir).unwrap_err();
    assert!(format!("{e:#}").contains("no `mspid` file") && format!("{e:#}").contains("--msp-id"), "{e:#}");
    let admin = SigningIdentity::load_as(&dir, Some("Org1MSP")).unwrap();
    assert_eq!(admin.msp_id(), "Org1MSP");

    let message = b"a config update's bytes";
    let signature = admin.sign(message);
    let identity = crate::core::msp::Identity::deserialize(&admin.serialized()).unwrap();
    identity.cert.public_key.verify(message, &signature).unwrap();
    // Fabric's own rules: Org1MSP's Admins (OR Org1MSP.admin) in configtxgen's genesis block.
    let raw = std::fs::read(shared.join("genesis/kafka-two-orgs.block")).unwrap();
    let block = crate::proto::Block::decode(raw.as_slice()).unwrap();
    let data = block.data.unwrap().data[0].clone();
    let payload = crate::proto::Payload::decode(crate::proto::Envelope::decode(data).unwrap().payload).unwrap();
    let config = crate::proto::common::ConfigEnvelope::decode(payload.data).unwrap().config.unwrap();
    let policies = Policies::of(config.channel_group.as_ref().unwrap()).unwrap();
    let signer = (identity, admin.serialized());
    assert!(policies.evaluate("/Channel/Consortiums/SampleConsortium/Org1MSP/Admins", std::slice::from_ref(&signer)));
    assert!(!policies.evaluate("/Channel/Consortiums/SampleConsortium/Org2MSP/Admins", &[signer]));
}

/// configtxgen built `kafka-two-orgs.block`'s three MSP values from cryptogen's MSP directories
/// (`configtx.yaml`'s MSPDir); reading the same directories gives the same bytes.
#[test]
fn a_fabric_msp_directory_reads_into_the_msp_value_configtxgen_wrote_for_it() {
    use crate::core::configtree::{walk, Item};
    use crate::proto::msp::MspConfig;
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fabric-1.4.12");
    let raw = std::fs::read(shared.join("genesis/kafka-two-orgs.block")).unwrap();
    let block = crate::proto::Block::decode(raw.as_slice()).unwrap();
    let data = block.data.unwrap().data[0].clone();
    let payload = crate::proto::Payload::decode(crate::proto::Envelope::decode(data).unwrap().payload).unwrap();
    let config = crate::proto::common::ConfigEnvelope::decode(payload.data).unwrap().config.unwrap();
    let mut written = std::collections::BTreeMap::new();
    walk(config.channel_group.as_ref().unwrap(), "/Channel", &mut |path, item| {
        if let Item::Value("MSP", bytes) = item {
            written.insert(path.to_owned(), bytes.clone());
        }
    });
    let cases = [
        ("/Channel/Orderer/OrdererOrg/MSP", "crypto/ordererOrganizations/example.com/msp", "OrdererMSP"),
        (
            "/Channel/Consortiums/SampleConsortium/Org1MSP/MSP",
            "crypto/peerOrganizations/org1.example.com/msp",
            "Org1MSP",
        ),
        (
            "/Channel/Consortiums/SampleConsortium/Org2MSP/MSP",
            "crypto/peerOrganizations/org2.example.com/msp",
            "Org2MSP",
        ),
    ];
    for (path, dir, msp_id) in cases {
        let msp = fabric_msp::verifying_config(&shared.join(dir), msp_id).unwrap();
        assert!(msp.fabric_node_ous.as_ref().is_some_and(|n| n.enable), "{dir}: cryptogen enables NodeOUs");
        let value = MspConfig { r#type: 0, config: msp.encode_to_vec().into() }.encode_to_vec();
        assert_eq!(Bytes::from(value), written[path], "{path} from {dir}");
    }
    // A directory without CA certificates is no MSP.
    let empty = tempfile::tempdir().unwrap();
    let e = fabric_msp::verifying_config(empty.path(), "X").unwrap_err();
    assert!(e.to_string().contains("no CA certificate in cacerts/"), "{e}");
}
