//! Fabric's configtx, as Fabric 1.4's `common/configtx` decides it: whether a config update may
//! change a channel's configuration, and the configuration it yields; and the template a new
//! channel's configuration starts from (the system channel's `DefaultTemplator`).
//!
//! - A configuration is seen as a flat map of elements by key (`[Group]  /Channel/Orderer`,
//!   `[Value]  /Channel/Orderer/BatchSize`, `[Policy] /Channel/Admins`), each with its version
//!   and mod_policy.
//! - [`Validator::propose`]: every read-set element must exist at the version read; the delta is
//!   every write-set element whose version differs from the read set's (empty: refused); a new
//!   element comes at version 0, a changed one at exactly its version + 1, authorised by the
//!   *existing* element's mod_policy (a relative name resolves in the group itself for a group,
//!   in the containing group for a value or policy); the result is the old map overlaid with the
//!   delta, and a group's children are the keys of its winning entry (a child left out of a
//!   bumped group is deleted); sequence + 1.
//! - [`Validator::validate`]: what every consumer and every peer runs on a CONFIG: recompute from
//!   its `last_update` and require the same configuration ([`same_group`]: maps compared as maps).
//! - [`channel_template`]: a new channel's configuration before its creation update is applied.
//!
//! Signatures are verified by the caller: [`signed_data`] lists what each approval signed, and
//! the signers that verify come back in as identities. Pure: no clock, no I/O.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use prost::Message as _;

use super::fabric_policy::Policies;
use super::msp::Identity;
use crate::proto::common::{
    Config, ConfigGroup, ConfigGroupEntry, ConfigPolicy, ConfigPolicyEntry, ConfigUpdate, ConfigUpdateEnvelope,
    ConfigValue, ConfigValueEntry, Consortium, Policy,
};
use crate::proto::{Envelope, HeaderType, Payload, SignatureHeader};

const GROUP: &str = "[Group]  ";
const VALUE: &str = "[Value]  ";
const POLICY: &str = "[Policy] ";
/// The root group's key, and the root of every policy path.
const ROOT: &str = "Channel";
/// Longest key (and channel ID) Fabric accepts.
const MAX_ID: usize = 249;
/// Fabric 1.4's upgrade of empty mod_policies, applied whenever the orderer has capabilities.
const ORDERER_CAPABILITIES_KEY: &str = "[Value]  /Channel/Orderer/Capabilities";

/// Why a config update or a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigtxError {
    pub kind: Kind,
    pub message: String,
}

/// What kind of refusal: Fabric answers both with BAD_REQUEST; OSN's HTTP API tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The update is malformed or does not fit the configuration.
    Invalid,
    /// A changed element's mod_policy is not satisfied by the update's signatures.
    Unauthorized,
}

fn invalid(message: impl Into<String>) -> ConfigtxError {
    ConfigtxError { kind: Kind::Invalid, message: message.into() }
}

/// Fabric's rule for a key of the configuration tree: `[a-zA-Z0-9.-]+`, at most 249 characters,
/// not `.` or `..`.
pub fn validate_config_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("config ID illegal, cannot be empty".into());
    }
    if id.len() > MAX_ID {
        return Err(format!("config ID illegal, cannot be longer than {MAX_ID}"));
    }
    if id == "." || id == ".." {
        return Err(format!("name '{id}' for config ID is not allowed"));
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
        return Err(format!("config ID '{id}' contains illegal characters"));
    }
    Ok(())
}

/// Fabric's rule for a mod_policy: not empty, and each element of its path (after one leading
/// `/`) a valid config ID.
fn validate_mod_policy(mod_policy: &str) -> Result<(), String> {
    if mod_policy.is_empty() {
        return Err("mod_policy not set".into());
    }
    let trimmed = mod_policy.strip_prefix('/').unwrap_or(mod_policy);
    for (i, element) in trimmed.split('/').enumerate() {
        validate_config_id(element).map_err(|e| format!("path element at {i} is invalid: {e}"))?;
    }
    Ok(())
}

/// A group without its children's contents: what the map holds for it.
#[derive(Debug, Clone)]
struct Shell {
    version: u64,
    mod_policy: String,
    groups: Vec<String>,
    values: Vec<String>,
    policies: Vec<String>,
}

#[derive(Debug, Clone)]
enum Item {
    Group(Shell),
    Value(ConfigValue),
    Policy(ConfigPolicy),
}

/// One element of the map: the item, its key, and the keys of the groups above it (the root
/// group's path is empty; a value of the Orderer group has path `[Channel, Orderer]`).
#[derive(Debug, Clone)]
struct Element {
    item: Item,
    key: String,
    path: Vec<String>,
}

impl Element {
    fn version(&self) -> u64 {
        match &self.item {
            Item::Group(g) => g.version,
            Item::Value(v) => v.version,
            Item::Policy(p) => p.version,
        }
    }

    fn mod_policy(&self) -> &str {
        match &self.item {
            Item::Group(g) => &g.mod_policy,
            Item::Value(v) => &v.mod_policy,
            Item::Policy(p) => &p.mod_policy,
        }
    }
}

type ConfigMap = BTreeMap<String, Element>;

/// Pushes `key` unless it is there already (a repeated map key: the last entry's content wins,
/// as when Go decodes a map).
fn push_once(keys: &mut Vec<String>, key: &str) {
    if !keys.iter().any(|k| k == key) {
        keys.push(key.to_owned());
    }
}

fn map_key(prefix: &str, path: &[String], key: &str) -> String {
    let mut out = String::from(prefix);
    for part in path {
        out.push('/');
        out.push_str(part);
    }
    out.push('/');
    out.push_str(key);
    out
}

fn add(map: &mut ConfigMap, prefix: &str, element: Element) -> Result<(), ConfigtxError> {
    validate_config_id(&element.key)
        .map_err(|e| invalid(format!("illegal key in {}: {e}", map_key(prefix, &element.path, &element.key).trim())))?;
    map.insert(map_key(prefix, &element.path, &element.key), element);
    Ok(())
}

/// The map of a tree rooted at `/Channel` (an absent tree: an empty map, as for an empty read set).
fn map_config(group: Option<&ConfigGroup>) -> Result<ConfigMap, ConfigtxError> {
    let mut map = ConfigMap::new();
    if let Some(group) = group {
        recurse(&mut map, vec![ROOT.to_owned()], group)?;
    }
    Ok(map)
}

fn recurse(map: &mut ConfigMap, path: Vec<String>, group: &ConfigGroup) -> Result<(), ConfigtxError> {
    let mut shell = Shell {
        version: group.version,
        mod_policy: group.mod_policy.clone(),
        groups: Vec::new(),
        values: Vec::new(),
        policies: Vec::new(),
    };
    for entry in &group.groups {
        push_once(&mut shell.groups, &entry.key);
        let mut next = path.clone();
        next.push(entry.key.clone());
        recurse(map, next, entry.value.as_ref().unwrap_or(&ConfigGroup::default()))?;
    }
    for entry in &group.values {
        push_once(&mut shell.values, &entry.key);
        let item = Item::Value(entry.value.clone().unwrap_or_default());
        add(map, VALUE, Element { item, key: entry.key.clone(), path: path.clone() })?;
    }
    for entry in &group.policies {
        push_once(&mut shell.policies, &entry.key);
        let item = Item::Policy(entry.value.clone().unwrap_or_default());
        add(map, POLICY, Element { item, key: entry.key.clone(), path: path.clone() })?;
    }
    let (key, above) = path.split_last().expect("a group's path names it");
    add(map, GROUP, Element { item: Item::Group(shell), key: key.clone(), path: above.to_vec() })
}

/// The tree of a map, from its root group down; Fabric 1.4's upgrade gives every empty
/// mod_policy the value `Admins` once the orderer group has capabilities.
fn rebuild(map: &ConfigMap, path: &str) -> Result<ConfigGroup, ConfigtxError> {
    let at = format!("{GROUP}{path}");
    let Some(Element { item: Item::Group(shell), .. }) = map.get(&at) else {
        return Err(invalid(format!("missing group at path: {at}")));
    };
    let upgrade = map.contains_key(ORDERER_CAPABILITIES_KEY);
    let fix = |mod_policy: &str| {
        if upgrade && mod_policy.is_empty() {
            "Admins".to_owned()
        } else {
            mod_policy.to_owned()
        }
    };
    let mut out = ConfigGroup { version: shell.version, mod_policy: fix(&shell.mod_policy), ..Default::default() };
    for key in &shell.groups {
        let value = rebuild(map, &format!("{path}/{key}"))?;
        out.groups.push(ConfigGroupEntry { key: key.clone(), value: Some(value) });
    }
    for key in &shell.values {
        let at = format!("{VALUE}{path}/{key}");
        let Some(Element { item: Item::Value(value), .. }) = map.get(&at) else {
            return Err(invalid(format!("missing value at path: {at}")));
        };
        let value = ConfigValue { mod_policy: fix(&value.mod_policy), ..value.clone() };
        out.values.push(ConfigValueEntry { key: key.clone(), value: Some(value) });
    }
    for key in &shell.policies {
        let at = format!("{POLICY}{path}/{key}");
        let Some(Element { item: Item::Policy(policy), .. }) = map.get(&at) else {
            return Err(invalid(format!("missing policy at path: {at}")));
        };
        let policy = ConfigPolicy { mod_policy: fix(&policy.mod_policy), ..policy.clone() };
        out.policies.push(ConfigPolicyEntry { key: key.clone(), value: Some(policy) });
    }
    Ok(out)
}

/// What one approval of a config update signed: `signature_header ‖ config_update`, by the
/// header's creator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedData {
    /// The creator: a marshaled `msp.SerializedIdentity`.
    pub identity: Bytes,
    pub data: Vec<u8>,
    pub signature: Bytes,
}

/// The approvals of a config update (its `ConfigSignature`s; the envelope's own signature is not
/// one, as in Fabric). A signature header that does not decode refuses the whole update.
pub fn signed_data(envelope: &ConfigUpdateEnvelope) -> Result<Vec<SignedData>, ConfigtxError> {
    envelope
        .signatures
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let header = SignatureHeader::decode(s.signature_header.clone())
                .map_err(|e| invalid(format!("config signature {i}: the signature header does not decode: {e}")))?;
            let mut data = Vec::with_capacity(s.signature_header.len() + envelope.config_update.len());
            data.extend_from_slice(&s.signature_header);
            data.extend_from_slice(&envelope.config_update);
            Ok(SignedData { identity: header.creator, data, signature: s.signature.clone() })
        })
        .collect()
}

/// The `ConfigUpdateEnvelope` of a CONFIG_UPDATE envelope (Fabric's `EnvelopeToConfigUpdate`).
pub fn config_update_envelope(envelope: &Envelope) -> Result<ConfigUpdateEnvelope, ConfigtxError> {
    let payload = Payload::decode(envelope.payload.clone())
        .map_err(|e| invalid(format!("the update's payload does not decode: {e}")))?;
    let header = payload.header.as_ref().ok_or_else(|| invalid("the update's payload has no header"))?;
    let channel_header = super::envelope::decode_channel_header(header.channel_header.clone())
        .map_err(|e| invalid(format!("the update's channel header does not decode: {e}")))?;
    if channel_header.r#type != HeaderType::ConfigUpdate as i32 {
        return Err(invalid(format!(
            "the update envelope is of type {}, not CONFIG_UPDATE",
            HeaderType::try_from(channel_header.r#type)
                .map_or_else(|_| channel_header.r#type.to_string(), |t| { t.as_str_name().to_owned() })
        )));
    }
    ConfigUpdateEnvelope::decode(payload.data)
        .map_err(|e| invalid(format!("the update's ConfigUpdateEnvelope does not decode: {e}")))
}

/// A channel's configuration in force, ready to judge updates to it (Fabric's `ValidatorImpl`
/// with the channel's policy manager).
#[derive(Debug, Clone)]
pub struct Validator {
    channel_id: String,
    sequence: u64,
    map: ConfigMap,
    policies: Policies,
}

impl Validator {
    /// The validator of `channel_id` in `config`; an error says why the configuration cannot
    /// be one (a bad channel ID or key, a policy or MSP that does not load).
    pub fn new(channel_id: &str, config: &Config) -> Result<Self, ConfigtxError> {
        super::config::validate_channel_id(channel_id).map_err(invalid)?;
        let group = config.channel_group.as_ref().ok_or_else(|| invalid("the configuration has no channel group"))?;
        let map = map_config(Some(group))?;
        let policies = Policies::of(group).map_err(invalid)?;
        Ok(Validator { channel_id: channel_id.to_owned(), sequence: config.sequence, map, policies })
    }

    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The configuration's policies and MSPs.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// The configuration `update` yields, signed by `signers` (the approvals whose signatures
    /// verified, as identities and their serialized bytes).
    pub fn propose(
        &self,
        update: &ConfigUpdateEnvelope,
        signers: &[(Identity, Bytes)],
    ) -> Result<Config, ConfigtxError> {
        let map = self.authorize(update, signers)?;
        let group = rebuild(&map, &format!("/{ROOT}"))?;
        Ok(Config { sequence: self.sequence + 1, channel_group: Some(group) })
    }

    /// Checks a CONFIG's configuration against the update it names: the next sequence, and the
    /// very configuration [`propose`](Self::propose) computes from the update.
    pub fn validate(
        &self,
        config: &Config,
        update: &ConfigUpdateEnvelope,
        signers: &[(Identity, Bytes)],
    ) -> Result<(), ConfigtxError> {
        if config.sequence != self.sequence + 1 {
            return Err(invalid(format!(
                "config currently at sequence {}, cannot validate config at sequence {}",
                self.sequence, config.sequence
            )));
        }
        let proposed = self.propose(update, signers)?;
        let same = match (&proposed.channel_group, &config.channel_group) {
            (Some(a), Some(b)) => same_group(a, b),
            _ => false,
        };
        if !same {
            return Err(invalid("ConfigEnvelope LastUpdate did not produce the supplied config result"));
        }
        Ok(())
    }

    fn authorize(
        &self,
        envelope: &ConfigUpdateEnvelope,
        signers: &[(Identity, Bytes)],
    ) -> Result<ConfigMap, ConfigtxError> {
        let update = ConfigUpdate::decode(envelope.config_update.clone())
            .map_err(|e| invalid(format!("the ConfigUpdate does not decode: {e}")))?;
        if update.channel_id != self.channel_id {
            return Err(invalid(format!(
                "ConfigUpdate for channel '{}' but envelope for channel '{}'",
                update.channel_id, self.channel_id
            )));
        }
        let read = map_config(update.read_set.as_ref()).map_err(|e| invalid(format!("error mapping ReadSet: {e}")))?;
        for (key, element) in &read {
            let Some(existing) = self.map.get(key) else {
                return Err(invalid(format!(
                    "error validating ReadSet: existing config does not contain element for {key} but was in the read set"
                )));
            };
            if existing.version() != element.version() {
                return Err(invalid(format!(
                    "error validating ReadSet: proposed update requires that key {key} be at version {}, but it is currently at version {}",
                    element.version(),
                    existing.version()
                )));
            }
        }
        let write =
            map_config(update.write_set.as_ref()).map_err(|e| invalid(format!("error mapping WriteSet: {e}")))?;
        let delta: BTreeMap<&String, &Element> = write
            .iter()
            .filter(|(key, element)| read.get(*key).is_none_or(|r| r.version() != element.version()))
            .collect();
        if delta.is_empty() {
            return Err(invalid("error validating DeltaSet: delta set was empty -- update would have no effect"));
        }
        for (key, element) in &delta {
            validate_mod_policy(element.mod_policy()).map_err(|e| {
                invalid(format!("error validating DeltaSet: invalid mod_policy for element {key}: {e}"))
            })?;
            let Some(existing) = self.map.get(*key) else {
                if element.version() != 0 {
                    return Err(invalid(format!(
                        "error validating DeltaSet: attempted to set key {key} to version {}, but key does not exist",
                        element.version()
                    )));
                }
                continue;
            };
            if element.version() != existing.version() + 1 {
                return Err(invalid(format!(
                    "error validating DeltaSet: attempt to set key {key} to version {}, but key is at version {}",
                    element.version(),
                    existing.version()
                )));
            }
            let policy = policy_path(existing);
            if !self.policies.contains(&policy) {
                return Err(invalid(format!(
                    "error validating DeltaSet: unexpected missing policy {} for item {key}",
                    existing.mod_policy()
                )));
            }
            if !self.policies.evaluate(&policy, signers) {
                return Err(ConfigtxError {
                    kind: Kind::Unauthorized,
                    message: format!(
                        "error validating DeltaSet: policy for {key} not satisfied: {policy} is not satisfied by the update's {} valid signature(s)",
                        signers.len()
                    ),
                });
            }
        }
        let mut result = self.map.clone();
        for (key, element) in delta {
            result.insert(key.clone(), element.clone());
        }
        if let Some(key) = write.keys().find(|key| !result.contains_key(*key)) {
            return Err(invalid(format!(
                "full config did not verify: writeset contained key {key} which did not appear in proposed config"
            )));
        }
        Ok(result)
    }
}

/// The absolute path of an existing element's mod_policy: absolute names as they are, relative
/// ones under the group itself (a group other than the root) or the containing group (a value
/// or a policy), as Fabric's `policyForItem` resolves them.
fn policy_path(existing: &Element) -> String {
    let name = existing.mod_policy();
    if name.starts_with('/') {
        return name.to_owned();
    }
    let mut base = format!("/{ROOT}");
    if !existing.path.is_empty() {
        for part in &existing.path[1..] {
            base.push('/');
            base.push_str(part);
        }
        if matches!(existing.item, Item::Group(_)) {
            base.push('/');
            base.push_str(&existing.key);
        }
    }
    format!("{base}/{name}")
}

/// Whether two trees are the same configuration, as Go's `proto.Equal` sees them: versions,
/// mod_policies, value bytes and policies equal, and maps equal as maps (entry order does not
/// count; for a repeated key the last entry counts).
pub fn same_group(a: &ConfigGroup, b: &ConfigGroup) -> bool {
    fn last<'a, T>(entries: impl Iterator<Item = (&'a String, T)>) -> HashMap<&'a String, T> {
        entries.collect()
    }
    if a.version != b.version || a.mod_policy != b.mod_policy {
        return false;
    }
    let (ga, gb) = (
        last(a.groups.iter().map(|e| (&e.key, e.value.as_ref()))),
        last(b.groups.iter().map(|e| (&e.key, e.value.as_ref()))),
    );
    let empty = ConfigGroup::default();
    let groups_same = ga.len() == gb.len()
        && ga.iter().all(|(k, x)| {
            gb.get(k)
                .is_some_and(|y| same_group(x.unwrap_or(&empty), y.unwrap_or(&empty)) && x.is_some() == y.is_some())
        });
    let values_same =
        last(a.values.iter().map(|e| (&e.key, &e.value))) == last(b.values.iter().map(|e| (&e.key, &e.value)));
    let policies_same =
        last(a.policies.iter().map(|e| (&e.key, &e.value))) == last(b.policies.iter().map(|e| (&e.key, &e.value)));
    groups_same && values_same && policies_same
}

fn group<'a>(parent: &'a ConfigGroup, key: &str) -> Option<&'a ConfigGroup> {
    parent.groups.iter().rev().find(|e| e.key == key).and_then(|e| e.value.as_ref())
}

fn value<'a>(parent: &'a ConfigGroup, key: &str) -> Option<&'a ConfigValue> {
    parent.values.iter().rev().find(|e| e.key == key).and_then(|e| e.value.as_ref())
}

/// Sets every version of a tree to 0.
fn zero_versions(group: &mut ConfigGroup) {
    group.version = 0;
    for entry in &mut group.values {
        if let Some(v) = entry.value.as_mut() {
            v.version = 0;
        }
    }
    for entry in &mut group.policies {
        if let Some(p) = entry.value.as_mut() {
            p.version = 0;
        }
    }
    for entry in &mut group.groups {
        if let Some(g) = entry.value.as_mut() {
            zero_versions(g);
        }
    }
}

/// The configuration a new channel starts from before its creation update applies (Fabric's
/// `DefaultTemplator`): the system channel's values and policies, its Orderer group, the
/// consortium the update names, and an Application group holding the consortium's members the
/// update lists (their groups as the consortium has them) under the consortium's
/// ChannelCreationPolicy. With orderer capabilities (V1_1 and later) every version is 0 and the
/// channel group keeps the system channel's mod_policy. `channel_id` is the update envelope's
/// channel header's.
pub fn channel_template(system: &Config, channel_id: &str, update: &ConfigUpdate) -> Result<Config, ConfigtxError> {
    if update.channel_id != channel_id {
        return Err(invalid(format!(
            "Failing initial channel config creation: mismatched channel IDs: '{}' != '{channel_id}'",
            update.channel_id
        )));
    }
    let write = update.write_set.as_ref().ok_or_else(|| invalid("Config update has an empty writeset"))?;
    let application =
        group(write, "Application").ok_or_else(|| invalid("Config update has missing application group"))?;
    if application.version != 1 {
        return Err(invalid(format!(
            "Config update for channel creation does not set application group version to 1, was {}",
            application.version
        )));
    }
    let consortium_value = value(write, "Consortium").ok_or_else(|| invalid("Consortium config value missing"))?;
    let consortium = Consortium::decode(consortium_value.value.clone())
        .map_err(|e| invalid(format!("Error reading unmarshaling consortium name: {e}")))?;

    let system_group =
        system.channel_group.as_ref().ok_or_else(|| invalid("the system channel has no configuration"))?;
    let consortiums = group(system_group, "Consortiums")
        .ok_or_else(|| invalid("The ordering system channel does not appear to support creating channels"))?;
    let members = group(consortiums, &consortium.name)
        .ok_or_else(|| invalid(format!("Unknown consortium name: {}", consortium.name)))?;
    let creation_policy = value(members, "ChannelCreationPolicy")
        .map(|v| Policy::decode(v.value.clone()))
        .transpose()
        .map_err(|e| invalid(format!("consortium {}: ChannelCreationPolicy does not decode: {e}", consortium.name)))?
        .unwrap_or_default();

    let mut app = ConfigGroup { mod_policy: "ChannelCreationPolicy".into(), ..Default::default() };
    app.policies.push(ConfigPolicyEntry {
        key: "ChannelCreationPolicy".into(),
        value: Some(ConfigPolicy { policy: Some(creation_policy), ..Default::default() }),
    });
    if !members.groups.is_empty() {
        if application.groups.is_empty() {
            return Err(invalid(
                "Proposed configuration has no application group members, but consortium contains members",
            ));
        }
        let mut named = Vec::new();
        for entry in &application.groups {
            push_once(&mut named, &entry.key);
        }
        for org in named {
            let member = group(members, &org).ok_or_else(|| {
                invalid(format!("Attempted to include a member which is not in the consortium ({org})"))
            })?;
            app.groups.push(ConfigGroupEntry { key: org, value: Some(member.clone()) });
        }
    }

    let mut channel = ConfigGroup::default();
    channel.values.extend(system_group.values.iter().filter(|e| e.key != "Consortium").cloned());
    channel.policies.extend(system_group.policies.iter().cloned());
    let orderer = group(system_group, "Orderer").ok_or_else(|| invalid("the system channel has no Orderer group"))?;
    channel.groups.push(ConfigGroupEntry { key: "Orderer".into(), value: Some(orderer.clone()) });
    channel.groups.push(ConfigGroupEntry { key: "Application".into(), value: Some(app) });
    channel.values.push(ConfigValueEntry {
        key: "Consortium".into(),
        value: Some(ConfigValue {
            value: Consortium { name: consortium.name.clone() }.encode_to_vec().into(),
            mod_policy: "Admins".into(),
            version: 0,
        }),
    });
    let predictable = value(orderer, "Capabilities")
        .and_then(|v| crate::proto::common::Capabilities::decode(v.value.clone()).ok())
        .is_some_and(|c| c.capabilities.iter().any(|e| e.key == "V1_1" || e.key == "V1_4_2"));
    if predictable {
        channel.mod_policy = system_group.mod_policy.clone();
        zero_versions(&mut channel);
    }
    Ok(Config { sequence: 0, channel_group: Some(channel) })
}

/// The update that turns `original` into `updated`, as `configtxlator compute_update` computes
/// it: the read set names every element the change rests on at its version; the write set holds
/// each changed element at its version + 1 (a new one at 0), and a group whose members change
/// (added, removed) or whose mod_policy changes is written whole at its version + 1, its
/// unchanged members at their versions. `channel_id` names the channel.
pub fn compute_update(channel_id: &str, original: &Config, updated: &Config) -> Result<ConfigUpdate, String> {
    let original = original.channel_group.as_ref().ok_or("no channel group included for original config")?;
    let updated = updated.channel_group.as_ref().ok_or("no channel group included for updated config")?;
    let (read, write, changed) = group_update(original, updated);
    if !changed {
        return Err("no differences detected between original and updated config".into());
    }
    Ok(ConfigUpdate {
        channel_id: channel_id.to_owned(),
        read_set: Some(read),
        write_set: Some(write),
        ..Default::default()
    })
}

/// Entries by key, last one winning, in first-seen order.
fn entries<'a, T>(list: impl Iterator<Item = (&'a String, &'a T)>) -> Vec<(&'a String, &'a T)> {
    let mut out: Vec<(&String, &T)> = Vec::new();
    for (k, v) in list {
        match out.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// A value or a policy, as `compute_update` compares and writes them.
trait Leaf: Clone + Default {
    fn version(&self) -> u64;
    /// The same mod_policy and content.
    fn same_as(&self, other: &Self) -> bool;
    /// `self`'s mod_policy and content at `version`.
    fn at(&self, version: u64) -> Self;
    /// Nothing but a version (what a read set, or an unchanged member of a write set, holds).
    fn version_only(version: u64) -> Self;
}

impl Leaf for ConfigValue {
    fn version(&self) -> u64 {
        self.version
    }
    fn same_as(&self, other: &Self) -> bool {
        self.mod_policy == other.mod_policy && self.value == other.value
    }
    fn at(&self, version: u64) -> Self {
        ConfigValue { version, ..self.clone() }
    }
    fn version_only(version: u64) -> Self {
        ConfigValue { version, ..Default::default() }
    }
}

impl Leaf for ConfigPolicy {
    fn version(&self) -> u64 {
        self.version
    }
    fn same_as(&self, other: &Self) -> bool {
        self.mod_policy == other.mod_policy && self.policy == other.policy
    }
    fn at(&self, version: u64) -> Self {
        ConfigPolicy { version, ..self.clone() }
    }
    fn version_only(version: u64) -> Self {
        ConfigPolicy { version, ..Default::default() }
    }
}

/// The values (or policies) of a group: those changed or added go to `write` (a changed one at
/// its version plus one, an added one at version 0), the unchanged to `same` (versions only).
/// Answers whether members were added or removed.
fn leaves_update<T: Leaf>(
    original: &[(&String, &T)],
    updated: &[(&String, &T)],
    write: &mut Vec<(String, T)>,
    same: &mut Vec<(String, T)>,
) -> bool {
    let mut members_changed = false;
    for (key, o) in original {
        match updated.iter().find(|(k, _)| k == key) {
            None => members_changed = true,
            Some((_, u)) if o.same_as(u) => same.push(((*key).clone(), T::version_only(o.version()))),
            Some((_, u)) => write.push(((*key).clone(), u.at(o.version() + 1))),
        }
    }
    for (key, u) in updated {
        if !original.iter().any(|(k, _)| k == key) {
            members_changed = true;
            write.push(((*key).clone(), u.at(0)));
        }
    }
    members_changed
}

fn group_update(original: &ConfigGroup, updated: &ConfigGroup) -> (ConfigGroup, ConfigGroup, bool) {
    let empty_value = ConfigValue::default();
    let empty_policy = ConfigPolicy::default();
    let empty_group = ConfigGroup::default();
    let mut members_changed = original.mod_policy != updated.mod_policy;
    let (mut read, mut write) = (ConfigGroup::default(), ConfigGroup::default());
    let mut same_groups = Vec::new();

    let (mut written_values, mut same_values) = (Vec::new(), Vec::new());
    members_changed |= leaves_update(
        &entries(original.values.iter().map(|e| (&e.key, e.value.as_ref().unwrap_or(&empty_value)))),
        &entries(updated.values.iter().map(|e| (&e.key, e.value.as_ref().unwrap_or(&empty_value)))),
        &mut written_values,
        &mut same_values,
    );
    let value_entry = |(key, value): (String, ConfigValue)| ConfigValueEntry { key, value: Some(value) };
    write.values.extend(written_values.into_iter().map(value_entry));
    let same_values: Vec<ConfigValueEntry> = same_values.into_iter().map(value_entry).collect();

    let (mut written_policies, mut same_policies) = (Vec::new(), Vec::new());
    members_changed |= leaves_update(
        &entries(original.policies.iter().map(|e| (&e.key, e.value.as_ref().unwrap_or(&empty_policy)))),
        &entries(updated.policies.iter().map(|e| (&e.key, e.value.as_ref().unwrap_or(&empty_policy)))),
        &mut written_policies,
        &mut same_policies,
    );
    let policy_entry = |(key, policy): (String, ConfigPolicy)| ConfigPolicyEntry { key, value: Some(policy) };
    write.policies.extend(written_policies.into_iter().map(policy_entry));
    let same_policies: Vec<ConfigPolicyEntry> = same_policies.into_iter().map(policy_entry).collect();

    let og = entries(original.groups.iter().map(|e| (&e.key, e.value.as_ref().unwrap_or(&empty_group))));
    let ug = entries(updated.groups.iter().map(|e| (&e.key, e.value.as_ref().unwrap_or(&empty_group))));
    for (key, o) in &og {
        match ug.iter().find(|(k, _)| k == key) {
            None => members_changed = true,
            Some((_, u)) => {
                let (r, w, changed) = group_update(o, u);
                if changed {
                    read.groups.push(ConfigGroupEntry { key: (*key).clone(), value: Some(r) });
                    write.groups.push(ConfigGroupEntry { key: (*key).clone(), value: Some(w) });
                } else {
                    same_groups.push(ConfigGroupEntry { key: (*key).clone(), value: Some(r) });
                }
            }
        }
    }
    for (key, u) in &ug {
        if !og.iter().any(|(k, _)| k == key) {
            members_changed = true;
            let (_, w, _) = group_update(&ConfigGroup::default(), u);
            write.groups.push(ConfigGroupEntry {
                key: (*key).clone(),
                value: Some(ConfigGroup { version: 0, mod_policy: u.mod_policy.clone(), ..w }),
            });
        }
    }

    read.version = original.version;
    write.version = original.version;
    if !members_changed {
        let nothing =
            read.groups.is_empty() && write.groups.is_empty() && write.values.is_empty() && write.policies.is_empty();
        return (read, write, !nothing);
    }
    read.values.extend(same_values.iter().cloned());
    read.policies.extend(same_policies.iter().cloned());
    read.groups.extend(same_groups.iter().cloned());
    write.values.extend(same_values);
    write.policies.extend(same_policies);
    write.groups.extend(same_groups);
    write.version = original.version + 1;
    write.mod_policy = updated.mod_policy.clone();
    (read, write, true)
}

#[cfg(test)]
mod tests;
