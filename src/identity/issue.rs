//! A small certificate authority per organisation, like Fabric's cryptogen: a self-signed root,
//! optional intermediates, and leaf identities whose role is an OU of their subject.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyUsagePurpose, SerialNumber};
use time::OffsetDateTime;

use super::cert::{pem_certificates, subject_name};
use super::key::PrivateKey;
use super::layout::{
    read, read_msp_id, write_new, write_private, CACERTS_DIR, CA_CERT_FILE, CA_DIR, CERT_FILE, IDENTITIES_DIR,
    INTERMEDIATECERTS_DIR, INTERMEDIATES_DIR, KEYSTORE_DIR, KEY_FILE, MSPID_FILE, MSP_DIR, SIGNCERTS_DIR,
};
use super::{KeyType, Role};

/// An MSP directory's Fabric configuration file (NodeOUs).
pub const NODE_OUS_FILE: &str = "config.yaml";
/// How far before "now" a default validity period starts, so that clocks slightly behind ours
/// accept a certificate made a moment ago.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// Default lifetime of a root or intermediate CA certificate: 10 years.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Default lifetime of an identity certificate: 1 year.
pub const LEAF_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// A certificate's validity period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From `now - 5 minutes` to `now + lifetime` (at most the end of year 9999).
    pub fn from_now(lifetime: Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        Validity { not_before: now - BACKDATE, not_after: saturating_add(now, lifetime) }
    }

    /// An explicit period; `not_before` must not be after `not_after`.
    pub fn new(not_before: OffsetDateTime, not_after: OffsetDateTime) -> anyhow::Result<Self> {
        ensure!(not_before <= not_after, "not-before {not_before} is after not-after {not_after}");
        Ok(Validity { not_before, not_after })
    }

    /// The default for a CA: 10 years from now.
    pub fn ca_default() -> Self {
        Self::from_now(CA_LIFETIME)
    }

    /// The default for an identity: 1 year from now.
    pub fn leaf_default() -> Self {
        Self::from_now(LEAF_LIFETIME)
    }
}

/// Creates an organisation: a self-signed root CA (CN `ca.<msp_id>`, O `msp_id`) in `dir/ca`, and
/// the public MSP definition in `dir/msp`. Refuses to overwrite an existing CA or MSP.
pub fn create_ca(msp_id: &str, dir: &Path, key_type: KeyType, validity: Validity) -> anyhow::Result<()> {
    check_msp_id(msp_id)?;
    for existing in [dir.join(CA_DIR), dir.join(MSP_DIR)] {
        if existing.exists() {
            bail!("{} already exists: refusing to overwrite an organisation", existing.display());
        }
    }
    let (key, key_pem) = PrivateKey::generate(key_type)?;
    let mut params = base_params(validity);
    params.distinguished_name =
        dn(&[(DnType::OrganizationName, msp_id), (DnType::CommonName, &format!("ca.{msp_id}"))]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = ca_key_usages();
    let cert_pem = params.self_signed(&key).context("cannot sign the root CA certificate")?.pem();

    write_private(&dir.join(CA_DIR).join(KEY_FILE), key_pem.as_bytes())?;
    write_new(&dir.join(CA_DIR).join(CERT_FILE), cert_pem.as_bytes())?;
    write_new(&dir.join(MSP_DIR).join(MSPID_FILE), format!("{msp_id}\n").as_bytes())?;
    write_new(&dir.join(MSP_DIR).join(CACERTS_DIR).join(CA_CERT_FILE), cert_pem.as_bytes())?;
    write_node_ous(&dir.join(MSP_DIR))
}

/// The NodeOUs `config.yaml` of an organisation's MSP directory, as cryptogen writes it: the
/// role OUs OSN issues (`client`, `peer`, `admin`, `orderer`) classify identities under the root
/// CA, so Fabric's role principals (and admins by OU) judge them. Written when missing.
pub fn write_node_ous(msp_dir: &Path) -> anyhow::Result<()> {
    let path = msp_dir.join(NODE_OUS_FILE);
    if path.exists() {
        return Ok(());
    }
    let role = |key: &str, ou: &str| {
        format!("  {key}:\n    Certificate: {CACERTS_DIR}/{CA_CERT_FILE}\n    OrganizationalUnitIdentifier: {ou}\n")
    };
    let text = format!(
        "NodeOUs:\n  Enable: true\n{}{}{}{}",
        role("ClientOUIdentifier", "client"),
        role("PeerOUIdentifier", "peer"),
        role("AdminOUIdentifier", "admin"),
        role("OrdererOUIdentifier", "orderer")
    );
    write_new(&path, text.as_bytes())
}

/// Issues an identity signed by the organisation's root CA; see [`issue_by`].
pub fn issue(org_dir: &Path, name: &str, role: Role, key_type: KeyType, validity: Validity) -> anyhow::Result<PathBuf> {
    issue_by(org_dir, None, name, role, key_type, validity)
}

/// Issues an identity `name` (subject CN `name`, O the MSP ID, OU the role, keyUsage
/// digitalSignature, not a CA), signed by the root CA or by the intermediate CA `issuer`, and writes
/// it to `<org_dir>/identities/<name>/`, which it returns. Refuses to overwrite an identity.
pub fn issue_by(
    org_dir: &Path,
    issuer: Option<&str>,
    name: &str,
    role: Role,
    key_type: KeyType,
    validity: Validity,
) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let msp_id = read_msp_id(&org_dir.join(MSP_DIR))?;
    let ca = Ca::load(org_dir, issuer)?;
    let identities = org_dir.join(IDENTITIES_DIR);
    fs::create_dir_all(&identities).with_context(|| format!("cannot create {}", identities.display()))?;
    let dir = identities.join(name);
    if dir.exists() {
        bail!("{} already exists: refusing to overwrite an identity", dir.display());
    }

    let (key, key_pem) = PrivateKey::generate(key_type)?;
    let mut params = base_params(validity);
    params.distinguished_name = dn(&[
        (DnType::OrganizationName, &msp_id),
        (DnType::OrganizationalUnitName, role.as_str()),
        (DnType::CommonName, name),
    ]);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert_pem = ca.sign(&params, &key)?;

    let roots = read(&org_dir.join(MSP_DIR).join(CACERTS_DIR).join(CA_CERT_FILE))?;
    write_private(&dir.join(KEYSTORE_DIR).join(KEY_FILE), key_pem.as_bytes())?;
    write_new(&dir.join(SIGNCERTS_DIR).join(CERT_FILE), cert_pem.as_bytes())?;
    write_new(&dir.join(MSPID_FILE), format!("{msp_id}\n").as_bytes())?;
    write_new(&dir.join(CACERTS_DIR).join(CA_CERT_FILE), &roots)?;
    if let Some(issuer) = issuer {
        write_new(&dir.join(INTERMEDIATECERTS_DIR).join(format!("{issuer}.pem")), &ca.cert_pem)?;
    }
    Ok(dir)
}

/// Creates an intermediate CA `name` signed by the root (pathLen 0): its key and certificate in
/// `<org_dir>/intermediates/<name>/`, its certificate also in `<org_dir>/msp/intermediatecerts/<name>.pem`.
/// Returns the intermediate's directory.
pub fn issue_intermediate(
    org_dir: &Path,
    name: &str,
    key_type: KeyType,
    validity: Validity,
) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let msp_id = read_msp_id(&org_dir.join(MSP_DIR))?;
    let root = Ca::load(org_dir, None)?;
    let dir = org_dir.join(INTERMEDIATES_DIR).join(name);
    let public = org_dir.join(MSP_DIR).join(INTERMEDIATECERTS_DIR).join(format!("{name}.pem"));
    for existing in [&dir, &public] {
        if existing.exists() {
            bail!("{} already exists: refusing to overwrite an intermediate CA", existing.display());
        }
    }
    let (key, key_pem) = PrivateKey::generate(key_type)?;
    let mut params = base_params(validity);
    params.distinguished_name = dn(&[(DnType::OrganizationName, &msp_id), (DnType::CommonName, name)]);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = ca_key_usages();
    let cert_pem = root.sign(&params, &key)?;

    write_private(&dir.join(KEY_FILE), key_pem.as_bytes())?;
    write_new(&dir.join(CERT_FILE), cert_pem.as_bytes())?;
    write_new(&public, cert_pem.as_bytes())?;
    Ok(dir)
}

/// A CA able to sign: its certificate, the subject name rebuilt from it, and its key.
struct Ca {
    cert_pem: Vec<u8>,
    name: DistinguishedName,
    key: PrivateKey,
}

impl Ca {
    /// The root CA of `org_dir`, or its intermediate `intermediate`.
    fn load(org_dir: &Path, intermediate: Option<&str>) -> anyhow::Result<Self> {
        let dir = match intermediate {
            None => org_dir.join(CA_DIR),
            Some(name) => {
                check_name(name)?;
                org_dir.join(INTERMEDIATES_DIR).join(name)
            }
        };
        if !dir.is_dir() {
            bail!("{}: no such CA directory (create the organisation first)", dir.display());
        }
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        let cert_pem = read(&cert_path)?;
        let der = pem_certificates(&cert_pem)?
            .into_iter()
            .next()
            .with_context(|| format!("{}: no certificate", cert_path.display()))?;
        let name = subject_name(&der).with_context(|| cert_path.display().to_string())?;
        let key = PrivateKey::from_pkcs8_pem(&read(&key_path)?).with_context(|| key_path.display().to_string())?;
        Ok(Ca { cert_pem, name, key })
    }

    /// Signs `params` for the subject key `subject`, returning the certificate PEM.
    fn sign(&self, params: &CertificateParams, subject: &PrivateKey) -> anyhow::Result<String> {
        let mut issuer_params = CertificateParams::default();
        issuer_params.distinguished_name = self.name.clone();
        issuer_params.key_usages = ca_key_usages();
        let issuer = rcgen::Issuer::new(issuer_params, &self.key);
        let mut params = params.clone();
        params.use_authority_key_identifier_extension = true;
        Ok(params.signed_by(subject, &issuer).context("cannot sign the certificate")?.pem())
    }
}

/// Revokes the identity in `identity_dir` (issued by `org_dir`'s root CA, or by its intermediate
/// `issuer`): the CA's certificate revocation list, `<org>/msp/crls/<ca>.pem` (`ca` for the root,
/// the intermediate's name otherwise), is written again with the identity's serial number added
/// to those it revoked already. That is where Fabric's MSP directory keeps CRLs, so the next
/// MSP value made from the directory (configtxgen, `osn channel config update --add-org`) carries
/// it. Returns the CRL's path.
pub fn revoke(org_dir: &Path, identity_dir: &Path, issuer: Option<&str>) -> anyhow::Result<PathBuf> {
    use x509_parser::prelude::FromDer as _;
    let ca = Ca::load(org_dir, issuer)?;
    let cert_path = identity_dir.join(SIGNCERTS_DIR).join(CERT_FILE);
    let cert_der = pem_certificates(&read(&cert_path)?)?
        .into_iter()
        .next()
        .with_context(|| format!("{}: no certificate", cert_path.display()))?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&cert_der)
        .map_err(|e| anyhow::anyhow!("{}: {e}", cert_path.display()))?;
    let crl_path = org_dir.join(MSP_DIR).join("crls").join(format!("{}.pem", issuer.unwrap_or(CA_DIR)));
    // The serials the CA revoked already.
    let mut serials: Vec<Vec<u8>> = Vec::new();
    if crl_path.exists() {
        for block in x509_parser::pem::Pem::iter_from_buffer(&read(&crl_path)?) {
            let block = block.map_err(|e| anyhow::anyhow!("{}: {e}", crl_path.display()))?;
            let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&block.contents)
                .map_err(|e| anyhow::anyhow!("{}: {e}", crl_path.display()))?;
            serials.extend(crl.iter_revoked_certificates().map(|r| r.raw_serial().to_vec()));
        }
    }
    let serial = cert.tbs_certificate.raw_serial().to_vec();
    if !serials.contains(&serial) {
        serials.push(serial);
    }
    let now = OffsetDateTime::now_utc();
    let params = rcgen::CertificateRevocationListParams {
        this_update: now - BACKDATE,
        next_update: saturating_add(now, LEAF_LIFETIME),
        crl_number: random_serial(),
        issuing_distribution_point: None,
        revoked_certs: serials
            .into_iter()
            .map(|s| rcgen::RevokedCertParams {
                serial_number: SerialNumber::from_slice(&s),
                revocation_time: now,
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    let mut issuer_params = CertificateParams::default();
    issuer_params.distinguished_name = ca.name.clone();
    issuer_params.key_usages = ca_key_usages();
    let signer = rcgen::Issuer::new(issuer_params, &ca.key);
    let crl = params.signed_by(&signer).context("cannot sign the CRL")?;
    fs::create_dir_all(crl_path.parent().expect("in msp/crls"))
        .with_context(|| format!("cannot create {}", crl_path.display()))?;
    fs::write(&crl_path, crl.pem().context("cannot encode the CRL")?)
        .with_context(|| format!("cannot write {}", crl_path.display()))?;
    Ok(crl_path)
}

/// `t + d`, or the last second of year 9999 when that is later or out of range.
pub fn saturating_add(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    let max = time::PrimitiveDateTime::MAX.assume_utc().replace_nanosecond(0).unwrap_or(t);
    time::Duration::try_from(d).ok().and_then(|d| t.checked_add(d)).map_or(max, |sum| sum.min(max))
}

fn base_params(validity: Validity) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.serial_number = Some(random_serial());
    params
}

fn dn(entries: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (ty, value) in entries {
        dn.push(ty.clone(), *value);
    }
    dn
}

fn ca_key_usages() -> Vec<KeyUsagePurpose> {
    vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature]
}

/// 128 random bits, positive, with no leading zero byte.
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn check_msp_id(msp_id: &str) -> anyhow::Result<()> {
    ensure!(
        !msp_id.is_empty() && msp_id.chars().all(|c| c.is_ascii_graphic()),
        "invalid MSP ID {msp_id:?}: printable ASCII without spaces expected"
    );
    Ok(())
}

/// A name that is safe as a directory name: letters, digits, `.`, `_`, `-`, not starting with `.`.
fn check_name(name: &str) -> anyhow::Result<()> {
    ensure!(
        !name.is_empty()
            && !name.starts_with('.')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
        "invalid name {name:?}: letters, digits, '.', '_' and '-' expected, not starting with '.'"
    );
    Ok(())
}
