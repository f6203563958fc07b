//! What a Kafka ordering service reads from a Fabric channel configuration, with Fabric 1.4's
//! validation (issue 20, third part; the chain does not use it yet): the orderer's batch size and
//! timeout (a Go duration), the Kafka brokers (Fabric's host:port rule), the consensus type (OSN
//! orders `kafka` channels only), the channel limit, the orderer addresses, the consortium, the
//! hashing rules (SHA-256, flat data hash), and the capabilities, where one Fabric 1.4 does not
//! know stops the channel as in Fabric.

use std::time::Duration;

use super::configtree::{walk, Item, Value};
use crate::proto::common::Config;
use crate::proto::BatchSize;

/// The capabilities Fabric 1.4.12 knows, by group.
const CHANNEL_CAPABILITIES: &[&str] = &["V1_1", "V1_3", "V1_4_2", "V1_4_3"];
const ORDERER_CAPABILITIES: &[&str] = &["V1_1", "V1_4_2"];
const APPLICATION_CAPABILITIES: &[&str] =
    &["V1_1", "V1_2", "V1_3", "V1_4_2", "V1_1_PVTDATA_EXPERIMENTAL", "V1_1_RESOURCETREE_EXPERIMENTAL"];

/// A channel's ordering settings, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderingValues {
    pub sequence: u64,
    pub batch_size: BatchSize,
    pub batch_timeout: Duration,
    pub kafka_brokers: Vec<String>,
    /// ChannelRestrictions.max_count (0: no limit), on the system channel.
    pub max_channels: u64,
    pub orderer_addresses: Vec<String>,
    /// The consortium of an application channel.
    pub consortium: Option<String>,
    pub channel_capabilities: Vec<String>,
    pub orderer_capabilities: Vec<String>,
    pub application_capabilities: Vec<String>,
}

impl OrderingValues {
    /// Reads and checks a configuration as Fabric 1.4's `channelconfig` does, for a Kafka
    /// channel; the error says what is wrong and where.
    pub fn read(config: &Config) -> Result<Self, String> {
        check_tree(config)?;
        let group = config.channel_group.as_ref().ok_or("the configuration has no channel group")?;
        let mut found: Vec<(String, Value)> = Vec::new();
        let mut error = None;
        walk(group, "/Channel", &mut |path, item| {
            if let Item::Value(key, bytes) = item {
                match Value::decode(key, bytes) {
                    Ok(value) => found.push((path.to_owned(), value)),
                    Err(e) => {
                        error.get_or_insert(format!("{path}: {e}"));
                    }
                }
            }
        });
        if let Some(e) = error {
            return Err(e);
        }
        let get = |path: &str| found.iter().find(|(p, _)| p == path).map(|(_, v)| v);
        let missing = |path: &str| format!("{path} is missing");

        match get("/Channel/HashingAlgorithm") {
            Some(Value::HashingAlgorithm(h)) if h.name == "SHA256" => {}
            Some(Value::HashingAlgorithm(h)) => {
                return Err(format!(
                    "/Channel/HashingAlgorithm: '{}' is not supported (OSN hashes with SHA256)",
                    h.name
                ))
            }
            _ => return Err(missing("/Channel/HashingAlgorithm")),
        }
        match get("/Channel/BlockDataHashingStructure") {
            Some(Value::BlockDataHashingStructure(s)) if s.width == u32::MAX => {}
            Some(Value::BlockDataHashingStructure(s)) => {
                return Err(format!(
                    "/Channel/BlockDataHashingStructure: width {} (only {} is supported)",
                    s.width,
                    u32::MAX
                ))
            }
            _ => return Err(missing("/Channel/BlockDataHashingStructure")),
        }
        let orderer_addresses = match get("/Channel/OrdererAddresses") {
            Some(Value::Addresses(a)) if !a.addresses.is_empty() => a.addresses.clone(),
            _ => return Err("/Channel/OrdererAddresses: must set some orderer addresses".into()),
        };
        match get("/Channel/Orderer/ConsensusType") {
            Some(Value::ConsensusType(c)) if c.r#type == "kafka" => {}
            Some(Value::ConsensusType(c)) => {
                return Err(format!(
                    "/Channel/Orderer/ConsensusType: '{}': OSN is a Kafka ordering service and orders 'kafka' channels only",
                    c.r#type
                ))
            }
            _ => return Err(missing("/Channel/Orderer/ConsensusType")),
        }
        let batch_size = match get("/Channel/Orderer/BatchSize") {
            Some(Value::BatchSize(b)) => check_batch_size(b)?,
            _ => return Err(missing("/Channel/Orderer/BatchSize")),
        };
        let batch_timeout = match get("/Channel/Orderer/BatchTimeout") {
            Some(Value::BatchTimeout(t)) => match go_duration(&t.timeout) {
                Ok(d) if !d.is_zero() => d,
                Ok(_) => return Err(format!("/Channel/Orderer/BatchTimeout: '{}' is not positive", t.timeout)),
                Err(e) => return Err(format!("/Channel/Orderer/BatchTimeout: '{}': {e}", t.timeout)),
            },
            _ => return Err(missing("/Channel/Orderer/BatchTimeout")),
        };
        let kafka_brokers = match get("/Channel/Orderer/KafkaBrokers") {
            Some(Value::KafkaBrokers(b)) => {
                if let Some(bad) = b.brokers.iter().find(|b| !broker_seems_valid(b)) {
                    return Err(format!("/Channel/Orderer/KafkaBrokers: invalid broker entry '{bad}' (host:port)"));
                }
                b.brokers.clone()
            }
            _ => return Err(missing("/Channel/Orderer/KafkaBrokers")),
        };
        let max_channels = match get("/Channel/Orderer/ChannelRestrictions") {
            Some(Value::ChannelRestrictions(r)) => r.max_count,
            _ => 0,
        };
        let consortium = match get("/Channel/Consortium") {
            Some(Value::Consortium(c)) => Some(c.name.clone()),
            _ => None,
        };
        let capabilities = |path: &str, known: &[&str]| -> Result<Vec<String>, String> {
            let Some(Value::Capabilities(c)) = get(path) else { return Ok(Vec::new()) };
            let names: Vec<String> = c.capabilities.iter().map(|e| e.key.clone()).collect();
            match names.iter().find(|n| !known.contains(&n.as_str())) {
                Some(unknown) => Err(format!(
                    "{path}: capability '{unknown}' is required but not supported (Fabric 1.4 knows {})",
                    known.join(", ")
                )),
                None => Ok(names),
            }
        };
        Ok(OrderingValues {
            sequence: config.sequence,
            batch_size,
            batch_timeout,
            kafka_brokers,
            max_channels,
            orderer_addresses,
            consortium,
            channel_capabilities: capabilities("/Channel/Capabilities", CHANNEL_CAPABILITIES)?,
            orderer_capabilities: capabilities("/Channel/Orderer/Capabilities", ORDERER_CAPABILITIES)?,
            application_capabilities: capabilities("/Channel/Application/Capabilities", APPLICATION_CAPABILITIES)?,
        })
    }
}

/// The shape Fabric 1.4's `channelconfig` allows a configuration tree: which groups may sit
/// where and which values each may hold (a key Fabric does not know there is refused), no groups
/// under an organisation, an MSP ID in every organisation and one MSP per MSP ID, and the
/// capability gates (orderer capabilities before channel or application ones, channel V1_4_2
/// before per-organisation orderer Endpoints, application V1_2 before ACLs).
pub fn check_tree(config: &Config) -> Result<(), String> {
    use std::collections::HashMap;

    use crate::proto::common::ConfigGroup;

    fn keys(group: &ConfigGroup) -> impl Iterator<Item = &str> {
        group.values.iter().map(|e| e.key.as_str())
    }
    fn sub<'a>(group: &'a ConfigGroup, key: &str) -> Option<&'a ConfigGroup> {
        group.groups.iter().rev().find(|e| e.key == key).and_then(|e| e.value.as_ref())
    }
    fn has(group: &ConfigGroup, key: &str) -> bool {
        group.values.iter().any(|e| e.key == key)
    }
    fn only(group: &ConfigGroup, at: &str, allowed: &[&str]) -> Result<(), String> {
        match keys(group).find(|k| !allowed.contains(k)) {
            Some(k) => Err(format!("{at}: value '{k}' is not allowed here (allowed: {})", allowed.join(", "))),
            None => Ok(()),
        }
    }
    fn capability(group: &ConfigGroup, names: &[&str]) -> bool {
        group.values.iter().rev().find(|e| e.key == "Capabilities").and_then(|e| e.value.as_ref()).is_some_and(|v| {
            match Value::decode("Capabilities", &v.value) {
                Ok(Value::Capabilities(c)) => c.capabilities.iter().any(|e| names.contains(&e.key.as_str())),
                _ => false,
            }
        })
    }
    // One MSP per MSP ID across the tree (Fabric's MSP manager refuses two different ones).
    let mut msps: HashMap<String, (String, Vec<u8>)> = HashMap::new();
    let mut org = |group: &ConfigGroup, at: &str, allowed: &[&str]| -> Result<(), String> {
        if !group.groups.is_empty() {
            return Err(format!("{at}: organisations do not support sub-groups"));
        }
        only(group, at, allowed)?;
        let Some(raw) = group.values.iter().rev().find(|e| e.key == "MSP").and_then(|e| e.value.as_ref()) else {
            return Ok(());
        };
        let id = match Value::decode("MSP", &raw.value).map_err(|e| format!("{at}/MSP: {e}"))? {
            Value::Msp(msp) => match *msp {
                super::configtree::Msp::Fabric(c) => c.name,
                super::configtree::Msp::Idemix(c) => c.name,
            },
            _ => unreachable!("an MSP key decodes to an MSP"),
        };
        if id.is_empty() {
            return Err(format!("{at}: MSP for the organisation has an empty MSP ID"));
        }
        match msps.get(&id) {
            Some((first, bytes)) if *bytes != raw.value.to_vec() => {
                Err(format!("{at}: attempted to define two different versions of MSP {id} (the other at {first})"))
            }
            Some(_) => Ok(()),
            None => {
                msps.insert(id, (at.to_owned(), raw.value.to_vec()));
                Ok(())
            }
        }
    };

    let channel = config.channel_group.as_ref().ok_or("the configuration has no channel group")?;
    only(
        channel,
        "/Channel",
        &["HashingAlgorithm", "BlockDataHashingStructure", "OrdererAddresses", "Consortium", "Capabilities"],
    )?;
    if let Some(bad) =
        channel.groups.iter().find(|e| !["Orderer", "Application", "Consortiums"].contains(&e.key.as_str()))
    {
        return Err(format!("/Channel: disallowed channel group '{}'", bad.key));
    }
    let endpoints_allowed = capability(channel, &["V1_4_2", "V1_4_3"]);
    if let Some(orderer) = sub(channel, "Orderer") {
        only(
            orderer,
            "/Channel/Orderer",
            &["ConsensusType", "BatchSize", "BatchTimeout", "KafkaBrokers", "ChannelRestrictions", "Capabilities"],
        )?;
        for entry in &orderer.groups {
            let at = format!("/Channel/Orderer/{}", entry.key);
            let group = entry.value.clone().unwrap_or_default();
            if has(&group, "Endpoints") && !endpoints_allowed {
                return Err(format!(
                    "{at}: an orderer organisation cannot hold Endpoints until the channel has the V1_4_2 capability"
                ));
            }
            org(&group, &at, &["MSP", "Endpoints"])?;
        }
        if !has(orderer, "Capabilities") {
            if has(channel, "Capabilities") {
                return Err("/Channel: cannot enable channel capabilities without orderer support first".into());
            }
            if sub(channel, "Application").is_some_and(|a| has(a, "Capabilities")) {
                return Err(
                    "/Channel/Application: cannot enable application capabilities without orderer support first".into(),
                );
            }
        }
    }
    if let Some(application) = sub(channel, "Application") {
        only(application, "/Channel/Application", &["ACLs", "Capabilities"])?;
        if has(application, "ACLs") && !capability(application, &["V1_2", "V1_3", "V1_4_2"]) {
            return Err("/Channel/Application: ACLs may not be specified without the required capability (V1_2)".into());
        }
        for entry in &application.groups {
            let at = format!("/Channel/Application/{}", entry.key);
            org(&entry.value.clone().unwrap_or_default(), &at, &["MSP", "AnchorPeers"])?;
        }
    }
    if let Some(consortiums) = sub(channel, "Consortiums") {
        for entry in &consortiums.groups {
            let at = format!("/Channel/Consortiums/{}", entry.key);
            let consortium = entry.value.clone().unwrap_or_default();
            only(&consortium, &at, &["ChannelCreationPolicy"])?;
            for member in &consortium.groups {
                let at = format!("{at}/{}", member.key);
                org(&member.value.clone().unwrap_or_default(), &at, &["MSP"])?;
            }
        }
    }
    Ok(())
}

/// What a configuration may not change from the one before it (Fabric's `ValidateNew`): the
/// consensus type, and the MSP ID of an organisation kept under the same name (in the Orderer
/// and Application groups and in each consortium); a section present before stays present.
pub fn check_successor(old: &Config, new: &Config) -> Result<(), String> {
    use crate::proto::common::ConfigGroup;

    fn sub<'a>(group: &'a ConfigGroup, key: &str) -> Option<&'a ConfigGroup> {
        group.groups.iter().rev().find(|e| e.key == key).and_then(|e| e.value.as_ref())
    }
    fn msp_id(org: &ConfigGroup) -> Option<String> {
        let raw = org.values.iter().rev().find(|e| e.key == "MSP").and_then(|e| e.value.as_ref())?;
        match Value::decode("MSP", &raw.value).ok()? {
            Value::Msp(msp) => Some(match *msp {
                super::configtree::Msp::Fabric(c) => c.name,
                super::configtree::Msp::Idemix(c) => c.name,
            }),
            _ => None,
        }
    }
    fn same_ids(old: &ConfigGroup, new: &ConfigGroup, what: &str) -> Result<(), String> {
        for entry in &old.groups {
            let (Some(before), Some(after)) = (entry.value.as_ref(), sub(new, &entry.key)) else { continue };
            let (a, b) = (msp_id(before).unwrap_or_default(), msp_id(after).unwrap_or_default());
            if a != b {
                return Err(format!("{what} org {} attempted to change MSP ID from {a} to {b}", entry.key));
            }
        }
        Ok(())
    }
    let consensus = |group: &ConfigGroup| {
        group.values.iter().rev().find(|e| e.key == "ConsensusType").and_then(|e| e.value.as_ref()).and_then(|v| {
            match Value::decode("ConsensusType", &v.value).ok()? {
                Value::ConsensusType(c) => Some(c.r#type),
                _ => None,
            }
        })
    };
    let (old, new) = (
        old.channel_group.as_ref().ok_or("the configuration has no channel group")?,
        new.channel_group.as_ref().ok_or("the new configuration has no channel group")?,
    );
    if let Some(before) = sub(old, "Orderer") {
        let after = sub(new, "Orderer").ok_or("current config has orderer section, but new config does not")?;
        let (a, b) = (consensus(before).unwrap_or_default(), consensus(after).unwrap_or_default());
        if a != b {
            return Err(format!("attempted to change consensus type from {a} to {b}"));
        }
        same_ids(before, after, "orderer")?;
    }
    if let Some(before) = sub(old, "Application") {
        let after = sub(new, "Application").ok_or("current config has application section, but new config does not")?;
        same_ids(before, after, "application")?;
    }
    match (sub(old, "Consortiums"), sub(new, "Consortiums")) {
        (Some(before), Some(after)) => {
            for entry in &before.groups {
                let (Some(b), Some(a)) = (entry.value.as_ref(), sub(after, &entry.key)) else { continue };
                same_ids(b, a, &format!("consortium {}", entry.key))?;
            }
        }
        (Some(_), None) => return Err("current config has consortiums section, but new config does not".into()),
        (None, Some(_)) => return Err("current config has no consortiums section, but new config does".into()),
        (None, None) => {}
    }
    Ok(())
}

/// A channel's configuration in force, read and checked every way the ordering service needs
/// it (Fabric's bundle): the tree, its ordering values, and the validator (with the policies and
/// MSPs) that judges updates to it.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub channel_id: String,
    pub config: Config,
    pub values: OrderingValues,
    pub validator: super::configtx::Validator,
}

/// Two bundles are equal when they hold the same configuration of the same channel.
impl PartialEq for Bundle {
    fn eq(&self, other: &Self) -> bool {
        self.channel_id == other.channel_id && self.config == other.config
    }
}

impl Bundle {
    /// The bundle of `channel_id`'s configuration; an error says what Fabric would refuse in it.
    pub fn new(channel_id: &str, config: Config) -> Result<Self, String> {
        let values = OrderingValues::read(&config)?;
        let validator = super::configtx::Validator::new(channel_id, &config).map_err(|e| e.message)?;
        Ok(Bundle { channel_id: channel_id.to_owned(), config, values, validator })
    }

    /// The bundle a config update yields (Fabric's `ProposeConfigUpdate` of a channel: the
    /// configtx rules, the new configuration's own checks, and what it may not change).
    pub fn propose(
        &self,
        update: &crate::proto::common::ConfigUpdateEnvelope,
        signers: &[(super::msp::Identity, bytes::Bytes)],
    ) -> Result<Bundle, super::configtx::ConfigtxError> {
        let invalid =
            |message: String| super::configtx::ConfigtxError { kind: super::configtx::Kind::Invalid, message };
        let config = self.validator.propose(update, signers)?;
        check_successor(&self.config, &config).map_err(invalid)?;
        Bundle::new(&self.channel_id, config).map_err(invalid)
    }
}

/// Fabric's batch size rules: no zero, and PreferredMaxBytes within AbsoluteMaxBytes.
fn check_batch_size(b: &BatchSize) -> Result<BatchSize, String> {
    let at = "/Channel/Orderer/BatchSize";
    if b.max_message_count == 0 {
        return Err(format!("{at}: MaxMessageCount is 0"));
    }
    if b.absolute_max_bytes == 0 {
        return Err(format!("{at}: AbsoluteMaxBytes is 0"));
    }
    if b.preferred_max_bytes == 0 {
        return Err(format!("{at}: PreferredMaxBytes is 0"));
    }
    if b.preferred_max_bytes > b.absolute_max_bytes {
        return Err(format!(
            "{at}: PreferredMaxBytes ({}) is greater than AbsoluteMaxBytes ({})",
            b.preferred_max_bytes, b.absolute_max_bytes
        ));
    }
    Ok(*b)
}

/// Fabric's rule for a Kafka broker entry: `host:port`, one colon, a 16-bit port, and a host of
/// letters, digits, dots and hyphens that neither starts nor ends with a dot or a hyphen (an empty
/// host passes, as in Fabric).
pub fn broker_seems_valid(broker: &str) -> bool {
    let mut parts = broker.split(':');
    let (Some(host), Some(port), None) = (parts.next(), parts.next(), parts.next()) else { return false };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err() {
        return false;
    }
    let inner = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
    let bytes = host.as_bytes();
    match bytes {
        [] => true,
        [one] => one.is_ascii_alphanumeric(),
        [first, .., last] => {
            first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() && bytes.iter().all(|b| inner(*b))
        }
    }
}

/// A Go `time.ParseDuration` string: an optional sign, then decimal numbers each with a unit
/// (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), like `250ms`, `2s`, `1m30s`, `1.5h`. A negative duration
/// is an error here (a batch timeout must be positive).
pub fn go_duration(text: &str) -> Result<Duration, String> {
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.starts_with('-') {
        return Err("negative duration".into());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return Err(format!("'{text}' is not a duration: a number is missing"));
        }
        let value: f64 = number.parse().map_err(|_| format!("'{text}' is not a duration: bad number '{number}'"))?;
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let nanos = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("'{text}' is not a duration: a unit is missing")),
            other => return Err(format!("'{text}' is not a duration: unknown unit '{other}'")),
        };
        total += value * nanos;
        rest = next;
    }
    if total > u64::MAX as f64 {
        return Err(format!("'{text}' is too long"));
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

#[cfg(test)]
mod tests;
