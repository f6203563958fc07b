//! Fabric's MSP model, simplified: an organisation is an MSP ID and the CA certificates its
//! identities chain to; a creator is a `SerializedIdentity{mspid, id_bytes = PEM certificate}`.
//! Identities are X.509 certificates with ECDSA P-256 or Ed25519 keys, and their role (client,
//! admin, orderer, peer) is the certificate subject's OU, as with Fabric's NodeOUs.
//!
//! Pure: nothing here reads a clock. Times are seconds since the Unix epoch, passed in.

use bytes::Bytes;
use prost::Message as _;
use x509_parser::oid_registry::{OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ED25519};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use crate::proto::msp::SerializedIdentity;

/// Longest CA chain (intermediates) followed from a certificate to a root.
const MAX_CHAIN: usize = 4;

/// A public key an identity signs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// An uncompressed SEC1 point (65 bytes).
    EcdsaP256(Bytes),
    /// 32 bytes.
    Ed25519(Bytes),
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "the envelope is not signed (and Fabric 2.2.14+ / 2.5.5+ peers refuse a block holding an unsigned transaction)"
    )]
    Missing,
    #[error("the signature is not a DER-encoded ECDSA signature")]
    Malformed,
    #[error("the ECDSA signature is not in low-S form (S > n/2), which Fabric refuses")]
    HighS,
    #[error("the signature does not verify against the creator's public key")]
    Invalid,
}

impl PublicKey {
    /// Verifies an envelope-style signature over `message`: ECDSA P-256 with SHA-256, DER,
    /// low-S; or Ed25519.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        if signature.is_empty() {
            return Err(SignatureError::Missing);
        }
        match self {
            PublicKey::EcdsaP256(point) => {
                let (_, s) = super::ecdsa::decode_der(signature).ok_or(SignatureError::Malformed)?;
                if !super::ecdsa::scalar_is_low(&s) {
                    return Err(SignatureError::HighS);
                }
                ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point)
                    .verify(message, signature)
                    .map_err(|_| SignatureError::Invalid)
            }
            PublicKey::Ed25519(key) => ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
                .verify(message, signature)
                .map_err(|_| SignatureError::Invalid),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            PublicKey::EcdsaP256(_) => "ECDSA P-256",
            PublicKey::Ed25519(_) => "Ed25519",
        }
    }
}

/// A creator's role, read from its certificate subject's organisational unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Client,
    Admin,
    Orderer,
    Peer,
    /// A certificate with none of the role OUs: a member, nothing more.
    Member,
}

impl Role {
    /// The role an organisational unit names (`client`, `admin`, `orderer`, `peer`; any case).
    pub fn from_ou(ou: &str) -> Option<Role> {
        [Role::Client, Role::Admin, Role::Orderer, Role::Peer].into_iter().find(|r| ou.eq_ignore_ascii_case(r.as_str()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Admin => "admin",
            Role::Orderer => "orderer",
            Role::Peer => "peer",
            Role::Member => "member",
        }
    }
}

/// A parsed X.509 certificate: what verification needs, owned.
#[derive(Debug, Clone)]
pub struct Certificate {
    pub subject: String,
    subject_raw: Bytes,
    issuer_raw: Bytes,
    pub not_before: i64,
    pub not_after: i64,
    pub public_key: PublicKey,
    pub role: Role,
    /// Every organisational unit of the subject, in order (Fabric's NodeOUs and OU principals
    /// judge by these).
    pub ous: Vec<String>,
    /// The certificate's DER bytes (Fabric compares admin certificates and identity principals
    /// by these).
    pub der: Bytes,
    pub is_ca: bool,
    /// The serial number's bytes (what a CRL names).
    pub serial: Bytes,
    tbs: Bytes,
    signed_with_ed25519: bool,
    signature: Bytes,
}

impl Certificate {
    /// Parses one DER certificate with an ECDSA P-256 or Ed25519 key.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let (rest, cert) = X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        if !rest.is_empty() {
            return Err("trailing bytes after the certificate".into());
        }
        let tbs = &cert.tbs_certificate;
        let spki = tbs.public_key();
        let key = spki.subject_public_key.data.as_ref();
        let public_key = if spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY && key.len() == 65 && key[0] == 4 {
            PublicKey::EcdsaP256(Bytes::copy_from_slice(key))
        } else if spki.algorithm.algorithm == OID_SIG_ED25519 && key.len() == 32 {
            PublicKey::Ed25519(Bytes::copy_from_slice(key))
        } else {
            return Err(format!(
                "unsupported public key (algorithm {}): identities use ECDSA P-256 or Ed25519",
                spki.algorithm.algorithm
            ));
        };
        let signed_with_ed25519 = if cert.signature_algorithm.algorithm == OID_SIG_ECDSA_WITH_SHA256 {
            false
        } else if cert.signature_algorithm.algorithm == OID_SIG_ED25519 {
            true
        } else {
            return Err(format!(
                "unsupported certificate signature algorithm {}: CAs sign with ECDSA-SHA256 or Ed25519",
                cert.signature_algorithm.algorithm
            ));
        };
        let ous: Vec<String> =
            tbs.subject().iter_organizational_unit().filter_map(|ou| ou.as_str().ok()).map(str::to_owned).collect();
        let roles: Vec<Role> = ous.iter().filter_map(|ou| Role::from_ou(ou)).collect();
        let role = match roles.as_slice() {
            [] => Role::Member,
            [role] => *role,
            // Fabric's NodeOUs refuse an identity with more than one role.
            _ => return Err(format!("the certificate names {} roles in its OUs; an identity has one", roles.len())),
        };
        // A CA is a certificate with basicConstraints CA, whose key usage (if stated) allows
        // signing certificates.
        let may_sign_certs = tbs.key_usage().ok().flatten().is_none_or(|ku| ku.value.key_cert_sign());
        Ok(Certificate {
            subject: tbs.subject().to_string(),
            subject_raw: Bytes::copy_from_slice(tbs.subject().as_raw()),
            issuer_raw: Bytes::copy_from_slice(tbs.issuer().as_raw()),
            not_before: tbs.validity().not_before.timestamp(),
            not_after: tbs.validity().not_after.timestamp(),
            public_key,
            role,
            ous,
            der: Bytes::copy_from_slice(der),
            is_ca: tbs.is_ca() && may_sign_certs,
            serial: Bytes::copy_from_slice(tbs.raw_serial()),
            tbs: Bytes::copy_from_slice(tbs.as_ref()),
            signed_with_ed25519,
            signature: Bytes::copy_from_slice(&cert.signature_value.data),
        })
    }

    /// Parses every certificate of a PEM text (at least one).
    pub fn all_from_pem(pem: &[u8]) -> Result<Vec<Self>, String> {
        let mut certs = Vec::new();
        for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
            let block = block.map_err(|e| format!("not PEM: {e}"))?;
            if block.label == "CERTIFICATE" {
                certs.push(Self::from_der(&block.contents)?);
            }
        }
        if certs.is_empty() {
            return Err("no PEM CERTIFICATE block".into());
        }
        Ok(certs)
    }

    /// Parses the one certificate of a PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let mut certs = Self::all_from_pem(pem)?;
        if certs.len() != 1 {
            return Err(format!("expected one certificate, found {}", certs.len()));
        }
        Ok(certs.remove(0))
    }

    pub fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// Whether `issuer` issued this certificate: names match and its key verifies the signature.
    fn issued_by(&self, issuer: &Certificate) -> bool {
        if self.issuer_raw != issuer.subject_raw {
            return false;
        }
        let alg: &dyn ring::signature::VerificationAlgorithm = match (&issuer.public_key, self.signed_with_ed25519) {
            (PublicKey::EcdsaP256(_), false) => &ring::signature::ECDSA_P256_SHA256_ASN1,
            (PublicKey::Ed25519(_), true) => &ring::signature::ED25519,
            _ => return false,
        };
        let key = match &issuer.public_key {
            PublicKey::EcdsaP256(k) | PublicKey::Ed25519(k) => k,
        };
        ring::signature::UnparsedPublicKey::new(alg, key).verify(&self.tbs, &self.signature).is_ok()
    }
}

fn parse<P: AsRef<[u8]>>(pems: &[P]) -> Result<Vec<Certificate>, String> {
    let mut out = Vec::new();
    for pem in pems {
        out.extend(Certificate::all_from_pem(pem.as_ref())?);
    }
    Ok(out)
}

/// A creator: an MSP ID and the certificate it claims.
#[derive(Debug, Clone)]
pub struct Identity {
    pub msp_id: String,
    pub cert: Certificate,
}

impl Identity {
    /// Decodes a marshaled `msp.SerializedIdentity` (the SignatureHeader's creator).
    pub fn deserialize(creator: &[u8]) -> Result<Self, String> {
        if creator.is_empty() {
            return Err("the signature header names no creator".into());
        }
        let id =
            SerializedIdentity::decode(creator).map_err(|e| format!("creator is not a msp.SerializedIdentity: {e}"))?;
        if id.mspid.is_empty() {
            return Err("the creator names no MSP ID".into());
        }
        let cert = Certificate::from_pem(&id.id_bytes).map_err(|e| format!("creator certificate: {e}"))?;
        Ok(Identity { msp_id: id.mspid, cert })
    }

    pub fn role(&self) -> Role {
        self.cert.role
    }
}

/// Why a certificate does not chain to an organisation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("organisation '{0}' is not a member of this channel")]
    UnknownOrganization(String),
    #[error("the certificate was not issued by a CA of organisation '{0}'")]
    NotIssued(String),
    #[error(
        "a CA certificate of organisation '{msp_id}' on the creator's chain ({subject}) is expired or not yet valid"
    )]
    CaNotValid { msp_id: String, subject: String },
    #[error("the creator certificate is a CA certificate, not an identity")]
    IsCa,
    #[error("the certificate ({0}) is revoked by a CRL of its organisation")]
    Revoked(String),
}

/// An organisation: an MSP ID and its CA certificates.
#[derive(Debug, Clone)]
pub struct Organization {
    pub msp_id: String,
    roots: Vec<Certificate>,
    intermediates: Vec<Certificate>,
    /// Certificates revoked by the organisation's CRLs: (issuer name DER, serial number), each
    /// from a CRL whose signature its issuing CA's key verifies.
    revoked: Vec<(Bytes, Bytes)>,
}

/// The validity window (seconds) shared by every CA on a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub not_before: i64,
    pub not_after: i64,
}

impl Window {
    pub fn contains(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

impl Organization {
    /// An organisation from PEM certificates. Roots must be self-signed CA certificates and every
    /// intermediate must chain to a root.
    pub fn from_pem(
        msp_id: &str,
        roots: &[impl AsRef<[u8]>],
        intermediates: &[impl AsRef<[u8]>],
    ) -> Result<Self, String> {
        let roots = parse(roots).map_err(|e| format!("organisation '{msp_id}' root certificate: {e}"))?;
        let intermediates =
            parse(intermediates).map_err(|e| format!("organisation '{msp_id}' intermediate certificate: {e}"))?;
        if roots.is_empty() {
            return Err(format!("organisation '{msp_id}' has no root certificate"));
        }
        for root in &roots {
            if !root.is_ca || !root.issued_by(root) {
                return Err(format!(
                    "organisation '{msp_id}': root {} is not a self-signed CA certificate",
                    root.subject
                ));
            }
        }
        let mut org = Organization { msp_id: msp_id.to_owned(), roots, intermediates: Vec::new(), revoked: Vec::new() };
        // Accept intermediates issued by a root or by one already accepted, until none is left
        // (so they may come in any order and chain through each other).
        let mut pending = intermediates;
        while !pending.is_empty() {
            let before = pending.len();
            let (issued, rest): (Vec<_>, Vec<_>) =
                pending.into_iter().partition(|ca| ca.is_ca && org.chain_window(ca, &org.intermediates).is_some());
            org.intermediates.extend(issued);
            pending = rest;
            if pending.len() == before {
                return Err(format!(
                    "organisation '{msp_id}': intermediate {} is not a CA certificate issued by its roots",
                    pending[0].subject
                ));
            }
        }
        Ok(org)
    }

    /// The organisation with its certificate revocation lists (PEM `X509 CRL` blocks), as a
    /// Fabric MSP's `revocation_list`: each must be issued by one of its CAs and carry that CA's
    /// signature; the certificates it lists are refused by [`Organization::validate`].
    pub fn with_crls(mut self, crls: &[impl AsRef<[u8]>]) -> Result<Self, String> {
        use x509_parser::prelude::FromDer as _;
        for pem in crls {
            for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_ref()) {
                let block = block.map_err(|e| format!("organisation '{}' CRL: not PEM: {e}", self.msp_id))?;
                if block.label != "X509 CRL" {
                    continue;
                }
                let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&block.contents)
                    .map_err(|e| format!("organisation '{}': not a CRL: {e}", self.msp_id))?;
                let issuer = crl.issuer().as_raw();
                let ca = self
                    .roots
                    .iter()
                    .chain(&self.intermediates)
                    .find(|ca| ca.subject_raw.as_ref() == issuer)
                    .ok_or_else(|| {
                        format!("organisation '{}': a CRL issued by {} , none of its CAs", self.msp_id, crl.issuer())
                    })?;
                let signature = crl.signature_value.data.as_ref();
                let tbs = crl.tbs_cert_list.as_ref();
                let signed = match &ca.public_key {
                    PublicKey::EcdsaP256(k) => {
                        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, k)
                            .verify(tbs, signature)
                    }
                    PublicKey::Ed25519(k) => {
                        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, k).verify(tbs, signature)
                    }
                };
                if signed.is_err() {
                    return Err(format!(
                        "organisation '{}': the CRL of {} does not carry its signature",
                        self.msp_id, ca.subject
                    ));
                }
                for revoked in crl.iter_revoked_certificates() {
                    let serial = Bytes::copy_from_slice(revoked.raw_serial());
                    self.revoked.push((ca.subject_raw.clone(), serial));
                }
            }
        }
        Ok(self)
    }

    /// Checks that `cert` was issued by this organisation's CAs and is not revoked, and returns
    /// the validity window of the CAs on its chain (to be checked against the time of each use).
    pub fn validate(&self, cert: &Certificate) -> Result<Window, ChainError> {
        if cert.is_ca {
            return Err(ChainError::IsCa);
        }
        let window =
            self.chain_window(cert, &self.intermediates).ok_or_else(|| ChainError::NotIssued(self.msp_id.clone()))?;
        if self.revoked.iter().any(|(issuer, serial)| *issuer == cert.issuer_raw && *serial == cert.serial) {
            return Err(ChainError::Revoked(cert.subject.clone()));
        }
        Ok(window)
    }

    /// The window of the first chain found from `cert` to a root through `intermediates`.
    fn chain_window(&self, cert: &Certificate, intermediates: &[Certificate]) -> Option<Window> {
        let mut window = Window { not_before: i64::MIN, not_after: i64::MAX };
        let mut current = cert;
        for _ in 0..=MAX_CHAIN {
            if let Some(root) = self.roots.iter().find(|r| current.issued_by(r)) {
                window.not_before = window.not_before.max(root.not_before);
                window.not_after = window.not_after.min(root.not_after);
                return Some(window);
            }
            current = intermediates.iter().find(|ca| !std::ptr::eq(*ca, current) && current.issued_by(ca))?;
            window.not_before = window.not_before.max(current.not_before);
            window.not_after = window.not_after.min(current.not_after);
        }
        None
    }

    /// The subject of the chain's CA that is not valid at `now`, for messages.
    pub fn invalid_ca(&self, now: i64) -> Option<String> {
        self.roots.iter().chain(&self.intermediates).find(|c| !c.valid_at(now)).map(|c| c.subject.clone())
    }
}
