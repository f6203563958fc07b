//! The organisations and identities every test of this binary shares, made once.

use super::*;

/// Organisations and identities shared by every test of this binary (made once):
/// `OrdererMSP` (identities osn0, osn1, osn2), `Org1MSP` (client, admin; Ed25519 client `ed`), and
/// `Org2MSP` (client). OSNs define Org1 and Org2; channels hold Org1 unless a test says otherwise.
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
}

impl TestCrypto {
    /// The directory of orderer identity `osn{n}` (n < 3).
    pub fn osn_identity(&self, n: usize) -> PathBuf {
        self.orderer_org.join("identities").join(format!("osn{n}"))
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
            root,
            orderer_org,
            org1,
            org2,
        }
    })
}
