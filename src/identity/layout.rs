//! The on-disk layout of an organisation and its identities, and the file helpers that keep it:
//!
//! ```text
//! <org-dir>/
//!   ca/cert.pem  ca/key.pem        the root CA (the key stays here)
//!   intermediates/<name>/cert.pem key.pem   intermediate CAs (keys stay here)
//!   msp/mspid                      the MSP ID, one line
//!   msp/cacerts/ca.pem             root certificates (the public MSP definition the OSN loads)
//!   msp/intermediatecerts/*.pem    optional
//!   identities/<name>/             one identity, a Fabric-like local MSP directory:
//!     mspid  signcerts/cert.pem  keystore/key.pem  cacerts/ca.pem
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::cert::pem_certificates;

pub const MSPID_FILE: &str = "mspid";
pub const CA_DIR: &str = "ca";
pub const INTERMEDIATES_DIR: &str = "intermediates";
pub const MSP_DIR: &str = "msp";
pub const CACERTS_DIR: &str = "cacerts";
pub const INTERMEDIATECERTS_DIR: &str = "intermediatecerts";
pub const IDENTITIES_DIR: &str = "identities";
pub const SIGNCERTS_DIR: &str = "signcerts";
pub const KEYSTORE_DIR: &str = "keystore";
pub const CERT_FILE: &str = "cert.pem";
pub const KEY_FILE: &str = "key.pem";
pub const CA_CERT_FILE: &str = "ca.pem";

/// The public definition of one organisation's MSP, as read from `<org-dir>/msp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgMsp {
    pub msp_id: String,
    /// One PEM certificate per entry (a file may hold several).
    pub root_certs_pem: Vec<Vec<u8>>,
    /// One PEM certificate per entry; empty when there are none.
    pub intermediate_certs_pem: Vec<Vec<u8>>,
}

/// Reads an MSP directory (`mspid`, `cacerts/*.pem`, optional `intermediatecerts/*.pem`).
/// No verification: the certificates are only split into PEM blocks.
pub fn load_org_msp(msp_dir: &Path) -> anyhow::Result<OrgMsp> {
    let msp_id = read_msp_id(msp_dir)?;
    let root_certs_pem = read_cert_dir(&msp_dir.join(CACERTS_DIR))?;
    if root_certs_pem.is_empty() {
        bail!("{}: no root certificate", msp_dir.join(CACERTS_DIR).display());
    }
    let intermediates = msp_dir.join(INTERMEDIATECERTS_DIR);
    let intermediate_certs_pem = if intermediates.is_dir() { read_cert_dir(&intermediates)? } else { Vec::new() };
    Ok(OrgMsp { msp_id, root_certs_pem, intermediate_certs_pem })
}

/// The MSP ID in `<dir>/mspid`, trimmed; an error names the file.
pub fn read_msp_id(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join(MSPID_FILE);
    let text = read(&path)?;
    let id = String::from_utf8(text).with_context(|| format!("{}: not UTF-8", path.display()))?;
    let id = id.trim();
    if id.is_empty() {
        bail!("{}: empty MSP ID", path.display());
    }
    Ok(id.to_string())
}

/// Every PEM certificate of every `*.pem` file in `dir` (files in name order), each re-armoured
/// on its own.
pub fn read_cert_dir(dir: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for path in pem_files(dir)? {
        let ders = pem_certificates(&read(&path)?).with_context(|| path.display().to_string())?;
        out.extend(ders.iter().map(|der| super::key::pem_encode("CERTIFICATE", der).into_bytes()));
    }
    Ok(out)
}

/// The `*.pem` files of a directory, sorted by name.
pub fn pem_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = fs::read_dir(dir).with_context(|| format!("cannot read directory {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| format!("cannot read directory {}", dir.display()))?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "pem") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// `dir/preferred` if it exists, else the only regular file in `dir` (Fabric tools name key files
/// after the key, e.g. `<ski>_sk`).
pub fn pick_file(dir: &Path, preferred: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(preferred);
    if path.is_file() {
        return Ok(path);
    }
    let entries = fs::read_dir(dir).with_context(|| format!("cannot read directory {}", dir.display()))?;
    let files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    match files.as_slice() {
        [only] => Ok(only.clone()),
        [] => bail!("{}: missing", path.display()),
        _ => bail!("{}: missing, and {} holds several files", path.display(), dir.display()),
    }
}

/// Reads a file; the error names it.
pub fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Writes a public file that must not exist yet, creating its parent directories.
pub fn write_new(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    write_new_mode(path, contents, 0o644)
}

/// Writes a private key file (mode 0600) that must not exist yet.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    write_new_mode(path, contents, 0o600)
}

fn write_new_mode(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents).with_context(|| format!("cannot write {}", path.display()))
}
