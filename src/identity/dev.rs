//! The crypto material `osn dev` runs with: an orderer organisation and a client organisation,
//! created on first use and reused afterwards.

use std::path::{Path, PathBuf};

use super::issue::{create_ca, issue, Validity};
use super::layout::{IDENTITIES_DIR, MSP_DIR};
use super::{KeyType, Role};

/// MSP ID of the development orderer organisation.
pub const DEV_ORDERER_MSP: &str = "OrdererMSP";
/// MSP ID of the development client organisation.
pub const DEV_CLIENT_MSP: &str = "DevOrgMSP";

/// Where `dev_crypto` put things.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevCrypto {
    /// `root/orderer-org`.
    pub orderer_org: PathBuf,
    /// `root/orderer-org/identities/osn`: the OSN's signing identity (role orderer).
    pub orderer_identity: PathBuf,
    /// `root/orderer-org/identities/admin`: the orderer organisation's admin (batch settings and
    /// the channel limit are the orderer organisations' admins' to change).
    pub orderer_admin_identity: PathBuf,
    /// `root/dev-org`.
    pub client_org: PathBuf,
    /// `root/dev-org/identities/client` (role client).
    pub client_identity: PathBuf,
    /// `root/dev-org/identities/admin` (role admin).
    pub admin_identity: PathBuf,
}

/// Where `osn dev` keeps its crypto material, and where the CLI looks for its default identity:
/// `$OSN_DEV_CRYPTO`, else `$HOME/.osn/dev-crypto`.
pub fn default_dev_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("OSN_DEV_CRYPTO") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".osn").join("dev-crypto")
}

/// The client identity `dev_crypto` creates under `root`.
pub fn dev_client_identity(root: &Path) -> PathBuf {
    root.join("dev-org").join(IDENTITIES_DIR).join("client")
}

/// The admin identity `dev_crypto` creates under `root` (it may create channels).
pub fn dev_admin_identity(root: &Path) -> PathBuf {
    root.join("dev-org").join(IDENTITIES_DIR).join("admin")
}

/// The orderer organisation's admin identity `dev_crypto` creates under `root`.
pub fn dev_orderer_admin_identity(root: &Path) -> PathBuf {
    root.join("orderer-org").join(IDENTITIES_DIR).join("admin")
}

/// Creates (if absent) the dev orderer org `OrdererMSP` with identities `osn` and `admin`, and the
/// dev client org `DevOrgMSP` with identities `client` and `admin`, under `root`, NodeOUs on.
/// Idempotent: whatever exists is reused, whatever is missing is made.
pub fn dev_crypto(root: &Path) -> anyhow::Result<DevCrypto> {
    let orderer_org = root.join("orderer-org");
    let client_org = root.join("dev-org");
    ensure_org(&orderer_org, DEV_ORDERER_MSP)?;
    ensure_org(&client_org, DEV_CLIENT_MSP)?;
    Ok(DevCrypto {
        orderer_identity: ensure_identity(&orderer_org, "osn", Role::Orderer)?,
        orderer_admin_identity: ensure_identity(&orderer_org, "admin", Role::Admin)?,
        client_identity: ensure_identity(&client_org, "client", Role::Client)?,
        admin_identity: ensure_identity(&client_org, "admin", Role::Admin)?,
        orderer_org,
        client_org,
    })
}

fn ensure_org(dir: &Path, msp_id: &str) -> anyhow::Result<()> {
    if dir.join(MSP_DIR).is_dir() {
        // Dev crypto made before MSPs carried NodeOUs gets them now.
        return super::issue::write_node_ous(&dir.join(MSP_DIR));
    }
    create_ca(msp_id, dir, KeyType::default(), Validity::ca_default())
}

fn ensure_identity(org: &Path, name: &str, role: Role) -> anyhow::Result<PathBuf> {
    let dir = org.join(IDENTITIES_DIR).join(name);
    if dir.is_dir() {
        return Ok(dir);
    }
    issue(org, name, role, KeyType::default(), Validity::leaf_default())
}
