//! Private keys: generation, PKCS#8 PEM encoding, signing, and the bridge that lets rcgen sign
//! certificates with them (so certificate signatures are low-S too, as Fabric's cryptogen makes them).

use anyhow::{anyhow, Context};
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;

use super::KeyType;

/// A private key of one of the supported types, ready to sign.
pub(crate) enum PrivateKey {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl PrivateKey {
    /// A fresh key and its PKCS#8 PEM encoding.
    pub(crate) fn generate(key_type: KeyType) -> anyhow::Result<(Self, String)> {
        let rng = SystemRandom::new();
        let pkcs8 = match key_type {
            KeyType::EcdsaP256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng),
            KeyType::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
        }
        .map_err(|_| anyhow!("cannot generate a {key_type} key"))?;
        let key = Self::from_pkcs8_der(pkcs8.as_ref())?;
        Ok((key, pem_encode("PRIVATE KEY", pkcs8.as_ref())))
    }

    /// Reads a PKCS#8 PEM private key (ECDSA P-256 or Ed25519).
    pub(crate) fn from_pkcs8_pem(pem: &[u8]) -> anyhow::Result<Self> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem).context("not a PKCS#8 PEM private key")?;
        Self::from_pkcs8_der(der.secret_pkcs8_der())
    }

    fn from_pkcs8_der(der: &[u8]) -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        if let Ok(key) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng) {
            return Ok(PrivateKey::Ecdsa(key));
        }
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(PrivateKey::Ed25519)
            .map_err(|_| anyhow!("the private key is neither ECDSA P-256 nor Ed25519"))
    }

    pub(crate) fn key_type(&self) -> KeyType {
        match self {
            PrivateKey::Ecdsa(_) => KeyType::EcdsaP256,
            PrivateKey::Ed25519(_) => KeyType::Ed25519,
        }
    }

    /// The raw public key: the uncompressed point for ECDSA, 32 bytes for Ed25519 (the content of
    /// a certificate's `subjectPublicKey` BIT STRING).
    pub(crate) fn public_key(&self) -> &[u8] {
        match self {
            PrivateKey::Ecdsa(k) => k.public_key().as_ref(),
            PrivateKey::Ed25519(k) => k.public_key().as_ref(),
        }
    }

    /// ECDSA: DER, low-S signature over SHA-256(message). Ed25519: the 64-byte signature.
    pub(crate) fn sign(&self, rng: &SystemRandom, message: &[u8]) -> Result<Vec<u8>, ring::error::Unspecified> {
        match self {
            PrivateKey::Ecdsa(k) => {
                let fixed = k.sign(rng, message)?;
                crate::core::ecdsa::fixed_to_low_s_der(fixed.as_ref()).ok_or(ring::error::Unspecified)
            }
            PrivateKey::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }
}

impl rcgen::PublicKeyData for PrivateKey {
    fn der_bytes(&self) -> &[u8] {
        self.public_key()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            PrivateKey::Ecdsa(_) => &rcgen::PKCS_ECDSA_P256_SHA256,
            PrivateKey::Ed25519(_) => &rcgen::PKCS_ED25519,
        }
    }
}

impl rcgen::SigningKey for PrivateKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        PrivateKey::sign(self, &SystemRandom::new(), msg).map_err(|_| rcgen::Error::RingUnspecified)
    }
}

/// PEM armour with 64-character lines.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
