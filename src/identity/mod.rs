//! Identities that sign: an MSP ID, an X.509 certificate and its private key, as Fabric's local MSP
//! directories hold them, plus a small certificate authority to make them (`osn identity`, like
//! Fabric's cryptogen). Verifying other parties' identities is the verifier's job (`core::msp`).

pub mod cert;
pub mod dev;
pub mod envelope;
pub mod fabric_msp;
mod issue;
mod key;
pub mod layout;

use std::fmt;
use std::path::Path;

use anyhow::{bail, Context};
use bytes::Bytes;
use prost::Message;
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::core::msp::PublicKey;
pub use cert::CertInfo;
pub use dev::{dev_crypto, DevCrypto};
pub use issue::{create_ca, issue, issue_by, issue_intermediate, revoke, saturating_add, Validity};
pub use layout::{load_org_msp, OrgMsp};

use key::PrivateKey;
use layout::{pick_file, read, read_msp_id, CERT_FILE, KEYSTORE_DIR, KEY_FILE, SIGNCERTS_DIR};

/// Length of the random nonce in a block signature's `SignatureHeader` (as Fabric's).
pub const BLOCK_NONCE_LEN: usize = 24;

/// The signature scheme of a key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256, DER, low-S (what Fabric uses).
    #[default]
    #[value(name = "ecdsa")]
    EcdsaP256,
    /// Ed25519.
    #[value(name = "ed25519")]
    Ed25519,
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::Ed25519 => "ed25519",
        })
    }
}

/// The role of an identity, carried as an OU of its certificate (Fabric NodeOUs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Role {
    Client,
    Admin,
    Orderer,
    Peer,
}

impl Role {
    /// The OU value: `client`, `admin`, `orderer` or `peer`.
    pub fn as_str(self) -> &'static str {
        crate::core::msp::Role::from(self).as_str()
    }
}

/// The role as the verifier reads it back from the certificate.
impl From<Role> for crate::core::msp::Role {
    fn from(role: Role) -> Self {
        use crate::core::msp::Role as Read;
        match role {
            Role::Client => Read::Client,
            Role::Admin => Read::Admin,
            Role::Orderer => Read::Orderer,
            Role::Peer => Read::Peer,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        <Role as clap::ValueEnum>::from_str(s, false)
            .map_err(|_| anyhow::anyhow!("unknown role {s:?} (client, admin, orderer or peer)"))
    }
}

/// An identity able to sign: MSP ID, certificate and private key.
pub struct SigningIdentity {
    msp_id: String,
    cert_pem: Vec<u8>,
    serialized: Bytes,
    key: PrivateKey,
    rng: SystemRandom,
}

impl fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("msp_id", &self.msp_id)
            .field("key_type", &self.key_type())
            .finish_non_exhaustive()
    }
}

impl SigningIdentity {
    /// Loads a local MSP directory: `mspid`, `signcerts/cert.pem`, `keystore/key.pem` (when those
    /// names are absent, the only file of `signcerts/` or `keystore/`). Errors name the file.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        Self::load_as(dir, None)
    }

    /// [`SigningIdentity::load`], also from a Fabric local MSP directory as cryptogen or Fabric's
    /// CA client writes it (`signcerts/<name>-cert.pem`, `keystore/<ski>_sk` or `priv_sk`, no
    /// `mspid` file), whose MSP ID the caller gives: `msp_id` is used where the directory does not
    /// say it, and must agree with it where it does.
    pub fn load_as(dir: &Path, msp_id: Option<&str>) -> anyhow::Result<Self> {
        // A directory that is not there is reported as before: naming the file it lacks.
        let says_it = dir.join(layout::MSPID_FILE).is_file() || !dir.is_dir();
        let msp_id = match (says_it, msp_id) {
            (true, given) => {
                let stored = read_msp_id(dir)?;
                if let Some(given) = given.filter(|g| *g != stored) {
                    bail!("{} says MSP ID '{stored}', not '{given}'", dir.join(layout::MSPID_FILE).display());
                }
                stored
            }
            (false, Some(given)) => given.to_owned(),
            (false, None) => bail!(
                "{} has no `mspid` file (a Fabric MSP directory does not): give its MSP ID (--msp-id)",
                dir.display()
            ),
        };
        let cert_path = pick_file(&dir.join(SIGNCERTS_DIR), CERT_FILE)?;
        let key_path = pick_file(&dir.join(KEYSTORE_DIR), KEY_FILE)?;
        let cert_pem = read(&cert_path)?;
        let key_pem = read(&key_path)?;
        Self::from_pem(&msp_id, &cert_pem, &key_pem)
            .with_context(|| format!("{} with {}", cert_path.display(), key_path.display()))
    }

    /// An identity from PEM text: a certificate and the PKCS#8 private key of its public key.
    pub fn from_pem(msp_id: &str, cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<Self> {
        // Read as the verifier reads it: a certificate it would refuse is refused here, at load.
        let cert = crate::core::msp::Certificate::from_pem(cert_pem).map_err(anyhow::Error::msg)?;
        let key = PrivateKey::from_pkcs8_pem(key_pem)?;
        let matches = match (&cert.public_key, key.key_type()) {
            (PublicKey::EcdsaP256(public), KeyType::EcdsaP256) | (PublicKey::Ed25519(public), KeyType::Ed25519) => {
                public.as_ref() == key.public_key()
            }
            _ => false,
        };
        if !matches {
            bail!("the private key does not belong to the certificate");
        }
        let serialized = crate::proto::msp::SerializedIdentity {
            mspid: msp_id.to_string(),
            id_bytes: Bytes::copy_from_slice(cert_pem),
        }
        .encode_to_vec()
        .into();
        Ok(SigningIdentity {
            msp_id: msp_id.to_string(),
            cert_pem: cert_pem.to_vec(),
            serialized,
            key,
            rng: SystemRandom::new(),
        })
    }

    /// The MSP the identity belongs to.
    pub fn msp_id(&self) -> &str {
        &self.msp_id
    }

    /// The certificate, PEM, exactly as loaded.
    pub fn cert_pem(&self) -> &[u8] {
        &self.cert_pem
    }

    pub fn key_type(&self) -> KeyType {
        self.key.key_type()
    }

    /// The marshaled `msp.SerializedIdentity{mspid, id_bytes = certificate PEM}`: the `creator`
    /// of the headers this identity signs.
    pub fn serialized(&self) -> Bytes {
        self.serialized.clone()
    }

    /// ECDSA: a DER, low-S signature over SHA-256(message). Ed25519: the 64-byte signature.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        // ring fails only when the system random source does; nothing sensible can go on then.
        self.key.sign(&self.rng, message).expect("the system random number generator failed")
    }

    /// Signs a block as an OSN does (WIRE.md, "Hashing and signing"): a `SignatureHeader{creator =
    /// this identity, nonce = 24 random bytes}` and a signature over
    /// [`signing_input`](crate::core::block::signing_input), appended to the SIGNATURES slot.
    /// Nothing else in the block changes.
    pub fn sign_block(&self, block: &mut crate::proto::Block) {
        let mut nonce = [0u8; BLOCK_NONCE_LEN];
        self.rng.fill(&mut nonce).expect("the system random number generator failed");
        let header: Bytes =
            crate::proto::SignatureHeader { creator: self.serialized(), nonce: Bytes::copy_from_slice(&nonce) }
                .encode_to_vec()
                .into();
        // Blocks built by core::block always have a header and a SIGNATURES slot; a block without
        // them gets a signature over an empty value and header, which no verifier accepts.
        let input = crate::core::block::block_signing_input(block, &header).unwrap_or_else(|| header.to_vec());
        let signature = self.sign(&input).into();
        crate::core::block::add_signature(block, header, signature);
    }
}

#[cfg(test)]
mod tests;
