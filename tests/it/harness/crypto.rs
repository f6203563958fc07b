//! The organisations and identities every test of this binary shares, made once.

use super::*;

/// Organisations and identities shared by every test of this binary (made once), with NodeOUs as
/// `osn identity` makes them: `OrdererMSP` (orderers osn0, osn1, osn2; admin), `Org1MSP` (client,
/// admin; Ed25519 client `ed`), and `Org2MSP` (client, admin). The network's genesis block
/// ([`genesis_block`]) has OrdererMSP as its orderer organisation and Org1 and Org2 in its
/// consortium; channels hold Org1 unless a test says otherwise.
pub struct TestCrypto {
    pub root: PathBuf,
    pub orderer_org: PathBuf,
    pub org1: PathBuf,
    pub org2: PathBuf,
    /// Org1's client: what tests sign with unless they say otherwise.
    pub client: SigningIdentity,
    pub admin: SigningIdentity,
    pub ed25519_client: SigningIdentity,
    /// A client of Org2.
    pub outsider: SigningIdentity,
    /// Org2's admin.
    pub admin2: SigningIdentity,
    /// The orderer organisation's admin (batch settings are its to change).
    pub orderer_admin: SigningIdentity,
}

impl TestCrypto {
    /// The directory of orderer identity `osn{n}` (n < 3).
    pub fn osn_identity(&self, n: usize) -> PathBuf {
        self.orderer_org.join("identities").join(format!("osn{n}"))
    }

    /// The admin of an organisation of the consortium, by MSP ID.
    pub fn admin_of(&self, msp_id: &str) -> &SigningIdentity {
        match msp_id {
            "Org1MSP" => &self.admin,
            "Org2MSP" => &self.admin2,
            "OrdererMSP" => &self.orderer_admin,
            other => panic!("no organisation {other} in the test crypto"),
        }
    }

    /// Issues a new identity of `org` (a directory of this crypto) and loads it.
    pub fn issue(&self, org: &Path, name: &str, role: Role, key: KeyType, validity: Validity) -> SigningIdentity {
        SigningIdentity::load(&issue(org, name, role, key, validity).unwrap()).unwrap()
    }
}

pub fn crypto() -> &'static TestCrypto {
    static CRYPTO: std::sync::OnceLock<TestCrypto> = std::sync::OnceLock::new();
    CRYPTO.get_or_init(|| {
        // Lives as long as the test process.
        let root = tempfile::Builder::new().prefix("osn-it-crypto-").tempdir().unwrap().keep();
        let org = |name: &str, msp: &str| {
            let dir = root.join(name);
            create_ca(msp, &dir, KeyType::EcdsaP256, Validity::ca_default()).unwrap();
            dir
        };
        let (orderer_org, org1, org2) = (org("orderer", "OrdererMSP"), org("org1", "Org1MSP"), org("org2", "Org2MSP"));
        for n in 0..3 {
            issue(&orderer_org, &format!("osn{n}"), Role::Orderer, KeyType::EcdsaP256, Validity::leaf_default())
                .unwrap();
        }
        let load = |org: &Path, name, role, key| {
            SigningIdentity::load(&issue(org, name, role, key, Validity::leaf_default()).unwrap()).unwrap()
        };
        TestCrypto {
            client: load(&org1, "client", Role::Client, KeyType::EcdsaP256),
            admin: load(&org1, "admin", Role::Admin, KeyType::EcdsaP256),
            ed25519_client: load(&org1, "ed", Role::Client, KeyType::Ed25519),
            outsider: load(&org2, "client", Role::Client, KeyType::EcdsaP256),
            admin2: load(&org2, "admin", Role::Admin, KeyType::EcdsaP256),
            orderer_admin: load(&orderer_org, "admin", Role::Admin, KeyType::EcdsaP256),
            root,
            orderer_org,
            org1,
            org2,
        }
    })
}

/// The system channel of every test network.
pub const SYSTEM_CHANNEL: &str = "osn-system";
/// The consortium of every test network: Org1MSP and Org2MSP.
pub const CONSORTIUM: &str = "SampleConsortium";

/// The genesis block of a test network, as configtxgen writes one for a Kafka profile: `brokers`,
/// the batch settings, the channel limit, OrdererMSP as the orderer organisation, and
/// [`CONSORTIUM`] of Org1MSP and Org2MSP. Fixed time and nonce: the same bytes each time.
pub fn genesis_block(brokers: &str, batch: osn::proto::BatchSize, timeout: &str, max_channels: u64) -> Block {
    use osn::core::genesis::{system_config, Consortium, Organization, SystemProfile};
    let msp = |dir: &Path, id: &str| osn::identity::fabric_msp::verifying_config(&dir.join("msp"), id).unwrap();
    let c = crypto();
    let brokers = brokers.split(',').map(str::to_owned).collect();
    let mut profile = SystemProfile::kafka(brokers, vec!["127.0.0.1:7050".into()]);
    profile.batch_size = batch;
    profile.batch_timeout = timeout.to_owned();
    profile.max_channels = max_channels;
    profile.orderer_organizations = vec![Organization::orderer("OrdererMSP", msp(&c.orderer_org, "OrdererMSP"))];
    profile.consortiums = vec![Consortium {
        name: CONSORTIUM.into(),
        members: vec![
            Organization::application("Org1MSP", msp(&c.org1, "Org1MSP")),
            Organization::application("Org2MSP", msp(&c.org2, "Org2MSP")),
        ],
    }];
    osn::core::genesis::genesis_block(SYSTEM_CHANNEL, &system_config(&profile), 0, [0; 24])
}
