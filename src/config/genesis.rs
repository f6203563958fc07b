//! The genesis configurations the configuration file describes: the system channel's (its
//! creators, batch size and timeout, channel limit, orderer organisation) and each declared
//! channel's (organisations, policies, batch size), held to the limits every channel
//! configuration is held to.

use std::collections::BTreeMap;

use super::{ChannelSettings, PolicyConfig, SystemConfig};
use crate::core::config::{validate_batch_size, validate_batch_timeout};
use crate::proto::osn::{ChannelConfig, Organization};

/// The system channel's genesis configuration: the creators as its organisations (admins of any
/// one of them may create channels: its Writers policy), its batch size, the default batch
/// timeout of new channels, the channel limit, and the orderer organisation.
pub fn system_config(
    system: &SystemConfig,
    orgs: &BTreeMap<String, Organization>,
    orderer: Option<&Organization>,
) -> Result<ChannelConfig, String> {
    let mut organizations = Vec::new();
    if system.creators.is_empty() {
        organizations.extend(orgs.values().cloned());
    }
    for name in &system.creators {
        let org = orgs
            .get(name)
            .ok_or_else(|| format!("system.creators names '{name}', which no [[organizations]] entry defines"))?;
        organizations.push(org.clone());
    }
    let ids: Vec<String> = organizations.iter().map(|o| o.msp_id.clone()).collect();
    let admins_of_one = PolicyConfig { admins_of: ids.clone(), at_least: Some(1), ..Default::default() };
    validate_batch_size(&system.batch_size.into())
        .and_then(|()| validate_batch_timeout(system.batch_timeout))
        .map_err(|e| format!("system.batch-size and system.batch-timeout: {e}"))?;
    Ok(ChannelConfig {
        sequence: 0,
        batch_size: Some(system.batch_size.into()),
        organizations,
        writers: (!ids.is_empty()).then(|| admins_of_one.to_policy().map(|p| p.to_proto())).transpose()?,
        readers: None,
        admins: None,
        orderer_organizations: orderer.cloned().into_iter().collect(),
        batch_timeout: humantime::format_duration(system.batch_timeout).to_string(),
        max_channels: system.max_channels,
    })
}

/// The consensus configuration of a new channel (its genesis block): batch size, organisations
/// (`orgs`, by MSP ID, loaded from `[[organizations]]`), policies, and the orderer organisation.
pub fn channel_config(
    ch: &ChannelSettings,
    orgs: &BTreeMap<String, Organization>,
    orderer: Option<&Organization>,
) -> Result<ChannelConfig, String> {
    let names: Vec<&String> =
        if ch.organizations.is_empty() { orgs.keys().collect() } else { ch.organizations.iter().collect() };
    let mut organizations = Vec::new();
    for name in names {
        let org = orgs.get(name).ok_or_else(|| {
            let known: Vec<&str> = orgs.keys().map(String::as_str).collect();
            format!(
                "channel '{}' names organisation '{name}', which no [[organizations]] entry defines (defined: {})",
                ch.name,
                known.join(", ")
            )
        })?;
        organizations.push(org.clone());
    }
    if organizations.is_empty() {
        return Err(format!(
            "channel '{}' has no organisations, so nobody could write to or read from it: add [[organizations]] entries",
            ch.name
        ));
    }
    let policy = |p: &Option<PolicyConfig>| -> Result<_, String> {
        p.as_ref()
            .map(|p| p.to_policy().map(|p| p.to_proto()))
            .transpose()
            .map_err(|e| format!("channel '{}': {e}", ch.name))
    };
    let config = ChannelConfig {
        sequence: 0,
        batch_size: Some(ch.batch_size.into()),
        organizations,
        writers: policy(&ch.writers)?,
        readers: policy(&ch.readers)?,
        admins: policy(&ch.admins)?,
        orderer_organizations: orderer.cloned().into_iter().collect(),
        // Declared channels keep each OSN's own batch timeout (see ChannelSettings).
        batch_timeout: String::new(),
        max_channels: 0,
    };
    Ok(config)
}
