//! A configuration as JSON the way Fabric's `configtxlator proto_decode` shows it, so that Fabric
//! users read (and later write) OSN's configurations with the tools and habits they have: proto
//! field names, every field present (zero values too; empty bytes and unset messages as `null`,
//! empty lists as `[]`), 64-bit integers as strings, enums by name, bytes in base64, maps as
//! objects, and each value, policy and principal decoded by its type.

use base64::Engine as _;
use prost::Message as _;
use serde_json::{json, Map, Value as Json};

use super::{Msp, Rule, Value};
use crate::proto::common::{
    implicit_meta_policy, signature_policy, Config, ConfigGroup, ImplicitMetaPolicy, Policy, SignaturePolicy,
    SignaturePolicyEnvelope,
};
use crate::proto::msp::{
    msp_principal::Classification, msp_role::MspRoleType, FabricMspConfig, FabricOuIdentifier, MspPrincipal, MspRole,
    OrganizationUnit, SerializedIdentity,
};

fn bytes(b: &[u8]) -> Json {
    if b.is_empty() {
        Json::Null
    } else {
        Json::String(base64::engine::general_purpose::STANDARD.encode(b))
    }
}

fn bytes_list(list: &[bytes::Bytes]) -> Json {
    Json::Array(list.iter().map(|b| Json::String(base64::engine::general_purpose::STANDARD.encode(b))).collect())
}

fn strings(list: &[String]) -> Json {
    Json::Array(list.iter().map(|s| Json::String(s.clone())).collect())
}

/// The `config` of a CONFIG envelope: `{"channel_group": …, "sequence": "N"}`.
pub fn config(config: &Config) -> Result<Json, String> {
    Ok(json!({
        "channel_group": match &config.channel_group { Some(g) => group(g)?, None => Json::Null },
        "sequence": config.sequence.to_string(),
    }))
}

/// A group, its values and policies decoded.
pub fn group(group: &ConfigGroup) -> Result<Json, String> {
    let mut groups = Map::new();
    for e in &group.groups {
        groups.insert(e.key.clone(), e.value.as_ref().map(self::group).transpose()?.unwrap_or(Json::Null));
    }
    let mut values = Map::new();
    for e in &group.values {
        let v = e.value.as_ref().ok_or_else(|| format!("value {} is empty", e.key))?;
        let decoded = if v.value.is_empty() { Json::Null } else { value(&Value::decode(&e.key, &v.value)?)? };
        values.insert(
            e.key.clone(),
            json!({ "mod_policy": v.mod_policy, "value": decoded, "version": v.version.to_string() }),
        );
    }
    let mut policies = Map::new();
    for e in &group.policies {
        let p = e.value.as_ref().ok_or_else(|| format!("policy {} is empty", e.key))?;
        let decoded = p.policy.as_ref().map(policy).transpose()?.unwrap_or(Json::Null);
        policies.insert(
            e.key.clone(),
            json!({ "mod_policy": p.mod_policy, "policy": decoded, "version": p.version.to_string() }),
        );
    }
    Ok(json!({
        "groups": groups,
        "mod_policy": group.mod_policy,
        "policies": policies,
        "values": values,
        "version": group.version.to_string(),
    }))
}

/// A policy: its type number and its rule decoded.
pub fn policy(policy: &Policy) -> Result<Json, String> {
    let value = if policy.value.is_empty() {
        Json::Null
    } else {
        match Rule::decode(policy)? {
            Rule::Signature(envelope) => signature_envelope(&envelope)?,
            Rule::ImplicitMeta(meta) => implicit_meta(&meta),
        }
    };
    Ok(json!({ "type": policy.r#type, "value": value }))
}

fn implicit_meta(meta: &ImplicitMetaPolicy) -> Json {
    let rule = implicit_meta_policy::Rule::try_from(meta.rule)
        .map(|r| Json::String(r.as_str_name().to_owned()))
        .unwrap_or(json!(meta.rule));
    json!({ "rule": rule, "sub_policy": meta.sub_policy })
}

fn signature_envelope(envelope: &SignaturePolicyEnvelope) -> Result<Json, String> {
    Ok(json!({
        "identities": envelope.identities.iter().map(principal).collect::<Result<Vec<_>, _>>()?,
        "rule": envelope.rule.as_ref().map(signature_rule).unwrap_or(Json::Null),
        "version": envelope.version,
    }))
}

fn signature_rule(rule: &SignaturePolicy) -> Json {
    match &rule.r#type {
        Some(signature_policy::Type::SignedBy(i)) => json!({ "signed_by": i }),
        Some(signature_policy::Type::NOutOf(n)) => {
            json!({ "n_out_of": { "n": n.n, "rules": n.rules.iter().map(signature_rule).collect::<Vec<_>>() } })
        }
        None => json!({}),
    }
}

fn principal(principal: &MspPrincipal) -> Result<Json, String> {
    let class = Classification::try_from(principal.principal_classification)
        .map_err(|_| format!("unknown principal classification {}", principal.principal_classification))?;
    let decoded = match class {
        Classification::Role => {
            let role = MspRole::decode(principal.principal.clone()).map_err(|e| format!("MSPRole: {e}"))?;
            let name = MspRoleType::try_from(role.role)
                .map(|r| Json::String(r.as_str_name().to_owned()))
                .unwrap_or(json!(role.role));
            json!({ "msp_identifier": role.msp_identifier, "role": name })
        }
        Classification::OrganizationUnit => {
            let ou =
                OrganizationUnit::decode(principal.principal.clone()).map_err(|e| format!("OrganizationUnit: {e}"))?;
            json!({
                "certifiers_identifier": bytes(&ou.certifiers_identifier),
                "msp_identifier": ou.msp_identifier,
                "organizational_unit_identifier": ou.organizational_unit_identifier,
            })
        }
        Classification::Identity => {
            let id = SerializedIdentity::decode(principal.principal.clone())
                .map_err(|e| format!("SerializedIdentity: {e}"))?;
            json!({ "id_bytes": bytes(&id.id_bytes), "mspid": id.mspid })
        }
        other => return Err(format!("principal classification {} is not shown", other.as_str_name())),
    };
    Ok(json!({ "principal": decoded, "principal_classification": class.as_str_name() }))
}

fn ou_identifier(id: &Option<FabricOuIdentifier>) -> Json {
    match id {
        Some(id) => json!({
            "certificate": bytes(&id.certificate),
            "organizational_unit_identifier": id.organizational_unit_identifier,
        }),
        None => Json::Null,
    }
}

fn fabric_msp(c: &FabricMspConfig) -> Json {
    json!({
        "admins": bytes_list(&c.admins),
        "crypto_config": c.crypto_config.as_ref().map(|cc| json!({
            "identity_identifier_hash_function": cc.identity_identifier_hash_function,
            "signature_hash_family": cc.signature_hash_family,
        })).unwrap_or(Json::Null),
        "fabric_node_ous": c.fabric_node_ous.as_ref().map(|n| json!({
            "admin_ou_identifier": ou_identifier(&n.admin_ou_identifier),
            "client_ou_identifier": ou_identifier(&n.client_ou_identifier),
            "enable": n.enable,
            "orderer_ou_identifier": ou_identifier(&n.orderer_ou_identifier),
            "peer_ou_identifier": ou_identifier(&n.peer_ou_identifier),
        })).unwrap_or(Json::Null),
        "intermediate_certs": bytes_list(&c.intermediate_certs),
        "name": c.name,
        "organizational_unit_identifiers": c.organizational_unit_identifiers.iter().map(|i| ou_identifier(&Some(i.clone()))).collect::<Vec<_>>(),
        "revocation_list": bytes_list(&c.revocation_list),
        "root_certs": bytes_list(&c.root_certs),
        "signing_identity": c.signing_identity.as_ref().map(|s| json!({
            "private_signer": s.private_signer.as_ref().map(|k| json!({
                "key_identifier": k.key_identifier,
                "key_material": bytes(&k.key_material),
            })).unwrap_or(Json::Null),
            "public_signer": bytes(&s.public_signer),
        })).unwrap_or(Json::Null),
        "tls_intermediate_certs": bytes_list(&c.tls_intermediate_certs),
        "tls_root_certs": bytes_list(&c.tls_root_certs),
    })
}

/// A value decoded.
pub fn value(v: &Value) -> Result<Json, String> {
    Ok(match v {
        Value::HashingAlgorithm(h) => json!({ "name": h.name }),
        Value::BlockDataHashingStructure(s) => json!({ "width": s.width }),
        Value::Addresses(a) => json!({ "addresses": strings(&a.addresses) }),
        Value::Consortium(c) => json!({ "name": c.name }),
        Value::Capabilities(c) => {
            let map: Map<String, Json> = c.capabilities.iter().map(|e| (e.key.clone(), json!({}))).collect();
            json!({ "capabilities": map })
        }
        Value::ConsensusType(c) => {
            let state = crate::proto::orderer::consensus_type::State::try_from(c.state)
                .map(|s| Json::String(s.as_str_name().to_owned()))
                .unwrap_or(json!(c.state));
            json!({ "metadata": bytes(&c.metadata), "state": state, "type": c.r#type })
        }
        Value::BatchSize(b) => json!({
            "absolute_max_bytes": b.absolute_max_bytes,
            "max_message_count": b.max_message_count,
            "preferred_max_bytes": b.preferred_max_bytes,
        }),
        Value::BatchTimeout(t) => json!({ "timeout": t.timeout }),
        Value::KafkaBrokers(b) => json!({ "brokers": strings(&b.brokers) }),
        Value::ChannelRestrictions(r) => json!({ "max_count": r.max_count.to_string() }),
        Value::Msp(msp) => match msp.as_ref() {
            Msp::Fabric(c) => json!({ "config": fabric_msp(c), "type": 0 }),
            Msp::Idemix(_) => return Err("an IDEMIX MSP is not shown".into()),
        },
        Value::AnchorPeers(a) => json!({
            "anchor_peers": a.anchor_peers.iter().map(|p| json!({ "host": p.host, "port": p.port })).collect::<Vec<_>>(),
        }),
        Value::Acls(a) => {
            let map: Map<String, Json> = a
                .acls
                .iter()
                .map(|e| {
                    let policy_ref = e.value.as_ref().map(|r| r.policy_ref.clone()).unwrap_or_default();
                    (e.key.clone(), json!({ "policy_ref": policy_ref }))
                })
                .collect();
            json!({ "acls": map })
        }
        Value::ChannelCreationPolicy(p) => policy(p)?,
    })
}
