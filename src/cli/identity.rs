//! `osn identity`: make and inspect identities, like Fabric's cryptogen. `ca` creates an
//! organisation, `intermediate` an intermediate CA in it, `issue` an identity, `revoke` adds one
//! to its CA's revocation list, `show` prints one.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use time::OffsetDateTime;

use crate::identity::layout::{read, read_msp_id, CA_DIR, CERT_FILE, SIGNCERTS_DIR};
use crate::identity::{self, CertInfo, KeyType, Role, Validity};

#[derive(clap::Args, Debug)]
pub struct IdentityArgs {
    #[command(subcommand)]
    pub command: IdentityCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum IdentityCommand {
    /// Create an organisation: a root CA and its public MSP definition.
    Ca {
        /// The organisation's MSP ID, e.g. Org1MSP.
        #[arg(long)]
        msp_id: String,
        /// The organisation's directory (must not hold a CA yet).
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        key_type: KeyType,
        /// How long the CA certificate is valid, e.g. 10y.
        #[arg(long, default_value = "10y", value_parser = humantime::parse_duration)]
        validity: Duration,
    },
    /// Create an intermediate CA signed by the organisation's root.
    Intermediate {
        /// The organisation's directory.
        #[arg(long)]
        org: PathBuf,
        /// The intermediate's name (its CN and directory name).
        #[arg(long)]
        name: String,
        #[arg(long, value_enum, default_value_t)]
        key_type: KeyType,
        /// How long the certificate is valid, e.g. 5y.
        #[arg(long, default_value = "5y", value_parser = humantime::parse_duration)]
        validity: Duration,
    },
    /// Issue an identity of an organisation; prints its directory.
    Issue {
        /// The organisation's directory.
        #[arg(long)]
        org: PathBuf,
        /// The identity's name (its CN and directory name).
        #[arg(long)]
        name: String,
        /// The role, written as the certificate's OU.
        #[arg(long, value_enum)]
        role: Role,
        #[arg(long, value_enum, default_value_t)]
        key_type: KeyType,
        /// How long the certificate is valid, e.g. 1y or 90days.
        #[arg(long, default_value = "1y", value_parser = humantime::parse_duration)]
        validity: Duration,
        /// Start of validity, RFC 3339 (default: 5 minutes ago).
        #[arg(long, value_parser = parse_time)]
        not_before: Option<OffsetDateTime>,
        /// End of validity, RFC 3339 (default: not-before + validity).
        #[arg(long, value_parser = parse_time)]
        not_after: Option<OffsetDateTime>,
        /// Sign with this intermediate CA instead of the root.
        #[arg(long)]
        issuer: Option<String>,
    },
    /// Revoke an identity: its issuing CA's certificate revocation list in `<org>/msp/crls/`
    /// (Fabric's MSP layout) gets its serial number. The next MSP value made from the
    /// organisation's directory carries the CRL (a config update must put it in a channel, e.g.
    /// `osn channel config update --add-org <org>/msp`); prints the CRL's path.
    Revoke {
        /// The organisation's directory.
        #[arg(long)]
        org: PathBuf,
        /// The identity's directory.
        #[arg(long)]
        identity: PathBuf,
        /// The intermediate CA that issued it (default: the root).
        #[arg(long)]
        issuer: Option<String>,
    },
    /// Show an identity directory, an organisation's CA, or a PEM certificate file.
    Show {
        /// An identity directory, an organisation directory or a certificate file.
        path: PathBuf,
    },
}

pub async fn run(args: IdentityArgs) -> anyhow::Result<()> {
    match args.command {
        IdentityCommand::Ca { msp_id, dir, key_type, validity } => {
            identity::create_ca(&msp_id, &dir, key_type, Validity::from_now(validity))?;
            println!("{}", dir.display());
        }
        IdentityCommand::Intermediate { org, name, key_type, validity } => {
            check_org(&org)?;
            let dir = identity::issue_intermediate(&org, &name, key_type, Validity::from_now(validity))?;
            println!("{}", dir.display());
        }
        IdentityCommand::Issue { org, name, role, key_type, validity, not_before, not_after, issuer } => {
            check_org(&org)?;
            let validity = validity_of(validity, not_before, not_after)?;
            let dir = identity::issue_by(&org, issuer.as_deref(), &name, role, key_type, validity)?;
            println!("{}", dir.display());
        }
        IdentityCommand::Revoke { org, identity, issuer } => {
            let crl = identity::revoke(&org, &identity, issuer.as_deref())?;
            println!("{}", crl.display());
        }
        IdentityCommand::Show { path } => show(&path)?,
    }
    Ok(())
}

fn check_org(org: &Path) -> anyhow::Result<()> {
    if !org.is_dir() {
        bail!("{}: no such organisation directory (create it with `osn identity ca`)", org.display());
    }
    Ok(())
}

fn parse_time(text: &str) -> Result<OffsetDateTime, humantime::TimestampError> {
    humantime::parse_rfc3339_weak(text).map(OffsetDateTime::from)
}

/// Explicit bounds win; a missing start is 5 minutes ago, a missing end is start + `lifetime`.
fn validity_of(
    lifetime: Duration,
    not_before: Option<OffsetDateTime>,
    not_after: Option<OffsetDateTime>,
) -> anyhow::Result<Validity> {
    let default = Validity::from_now(lifetime);
    let not_before = not_before.unwrap_or(default.not_before);
    let not_after = not_after.unwrap_or_else(|| identity::saturating_add(not_before, lifetime));
    Validity::new(not_before, not_after)
}

fn show(path: &Path) -> anyhow::Result<()> {
    let (msp_id, cert_path) = if path.join(SIGNCERTS_DIR).is_dir() {
        (Some(read_msp_id(path)?), identity::layout::pick_file(&path.join(SIGNCERTS_DIR), CERT_FILE)?)
    } else if path.join(CA_DIR).is_dir() {
        (Some(read_msp_id(&path.join("msp"))?), path.join(CA_DIR).join(CERT_FILE))
    } else if path.is_file() {
        (None, path.to_path_buf())
    } else {
        bail!("{}: neither an identity directory, an organisation directory nor a file", path.display());
    };
    let info = CertInfo::from_pem(&read(&cert_path)?).with_context(|| cert_path.display().to_string())?;
    print_info(msp_id.as_deref(), &cert_path, &info);
    Ok(())
}

fn print_info(msp_id: Option<&str>, cert_path: &Path, info: &CertInfo) {
    let now = OffsetDateTime::now_utc();
    let state = if now < info.not_before {
        "not yet valid"
    } else if now > info.not_after {
        "expired"
    } else {
        "valid"
    };
    println!("certificate  {}", cert_path.display());
    println!("mspid        {}", msp_id.unwrap_or("-"));
    println!("subject      {}", info.subject);
    println!("role (OU)    {}", info.role().map_or("-", Role::as_str));
    println!("ca           {}", if info.is_ca { "yes" } else { "no" });
    println!("issuer       {}", info.issuer);
    println!("not before   {}", rfc3339(info.not_before));
    println!("not after    {}  ({state})", rfc3339(info.not_after));
    println!("key type     {}", info.key_type.map_or_else(|| "unsupported".to_string(), |k| k.to_string()));
    println!("sha256       {}", info.sha256_fingerprint);
}

fn rfc3339(t: OffsetDateTime) -> String {
    humantime::format_rfc3339_seconds(SystemTime::from(t)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_defaults_and_explicit_bounds() {
        let year = Duration::from_secs(365 * 24 * 3600);
        let start = parse_time("2020-01-01T00:00:00Z").unwrap();
        let end = parse_time("2021-06-01T12:00:00Z").unwrap();
        let v = validity_of(year, Some(start), None).unwrap();
        assert_eq!((v.not_before, v.not_after), (start, start + year));
        let v = validity_of(year, Some(start), Some(end)).unwrap();
        assert_eq!((v.not_before, v.not_after), (start, end));
        let v = validity_of(year, None, None).unwrap();
        assert!(v.not_before < OffsetDateTime::now_utc() && v.not_after > OffsetDateTime::now_utc());
        assert!(validity_of(year, Some(end), Some(start)).is_err());
        let v = validity_of(Duration::from_secs(u64::MAX), None, None).unwrap();
        assert_eq!(v.not_after.year(), 9999);
    }
}
