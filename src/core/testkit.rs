//! Test material for the core's tests: organisations made by OSN's own CA (NodeOUs on, as
//! `osn identity` and `osn dev` make them), and Fabric configurations over them made the way a
//! network makes them: configtxgen's system channel, and a channel created from it by a
//! creation update its members' admins approve.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::genesis::{system_config, Consortium, Organization, SystemProfile};
use super::msp::Identity;
use crate::identity::{create_ca, issue_by, issue_intermediate, KeyType, Role, SigningIdentity, Validity};
use crate::proto::common::Config;
use crate::proto::msp::FabricMspConfig;
use crate::proto::BatchSize;

/// The consortium every test system channel has.
pub const CONSORTIUM: &str = "TestConsortium";

/// An organisation: its directory (CA keys, identities), MSP ID, MSP value, and an admin.
pub struct Org {
    pub dir: PathBuf,
    pub msp_id: String,
    pub msp: FabricMspConfig,
    pub admin: SigningIdentity,
}

impl Org {
    /// A new organisation under `root`, with an intermediate CA `ica` and an admin.
    pub fn new(root: &Path, msp_id: &str, key: KeyType) -> Org {
        let dir = root.join(msp_id);
        create_ca(msp_id, &dir, key, Validity::ca_default()).unwrap();
        issue_intermediate(&dir, "ica", key, Validity::ca_default()).unwrap();
        let msp = crate::identity::fabric_msp::verifying_config(&dir.join("msp"), msp_id).unwrap();
        let admin = identity_in(&dir, "admin", Role::Admin, key, None);
        Org { dir, msp_id: msp_id.to_owned(), msp, admin }
    }

    /// A new identity of this organisation, issued by its root CA or by `issuer`.
    pub fn identity(&self, name: &str, role: Role, key: KeyType, issuer: Option<&str>) -> SigningIdentity {
        identity_in(&self.dir, name, role, key, issuer)
    }

    /// The admin, as a verified signer.
    pub fn admin_signer(&self) -> (Identity, Bytes) {
        signer(&self.admin)
    }
}

fn identity_in(dir: &Path, name: &str, role: Role, key: KeyType, issuer: Option<&str>) -> SigningIdentity {
    SigningIdentity::load(&issue_by(dir, issuer, name, role, key, Validity::leaf_default()).unwrap()).unwrap()
}

/// An identity as a signer whose signature the caller verified.
pub fn signer(id: &SigningIdentity) -> (Identity, Bytes) {
    (Identity::deserialize(&id.serialized()).unwrap(), id.serialized())
}

/// A Kafka system channel with `orderers` as orderer organisations and `members` in the
/// consortium [`CONSORTIUM`], cutting by `batch_size` every `batch_timeout`.
pub fn system(orderers: &[&Org], members: &[&Org], batch_size: BatchSize, batch_timeout: &str) -> Config {
    let mut profile = SystemProfile::kafka(vec!["127.0.0.1:9092".into()], vec!["127.0.0.1:7050".into()]);
    profile.batch_size = batch_size;
    profile.batch_timeout = batch_timeout.to_owned();
    profile.orderer_organizations = orderers.iter().map(|o| Organization::orderer(&o.msp_id, o.msp.clone())).collect();
    profile.consortiums = vec![Consortium {
        name: CONSORTIUM.into(),
        members: members.iter().map(|o| Organization::application(&o.msp_id, o.msp.clone())).collect(),
    }];
    system_config(&profile)
}

/// The configuration of `channel` created from `system` with `members` (their admins approve).
pub fn channel(system: &Config, channel: &str, members: &[&Org]) -> Config {
    let names: Vec<String> = members.iter().map(|o| o.msp_id.clone()).collect();
    let signers: Vec<_> = members.iter().map(|o| o.admin_signer()).collect();
    super::genesis::created_channel_config(system, channel, CONSORTIUM, &names, &signers).unwrap()
}

/// A batch size.
pub fn batch(max_message_count: u32, absolute_max_bytes: u32, preferred_max_bytes: u32) -> BatchSize {
    BatchSize { max_message_count, absolute_max_bytes, preferred_max_bytes }
}
