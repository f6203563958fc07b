//! A Fabric MSP directory (as cryptogen or Fabric's CA client writes it) read into the
//! `FabricMSPConfig` that configtxgen puts in a genesis block for it, the way Fabric 1.4's
//! `msp.GetVerifyingMspConfig` reads it: `cacerts/` (required), `intermediatecerts/`,
//! `admincerts/`, `tlscacerts/`, `tlsintermediatecerts/`, `crls/` (each file holding PEM, in name
//! order, kept as the file's bytes), and `config.yaml` (NodeOUs, organisational-unit identifiers,
//! their certificates read from the paths it gives). No signing identity: this is what others
//! verify against.

use std::path::Path;

use anyhow::{bail, Context as _};
use serde::Deserialize;

use crate::proto::msp::{FabricCryptoConfig, FabricMspConfig, FabricNodeOUs, FabricOuIdentifier};

/// `config.yaml` of an MSP directory, as far as a verifying configuration reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Configuration {
    #[serde(default)]
    organizational_unit_identifiers: Vec<OuIdentifier>,
    #[serde(rename = "NodeOUs")]
    node_ous: Option<NodeOus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OuIdentifier {
    #[serde(default)]
    certificate: String,
    #[serde(default)]
    organizational_unit_identifier: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeOus {
    #[serde(default)]
    enable: bool,
    #[serde(rename = "ClientOUIdentifier")]
    client: Option<OuIdentifier>,
    #[serde(rename = "PeerOUIdentifier")]
    peer: Option<OuIdentifier>,
    #[serde(rename = "AdminOUIdentifier")]
    admin: Option<OuIdentifier>,
    #[serde(rename = "OrdererOUIdentifier")]
    orderer: Option<OuIdentifier>,
}

/// The files of `dir` that hold PEM, in name order, each as its bytes; None if `dir` is not there.
fn pem_files(dir: &Path) -> anyhow::Result<Option<Vec<bytes::Bytes>>> {
    if !dir.exists() {
        return Ok(None);
    }
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for path in names {
        let raw = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        // Fabric skips a file without PEM content (with a warning).
        if String::from_utf8_lossy(&raw).contains("-----BEGIN ") {
            out.push(raw.into());
        }
    }
    Ok(Some(out))
}

/// The `FabricMSPConfig` of the MSP directory `dir`, for MSP ID `msp_id`.
pub fn verifying_config(dir: &Path, msp_id: &str) -> anyhow::Result<FabricMspConfig> {
    let root_certs = pem_files(&dir.join("cacerts"))?.unwrap_or_default();
    if root_certs.is_empty() {
        bail!("{}: no CA certificate in cacerts/", dir.display());
    }
    let list = |name: &str| pem_files(&dir.join(name)).map(Option::unwrap_or_default);
    let (mut ou_identifiers, mut node_ous) = (Vec::new(), None);
    let config_file = dir.join("config.yaml");
    if config_file.exists() {
        let raw = std::fs::read(&config_file).with_context(|| format!("cannot read {}", config_file.display()))?;
        let config: Configuration = serde_norway::from_slice(&raw)
            .with_context(|| format!("{} is not an MSP configuration", config_file.display()))?;
        for id in config.organizational_unit_identifiers {
            let path = dir.join(&id.certificate);
            let certificate =
                std::fs::read(&path).with_context(|| format!("OrganizationalUnit certificate {}", path.display()))?;
            ou_identifiers.push(FabricOuIdentifier {
                certificate: certificate.into(),
                organizational_unit_identifier: id.organizational_unit_identifier,
            });
        }
        if let Some(n) = config.node_ous.filter(|n| n.enable) {
            // A role whose identifier is empty is not classified; a certificate that cannot be
            // read is left out (Fabric logs it and goes on).
            let role = |id: Option<OuIdentifier>| {
                id.filter(|i| !i.organizational_unit_identifier.is_empty()).map(|i| FabricOuIdentifier {
                    certificate: if i.certificate.is_empty() {
                        Default::default()
                    } else {
                        std::fs::read(dir.join(&i.certificate)).map(Into::into).unwrap_or_default()
                    },
                    organizational_unit_identifier: i.organizational_unit_identifier,
                })
            };
            node_ous = Some(FabricNodeOUs {
                enable: true,
                client_ou_identifier: role(n.client),
                peer_ou_identifier: role(n.peer),
                admin_ou_identifier: role(n.admin),
                orderer_ou_identifier: role(n.orderer),
            });
        }
    }
    Ok(FabricMspConfig {
        name: msp_id.to_owned(),
        root_certs,
        intermediate_certs: list("intermediatecerts")?,
        admins: list("admincerts")?,
        revocation_list: list("crls")?,
        signing_identity: None,
        organizational_unit_identifiers: ou_identifiers,
        crypto_config: Some(FabricCryptoConfig {
            signature_hash_family: "SHA2".into(),
            identity_identifier_hash_function: "SHA256".into(),
        }),
        tls_root_certs: list("tlscacerts")?,
        tls_intermediate_certs: list("tlsintermediatecerts")?,
        fabric_node_ous: node_ous,
    })
}
