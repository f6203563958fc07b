//! Reading what an X.509 certificate says about an identity: names, role OU, validity, key type,
//! fingerprint. Reading only: chains and signatures are checked by the verifier, not here.

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ED25519};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::X509Name;

use super::{KeyType, Role};

/// The facts of one certificate that `osn identity show` prints and tests check.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// Subject distinguished name, e.g. `CN=client1, OU=client, O=Org1MSP`.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// The subject's common name, if any.
    pub common_name: Option<String>,
    /// The subject's organisation, if any.
    pub organization: Option<String>,
    /// The subject's organisational units, in order (the role is one of them).
    pub organizational_units: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// `None` for a key type OSN does not sign with.
    pub key_type: Option<KeyType>,
    /// Whether basicConstraints says CA.
    pub is_ca: bool,
    /// The raw subject public key (content of the `subjectPublicKey` BIT STRING).
    pub public_key: Vec<u8>,
    /// SHA-256 of the DER certificate, upper-case hex pairs joined by `:`.
    pub sha256_fingerprint: String,
}

impl CertInfo {
    /// Reads the first certificate of a PEM document.
    pub fn from_pem(pem: &[u8]) -> anyhow::Result<Self> {
        let der = CertificateDer::from_pem_slice(pem).context("no PEM certificate")?;
        Self::from_der(&der)
    }

    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> anyhow::Result<Self> {
        let (_, cert) = X509Certificate::from_der(der).context("not an X.509 certificate")?;
        let subject = cert.subject();
        let validity = cert.validity();
        Ok(CertInfo {
            subject: subject.to_string(),
            issuer: cert.issuer().to_string(),
            common_name: first_str(subject.iter_common_name()),
            organization: first_str(subject.iter_organization()),
            organizational_units: subject
                .iter_organizational_unit()
                .filter_map(|a| a.as_str().ok())
                .map(String::from)
                .collect(),
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
            key_type: key_type_of(&cert),
            is_ca: cert.is_ca(),
            public_key: cert.public_key().subject_public_key.data.to_vec(),
            sha256_fingerprint: fingerprint(der),
        })
    }

    /// The Fabric NodeOU role: the first OU that names one.
    pub fn role(&self) -> Option<Role> {
        self.organizational_units.iter().find_map(|ou| ou.parse().ok())
    }

    /// Whether `now` lies within the validity period (both ends inclusive).
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

fn first_str<'a>(mut attrs: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>) -> Option<String> {
    attrs.next().and_then(|a| a.as_str().ok()).map(String::from)
}

fn key_type_of(cert: &X509Certificate<'_>) -> Option<KeyType> {
    let alg = &cert.public_key().algorithm;
    if alg.algorithm == OID_SIG_ED25519 {
        return Some(KeyType::Ed25519);
    }
    let curve = alg.parameters.as_ref().and_then(|p| p.as_oid().ok());
    (alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY && curve == Some(OID_EC_P256)).then_some(KeyType::EcdsaP256)
}

/// SHA-256 of `der` as `AB:CD:…`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// The DER of every certificate in a PEM document, in order.
pub fn pem_certificates(pem: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    CertificateDer::pem_slice_iter(pem).map(|c| c.map(|c| c.to_vec()).context("malformed PEM certificate")).collect()
}

/// Used by issuing to rebuild a CA's subject name as rcgen needs it to sign.
pub(crate) fn subject_name(der: &[u8]) -> anyhow::Result<rcgen::DistinguishedName> {
    let (_, cert) = X509Certificate::from_der(der).context("not an X.509 certificate")?;
    to_rcgen_name(cert.subject())
}

fn to_rcgen_name(name: &X509Name<'_>) -> anyhow::Result<rcgen::DistinguishedName> {
    use x509_parser::der_parser::asn1_rs::Tag;
    let mut dn = rcgen::DistinguishedName::new();
    for attr in name.iter_attributes() {
        let arcs: Vec<u64> = attr.attr_type().iter().context("attribute type OID does not fit in u64 arcs")?.collect();
        let text = attr.as_str().context("attribute value is not a string")?.to_string();
        let value = match attr.attr_value().tag() {
            Tag::PrintableString => rcgen::DnValue::PrintableString(text.try_into()?),
            Tag::Ia5String => rcgen::DnValue::Ia5String(text.try_into()?),
            _ => rcgen::DnValue::Utf8String(text),
        };
        dn.push(rcgen::DnType::from_oid(&arcs), value);
    }
    Ok(dn)
}
