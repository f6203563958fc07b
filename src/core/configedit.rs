//! Edits of a Fabric configuration tree, as an admin makes them before computing an update
//! ([`super::configtx::compute_update`]): set a value or a policy of a group, add or remove an
//! organisation, set an organisation's anchor peers.
//! Pure: the tree in, the edited tree out.

use prost::Message as _;

use crate::proto::common::{
    Config, ConfigGroup, ConfigGroupEntry, ConfigPolicy, ConfigPolicyEntry, ConfigValue, ConfigValueEntry, Policy,
};
use crate::proto::orderer::{BatchTimeout, ChannelRestrictions};
use crate::proto::peer::{AnchorPeer, AnchorPeers};
use crate::proto::BatchSize;

/// The group at `path` (group keys below the channel group), if there is one.
pub fn group_mut<'a>(config: &'a mut Config, path: &[&str]) -> Result<&'a mut ConfigGroup, String> {
    let mut group = config.channel_group.as_mut().ok_or("the configuration has no channel group")?;
    let mut at = String::from("/Channel");
    for key in path {
        at.push('/');
        at.push_str(key);
        group = group
            .groups
            .iter_mut()
            .rev()
            .find(|e| e.key == *key)
            .and_then(|e| e.value.as_mut())
            .ok_or_else(|| format!("the configuration has no group {at}"))?;
    }
    Ok(group)
}

/// Sets the value `key` of the group at `path` to `raw` (a new value gets mod_policy Admins).
pub fn set_value(config: &mut Config, path: &[&str], key: &str, raw: Vec<u8>) -> Result<(), String> {
    let group = group_mut(config, path)?;
    match group.values.iter_mut().rev().find(|e| e.key == key) {
        Some(entry) => entry.value.get_or_insert_with(Default::default).value = raw.into(),
        None => group.values.push(ConfigValueEntry {
            key: key.to_owned(),
            value: Some(ConfigValue { version: 0, value: raw.into(), mod_policy: "Admins".into() }),
        }),
    }
    Ok(())
}

/// Sets the Orderer group's BatchSize.
pub fn set_batch_size(config: &mut Config, batch_size: BatchSize) -> Result<(), String> {
    set_value(config, &["Orderer"], "BatchSize", batch_size.encode_to_vec())
}

/// Sets the Orderer group's BatchTimeout (a Go duration such as `2s`).
pub fn set_batch_timeout(config: &mut Config, timeout: &str) -> Result<(), String> {
    super::channelconfig::go_duration(timeout).map_err(|e| format!("batch timeout '{timeout}': {e}"))?;
    set_value(config, &["Orderer"], "BatchTimeout", BatchTimeout { timeout: timeout.to_owned() }.encode_to_vec())
}

/// Sets the Orderer group's ChannelRestrictions.max_count (the system channel's channel limit).
pub fn set_max_channels(config: &mut Config, max_count: u64) -> Result<(), String> {
    set_value(config, &["Orderer"], "ChannelRestrictions", ChannelRestrictions { max_count }.encode_to_vec())
}

/// Adds (or replaces) the organisation group `name` of the group at `path` (`Application`, or
/// `Consortiums/<name>` on a system channel).
pub fn put_organization(config: &mut Config, path: &[&str], name: &str, org: ConfigGroup) -> Result<(), String> {
    let group = group_mut(config, path)?;
    match group.groups.iter_mut().rev().find(|e| e.key == name) {
        Some(entry) => entry.value = Some(org),
        None => group.groups.push(ConfigGroupEntry { key: name.to_owned(), value: Some(org) }),
    }
    Ok(())
}

/// Removes the organisation group `name` of the group at `path`.
pub fn remove_organization(config: &mut Config, path: &[&str], name: &str) -> Result<(), String> {
    let group = group_mut(config, path)?;
    let before = group.groups.len();
    group.groups.retain(|e| e.key != name);
    if group.groups.len() == before {
        let names: Vec<&str> = group.groups.iter().map(|e| e.key.as_str()).collect();
        return Err(format!("there is no organisation '{name}' to remove (there are: {})", names.join(", ")));
    }
    Ok(())
}

/// Sets the policy `name` of the group at `path` (a new policy gets mod_policy Admins).
pub fn set_policy(config: &mut Config, path: &[&str], name: &str, policy: Policy) -> Result<(), String> {
    let group = group_mut(config, path)?;
    match group.policies.iter_mut().rev().find(|e| e.key == name) {
        Some(entry) => entry.value.get_or_insert_with(Default::default).policy = Some(policy),
        None => group.policies.push(ConfigPolicyEntry {
            key: name.to_owned(),
            value: Some(ConfigPolicy { version: 0, policy: Some(policy), mod_policy: "Admins".into() }),
        }),
    }
    Ok(())
}

/// A policy's path as Fabric names it (`/Channel/Application/Org1MSP/Admins`, or relative to
/// the channel group: `Application/Org1MSP/Admins`): the groups under the channel group and the
/// policy's name.
pub fn policy_path(path: &str) -> Result<(Vec<&str>, &str), String> {
    let relative = path.strip_prefix("/Channel/").unwrap_or(path);
    if relative.starts_with('/') || relative.is_empty() {
        return Err(format!("policy path '{path}': expected /Channel/<group>/.../<policy>"));
    }
    let mut parts: Vec<&str> = relative.split('/').collect();
    let name = parts.pop().filter(|n| !n.is_empty()).ok_or_else(|| format!("policy path '{path}' names no policy"))?;
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("policy path '{path}' has an empty group name"));
    }
    Ok((parts, name))
}

/// Sets the anchor peers (`host:port` each) of the application organisation `org`.
pub fn set_anchor_peers(config: &mut Config, org: &str, peers: &[(String, i32)]) -> Result<(), String> {
    let anchor_peers =
        peers.iter().map(|(host, port)| AnchorPeer { host: host.clone(), port: *port }).collect::<Vec<_>>();
    set_value(config, &["Application", org], "AnchorPeers", AnchorPeers { anchor_peers }.encode_to_vec())
}
