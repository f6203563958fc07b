//! The API's own documentation, served by every OSN:
//!
//! - `GET /openapi.json`: the OpenAPI 3.0 document, [`OPENAPI`] (`openapi.json` beside this
//!   module, written by hand and served byte for byte).
//! - `GET /docs`: [`PAGE`] (`api.html` beside this module), a self-contained page with inline CSS
//!   and JavaScript that loads `/openapi.json`, renders every operation and lets a browser try
//!   the HTTP and websocket routes. It loads nothing from anywhere else, so it works offline.
//!
//! The tests below hold the document to the API's contract: it parses as OpenAPI 3 and loses no
//! key doing so, every reference resolves, it lists exactly the API's operations with their path
//! parameters, both formats and error statuses that match their HTTP codes, and its examples are
//! valid messages (the example envelopes pass the checks of the routes they are for). The
//! integration test `tests/it/openapi.rs` checks a running OSN serves what the document lists.

use actix_web::http::header;
use actix_web::HttpResponse;

use super::negotiate::JSON;

/// The OpenAPI 3.0.3 document describing every route.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The interactive API page.
pub const PAGE: &str = include_str!("api.html");

/// What the page may do: run its own inline script and style, and talk to this OSN (HTTP and
/// websockets). Nothing is loaded from anywhere else.
pub const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                           connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; form-action 'none'";

/// `GET /openapi.json`.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type(JSON).body(OPENAPI)
}

/// `GET /docs`.
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, PAGE_POLICY))
        .body(PAGE)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use prost::Message as _;
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use super::*;
    use crate::core::envelope::{check_broadcast, check_seek_request};
    use crate::core::seek::{newest, oldest, resolve, specified};
    use crate::proto::{self, HeaderType, Status};

    /// Every operation the router serves: (method, path template).
    const OPERATIONS: &[(&str, &str)] = &[
        ("GET", "/v1/channels"),
        ("POST", "/v1/channels"),
        ("GET", "/v1/channels/{channel}"),
        ("GET", "/v1/channels/{channel}/config"),
        ("POST", "/v1/channels/{channel}/config"),
        ("POST", "/v1/channels/{channel}/broadcast"),
        ("POST", "/v1/channels/{channel}/broadcast:batch"),
        ("GET", "/v1/channels/{channel}/broadcast"),
        ("GET", "/v1/channels/{channel}/deliver"),
        ("POST", "/v1/channels/{channel}/deliver"),
        ("GET", "/v1/channels/{channel}/blocks/{number}"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/"),
        ("GET", "/explorer"),
        ("GET", "/explorer/dev-reader"),
        ("GET", "/version"),
        ("GET", "/logspec"),
        ("PUT", "/logspec"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
    ];

    const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

    fn doc() -> Value {
        serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
    }

    /// The operations of the document: (METHOD, path, operation).
    fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if METHODS.contains(&method.as_str()) {
                    ops.push((method.to_uppercase(), path.clone(), op));
                }
            }
        }
        ops
    }

    /// Follows `$ref`s (local JSON pointers) to the object they name.
    fn deref<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            v = r.strip_prefix('#').and_then(|p| doc.pointer(p)).unwrap_or_else(|| panic!("unresolved $ref {r}"));
        }
        v
    }

    /// Calls `f(JSON pointer, value)` on `v` and every value inside it.
    fn walk<'a>(v: &'a Value, at: &str, f: &mut impl FnMut(&str, &'a Value)) {
        f(at, v);
        match v {
            Value::Object(m) => {
                m.iter().for_each(|(k, c)| walk(c, &format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), f))
            }
            Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| walk(c, &format!("{at}/{i}"), f)),
            _ => {}
        }
    }

    #[test]
    fn document_is_openapi_3() {
        let api: openapiv3::OpenAPI = serde_json::from_str(OPENAPI).expect("openapi.json parses as OpenAPI 3");
        assert_eq!(api.openapi, "3.0.3");
        assert_eq!(api.info.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(api.servers.iter().map(|s| s.url.as_str()).collect::<Vec<_>>(), ["/"]);
        assert_eq!(api.operations().count(), OPERATIONS.len());

        // openapiv3 ignores keys it does not know: parse → serialize must keep every value the
        // file has (but `false` defaults, which it leaves out), so a misspelled or misplaced key
        // (`requried`, `example` beside a `$ref`…) fails here instead of being silently dropped.
        let reserialized = serde_json::to_value(&api).unwrap();
        let mut lost = Vec::new();
        walk(&doc(), "", &mut |at, v| {
            let leaf = !v.is_object() && !v.is_array() && *v != Value::Bool(false);
            if leaf && reserialized.pointer(at).is_none() {
                lost.push(at.to_owned());
            }
        });
        assert!(lost.is_empty(), "keys openapiv3 does not understand: {lost:#?}");
    }

    #[test]
    fn every_ref_resolves() {
        let doc = doc();
        let mut refs = 0;
        walk(&doc, "", &mut |at, v| {
            if let Some(r) = v.get("$ref") {
                let r = r.as_str().unwrap_or_else(|| panic!("{at}: $ref is not a string"));
                let target = r.strip_prefix("#/components/").and_then(|_| doc.pointer(&r[1..]));
                assert!(target.is_some(), "{at}: $ref {r} names no component");
                refs += 1;
            }
        });
        assert!(refs > 50, "only {refs} references");
    }

    #[test]
    fn lists_exactly_the_routes_with_ids_and_responses() {
        let doc = doc();
        let got: BTreeSet<(String, String)> = operations(&doc).into_iter().map(|(m, p, _)| (m, p)).collect();
        let want: BTreeSet<(String, String)> = OPERATIONS.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        assert_eq!(got, want);

        let mut ids = BTreeMap::new();
        for (method, path, op) in operations(&doc) {
            let id = op["operationId"].as_str().filter(|s| !s.is_empty());
            let id = id.unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            if let Some(other) = ids.insert(id.to_owned(), format!("{method} {path}")) {
                panic!("operationId {id} used by {other} and {method} {path}");
            }
            assert!(op["summary"].is_string() && op["description"].is_string(), "{id}: summary and description");
            let responses = op["responses"].as_object().filter(|r| !r.is_empty());
            let responses = responses.unwrap_or_else(|| panic!("{id} has no responses"));
            for code in responses.keys() {
                assert!(
                    code == "default" || code.parse::<u16>().is_ok_and(|c| (100..600).contains(&c)),
                    "{id}: {code}"
                );
            }
            // A websocket route says so, and answers 101; no other route does.
            let websocket = op.get("x-websocket").is_some();
            assert_eq!(websocket, responses.contains_key("101"), "{id}: x-websocket and 101 go together");
        }
    }

    #[test]
    fn path_parameters_are_declared_and_required() {
        let doc = doc();
        for (method, path, op) in operations(&doc) {
            let in_template: BTreeSet<String> = path
                .split('/')
                .filter_map(|seg| seg.split_once('{').and_then(|(_, rest)| rest.split_once('}')).map(|(n, _)| n))
                .map(str::to_owned)
                .collect();
            let item = &doc["paths"][&path];
            let params = [&item["parameters"], &op["parameters"]];
            let declared: Vec<&Value> =
                params.iter().filter_map(|p| p.as_array()).flatten().map(|p| deref(&doc, p)).collect();
            let mut in_path = BTreeSet::new();
            for p in declared.iter().filter(|p| p["in"] == "path") {
                let name = p["name"].as_str().unwrap().to_owned();
                assert_eq!(p["required"], true, "{method} {path}: path parameter {name} must be required");
                assert!(p["schema"].is_object(), "{method} {path}: path parameter {name} has no schema");
                in_path.insert(name);
            }
            assert_eq!(in_path, in_template, "{method} {path}: declared path parameters");
        }
    }

    #[test]
    fn api_routes_document_both_formats() {
        let doc = doc();
        for (method, path, op) in operations(&doc) {
            if !path.starts_with("/v1/") {
                continue;
            }
            for (code, resp) in op["responses"].as_object().unwrap() {
                let resp = deref(&doc, resp);
                if code == "101" {
                    assert!(resp.get("content").is_none(), "{method} {path}: 101 has no body");
                    continue;
                }
                let content = resp["content"].as_object();
                let types: BTreeSet<&str> = content.into_iter().flat_map(|c| c.keys()).map(String::as_str).collect();
                assert!(types.contains("application/x-protobuf"), "{method} {path} {code}: no protobuf ({types:?})");
                let json = if path.ends_with("/deliver") && method == "POST" { "application/x-ndjson" } else { JSON };
                assert!(types.contains(json), "{method} {path} {code}: no {json} ({types:?})");
            }
            if let Some(body) = op.get("requestBody") {
                let content = body["content"].as_object().unwrap();
                assert!(content.contains_key(JSON) && content.contains_key("application/x-protobuf"), "{path}");
            }
        }
    }

    /// Parses `v` as the JSON form of the message a schema component describes, when it is one.
    fn parse_as(schema: &str, v: &Value) -> Option<Result<(), String>> {
        fn p<M: DeserializeOwned>(v: &Value) -> Result<(), String> {
            serde_json::from_value::<M>(v.clone()).map(drop).map_err(|e| e.to_string())
        }
        let name = |known: bool| if known { Ok(()) } else { Err(format!("{v} is not a name of {schema}")) };
        Some(match schema {
            "Status" => name(v.as_str().and_then(Status::from_str_name).is_some()),
            "ChannelPhase" => name(v.as_str().and_then(proto::osn::channel_info::Phase::from_str_name).is_some()),
            "HeaderType" => name(v.as_i64().and_then(|n| HeaderType::try_from(n as i32).ok()).is_some()),
            "Envelope" => p::<proto::Envelope>(v),
            "Payload" => p::<proto::Payload>(v),
            "Header" => p::<proto::Header>(v),
            "ChannelHeader" => p::<proto::ChannelHeader>(v),
            "SignatureHeader" => p::<proto::SignatureHeader>(v),
            "BroadcastResponse" => p::<proto::BroadcastResponse>(v),
            "DeliverResponse" => p::<proto::DeliverResponse>(v),
            "SeekInfo" => p::<proto::SeekInfo>(v),
            "SeekPosition" => p::<proto::SeekPosition>(v),
            "SeekNewest" => p::<proto::orderer::SeekNewest>(v),
            "SeekOldest" => p::<proto::orderer::SeekOldest>(v),
            "SeekSpecified" => p::<proto::orderer::SeekSpecified>(v),
            "Block" => p::<proto::Block>(v),
            "BlockHeader" => p::<proto::BlockHeader>(v),
            "BlockData" => p::<proto::BlockData>(v),
            "BlockMetadata" => p::<proto::BlockMetadata>(v),
            "ChannelList" => p::<proto::osn::ChannelList>(v),
            "ChannelSummary" => p::<proto::osn::ChannelSummary>(v),
            "ChannelInfo" => p::<proto::osn::ChannelInfo>(v),
            "KafkaPosition" => p::<proto::osn::KafkaPosition>(v),
            "BatchSize" => p::<proto::BatchSize>(v),
            "ConfigUpdateEnvelope" => p::<proto::common::ConfigUpdateEnvelope>(v),
            "ConfigSignature" => p::<proto::common::ConfigSignature>(v),
            "ConfigUpdate" => p::<proto::common::ConfigUpdate>(v),
            "ConfigGroup" => p::<proto::common::ConfigGroup>(v),
            "ConfigGroupEntry" => p::<proto::common::ConfigGroupEntry>(v),
            "ConfigValueEntry" => p::<proto::common::ConfigValueEntry>(v),
            "ConfigPolicyEntry" => p::<proto::common::ConfigPolicyEntry>(v),
            "ConfigValue" => p::<proto::common::ConfigValue>(v),
            "ConfigPolicy" => p::<proto::common::ConfigPolicy>(v),
            "Policy" => p::<proto::common::Policy>(v),
            "Config" => configtxlator_config(v),
            "Version" => p::<crate::http::operations::Version>(v),
            "LogSpec" => p::<crate::http::operations::LogSpec>(v),
            _ => return None,
        })
    }

    /// Whether `v` has the shape of configtxlator's JSON of a `common.Config` (the Config schema):
    /// a `sequence` string and a root group whose groups, values and policies are objects by name
    /// (the examples' contents are checked by `example_config_updates_are_real`).
    fn configtxlator_config(v: &Value) -> Result<(), String> {
        fn group(g: &Value, at: &str) -> Result<(), String> {
            let keys: BTreeSet<&str> =
                g.as_object().ok_or(format!("{at} is not an object"))?.keys().map(String::as_str).collect();
            if keys != BTreeSet::from(["groups", "mod_policy", "policies", "values", "version"]) {
                return Err(format!("{at} has the fields {keys:?}"));
            }
            if g["version"].as_str().is_none_or(|n| n.parse::<u64>().is_err()) || !g["mod_policy"].is_string() {
                return Err(format!("{at}: version {} and mod_policy {}", g["version"], g["mod_policy"]));
            }
            for kind in ["values", "policies"] {
                for (name, e) in g[kind].as_object().ok_or(format!("{at}/{kind} is not an object"))? {
                    if !e["version"].is_string() || !e["mod_policy"].is_string() {
                        return Err(format!("{at}/{kind}/{name} is not a configtxlator {kind} entry"));
                    }
                }
            }
            for (name, child) in g["groups"].as_object().ok_or(format!("{at}/groups is not an object"))? {
                group(child, &format!("{at}/{name}"))?;
            }
            Ok(())
        }
        let keys: BTreeSet<&str> = v.as_object().ok_or("not an object")?.keys().map(String::as_str).collect();
        if keys != BTreeSet::from(["channel_group", "sequence"])
            || v["sequence"].as_str().and_then(|n| n.parse::<u64>().ok()).is_none()
        {
            return Err(format!("not a configtxlator Config: fields {keys:?}, sequence {}", v["sequence"]));
        }
        group(&v["channel_group"], "/Channel")
    }

    /// The component a schema names (`Envelope` for `{$ref: .../Envelope}`), and whether the
    /// value is an array of it.
    fn schema_name(schema: &Value) -> Option<(&str, bool)> {
        fn name(s: &Value) -> Option<&str> {
            s["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/"))
        }
        match name(schema) {
            Some(n) => Some((n, false)),
            None if schema["type"] == "array" => name(&schema["items"]).map(|n| (n, true)),
            None => None,
        }
    }

    #[test]
    fn examples_are_valid_messages() {
        let doc = doc();
        let mut checked = 0;
        let mut check = |at: &str, schema: &Value, example: &Value| {
            let Some((name, array)) = schema_name(schema) else { return };
            let items: Vec<&Value> = if array { example.as_array().unwrap().iter().collect() } else { vec![example] };
            for item in items {
                if let Some(result) = parse_as(name, item) {
                    result.unwrap_or_else(|e| panic!("{at}: example is not a valid {name}: {e}\n{item}"));
                    checked += 1;
                }
            }
        };
        for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
            if let Some(example) = schema.get("example") {
                check(name, &serde_json::json!({ "$ref": format!("#/components/schemas/{name}") }), example);
            }
        }
        walk(&doc, "", &mut |at, v| {
            // Media types (`schema` + `example`/`examples`) and websocket messages (`send` + `example`).
            let schema = v.get("schema").or_else(|| v.get("send"));
            if let (Some(schema), Some(example)) = (schema, v.get("example")) {
                check(at, schema, example);
            }
            if let (Some(schema), Some(examples)) = (schema, v.get("examples").and_then(Value::as_object)) {
                examples.values().for_each(|e| check(at, schema, &e["value"]));
            }
        });
        assert!(checked > 40, "only {checked} examples checked");
    }

    #[test]
    fn error_examples_carry_the_status_of_their_http_code() {
        let doc = doc();
        let mut checked = 0;
        for (method, path, op) in operations(&doc) {
            for (code, resp) in op["responses"].as_object().unwrap() {
                let Ok(code) = code.parse::<u16>() else { continue };
                for media in deref(&doc, resp)["content"].as_object().into_iter().flat_map(|c| c.values()) {
                    // Only status answers: a ChannelInfo example has a `status` too, a phase.
                    let status_answer =
                        matches!(schema_name(&media["schema"]), Some(("BroadcastResponse" | "DeliverResponse", false)));
                    if !status_answer {
                        continue;
                    }
                    let named = media["examples"].as_object().into_iter().flat_map(|e| e.values()).map(|e| &e["value"]);
                    for example in std::iter::once(&media["example"]).chain(named) {
                        let Some(status) = example.get("status").and_then(Value::as_str) else { continue };
                        let status = Status::from_str_name(status).expect("a Status name");
                        // The config routes answer a config transaction that lost to the chain's
                        // state when it was consumed 409 CONFLICT, and one its approvals or the
                        // channel limit refuse 403 FORBIDDEN, both with Fabric's BAD_REQUEST; a read
                        // without credentials is HTTP's 401, with Fabric's FORBIDDEN.
                        let config_route = method == "POST" && (path == "/v1/channels" || path.ends_with("/config"));
                        let config = status == Status::BadRequest && config_route;
                        let (conflict, not_approved) = (code == 409 && config, code == 403 && config);
                        let unauthenticated = code == 401 && status == Status::Forbidden;
                        assert!(
                            status.http_code() == code || conflict || not_approved || unauthenticated,
                            "{method} {path}: {status:?} answered with {code}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 30, "only {checked} error examples checked");
    }

    fn envelope(v: &Value) -> proto::Envelope {
        serde_json::from_value(v.clone()).unwrap()
    }

    #[test]
    fn example_envelopes_are_accepted_by_their_routes() {
        let doc = doc();
        let paths = &doc["paths"];
        let tx = &paths["/v1/channels/{channel}/broadcast"]["post"]["requestBody"]["content"][JSON]["example"];
        check_broadcast(&envelope(tx), "devchannel", 1 << 20).expect("broadcast example");
        let ws_tx = &paths["/v1/channels/{channel}/broadcast"]["get"]["x-websocket"]["example"];
        check_broadcast(&envelope(ws_tx), "devchannel", 1 << 20).expect("websocket broadcast example");
        let batch = &paths["/v1/channels/{channel}/broadcast:batch"]["post"]["requestBody"]["content"][JSON]["example"];
        check_broadcast(&envelope(&batch[0]), "devchannel", 1 << 20).expect("first batch example");

        // The Envelope schema's example holds the Payload schema's example.
        let schemas = &doc["components"]["schemas"];
        let payload = proto::Payload::decode(envelope(&schemas["Envelope"]["example"]).payload).unwrap();
        assert_eq!(serde_json::to_value(&payload).unwrap(), schemas["Payload"]["example"]);

        // The deliver examples ask for what their summaries say.
        let seek = |v: &Value| check_seek_request(&envelope(v), "devchannel").expect("a seek request");
        let post = &paths["/v1/channels/{channel}/deliver"]["post"]["requestBody"]["content"][JSON]["examples"];
        let ws = &paths["/v1/channels/{channel}/deliver"]["get"]["x-websocket"]["example"];
        for (example, start, stop) in [
            (&post["oldestToNewest"]["value"], oldest(), newest()),
            (ws, oldest(), newest()),
            (&post["followFromNewest"]["value"], newest(), specified(u64::MAX)),
        ] {
            let info = seek(example).seek_info;
            assert_eq!((info.start, info.stop), (Some(start), Some(stop)));
        }
        let forever = resolve(&seek(&post["followFromNewest"]["value"]).seek_info, 2).unwrap();
        assert_eq!((forever.start, forever.stop, forever.wait), (1, u64::MAX, true));
    }

    /// A JSON example as the message it stands for.
    fn message<M: DeserializeOwned>(v: &Value) -> M {
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
    }

    /// An MSP as configtxlator's JSON shows it (`core::configtree::json`), back as the
    /// `msp.FabricMSPConfig` it shows (no signing identity: channel MSPs have none). What it would
    /// leave out shows when the configuration rebuilt from it is compared with the JSON.
    fn fabric_msp(v: &Value) -> proto::msp::FabricMspConfig {
        use base64::Engine as _;
        use proto::msp::{FabricCryptoConfig, FabricMspConfig, FabricNodeOUs, FabricOuIdentifier};
        let bytes = |v: &Value| -> bytes::Bytes {
            v.as_str().map(|b| base64::engine::general_purpose::STANDARD.decode(b).unwrap().into()).unwrap_or_default()
        };
        let list = |v: &Value| v.as_array().unwrap().iter().map(bytes).collect::<Vec<_>>();
        let text = |v: &Value| v.as_str().unwrap().to_owned();
        let ou = |v: &Value| {
            (!v.is_null()).then(|| FabricOuIdentifier {
                certificate: bytes(&v["certificate"]),
                organizational_unit_identifier: text(&v["organizational_unit_identifier"]),
            })
        };
        assert!(v["signing_identity"].is_null());
        let (crypto, node_ous) = (&v["crypto_config"], &v["fabric_node_ous"]);
        FabricMspConfig {
            name: text(&v["name"]),
            root_certs: list(&v["root_certs"]),
            intermediate_certs: list(&v["intermediate_certs"]),
            admins: list(&v["admins"]),
            revocation_list: list(&v["revocation_list"]),
            signing_identity: None,
            organizational_unit_identifiers: v["organizational_unit_identifiers"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(ou)
                .collect(),
            crypto_config: (!crypto.is_null()).then(|| FabricCryptoConfig {
                signature_hash_family: text(&crypto["signature_hash_family"]),
                identity_identifier_hash_function: text(&crypto["identity_identifier_hash_function"]),
            }),
            tls_root_certs: list(&v["tls_root_certs"]),
            tls_intermediate_certs: list(&v["tls_intermediate_certs"]),
            fabric_node_ous: (!node_ous.is_null()).then(|| FabricNodeOUs {
                enable: node_ous["enable"].as_bool().unwrap(),
                client_ou_identifier: ou(&node_ous["client_ou_identifier"]),
                peer_ou_identifier: ou(&node_ous["peer_ou_identifier"]),
                admin_ou_identifier: ou(&node_ous["admin_ou_identifier"]),
                orderer_ou_identifier: ou(&node_ous["orderer_ou_identifier"]),
            }),
        }
    }

    /// The system channel `osn dev` boots from (`cli::dev`: configtxgen's Kafka profile with one
    /// orderer organisation and one consortium), rebuilt from the configuration of a channel
    /// created through it, as configtxlator's JSON shows it: the channel's values, its orderer
    /// group's values and organisations, its members as the consortium's.
    fn dev_system(channel: &Value) -> proto::common::Config {
        use crate::core::genesis::{system_config, Consortium, Organization, SystemProfile};
        let root = &channel["channel_group"];
        let (orderer, application) = (&root["groups"]["Orderer"], &root["groups"]["Application"]);
        let value = |group: &Value, key: &str| group["values"][key]["value"].clone();
        let strings =
            |v: &Value| v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect::<Vec<_>>();
        let capabilities = |v: &Value| v["capabilities"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        let msps = |group: &Value| -> Vec<(String, proto::msp::FabricMspConfig)> {
            let groups = group["groups"].as_object().unwrap();
            groups.iter().map(|(name, g)| (name.clone(), fabric_msp(&g["values"]["MSP"]["value"]["config"]))).collect()
        };
        let mut profile = SystemProfile::kafka(
            strings(&value(orderer, "KafkaBrokers")["brokers"]),
            strings(&value(root, "OrdererAddresses")["addresses"]),
        );
        let batch_size = value(orderer, "BatchSize");
        let field = |name: &str| batch_size[name].as_u64().unwrap() as u32;
        profile.batch_size = proto::BatchSize {
            max_message_count: field("max_message_count"),
            absolute_max_bytes: field("absolute_max_bytes"),
            preferred_max_bytes: field("preferred_max_bytes"),
        };
        profile.batch_timeout = value(orderer, "BatchTimeout")["timeout"].as_str().unwrap().to_owned();
        // A zero max_count is no bytes at all, which configtxlator shows as a null value.
        let max_count = value(orderer, "ChannelRestrictions")["max_count"].as_str().map(|n| n.parse().unwrap());
        profile.max_channels = max_count.unwrap_or(0);
        profile.channel_capabilities = capabilities(&value(root, "Capabilities"));
        profile.orderer_capabilities = capabilities(&value(orderer, "Capabilities"));
        profile.orderer_organizations =
            msps(orderer).into_iter().map(|(name, msp)| Organization::orderer(&name, msp)).collect();
        profile.consortiums = vec![Consortium {
            name: value(root, "Consortium")["name"].as_str().unwrap().to_owned(),
            members: msps(application).into_iter().map(|(name, msp)| Organization::application(&name, msp)).collect(),
        }];
        system_config(&profile)
    }

    /// The config route examples are what `osn dev` and `osn channel` made, and hold together:
    /// every signature verifies; the creation is configtxgen's for `newchannel`, and applied with
    /// its approval to `osn dev`'s system channel it makes the read route's example (a channel
    /// `osn dev` created) and the 201 example; the update, from a writer, applied with its
    /// approval to that configuration makes the 200 example, which differs by the batch timeout
    /// alone; without the approvals they need both are refused, as the 403 examples say; sent
    /// again, the update is refused as the 409 example says.
    #[test]
    fn example_config_updates_are_real() {
        use std::sync::Arc;

        use crate::core::access::{Access, Request};
        use crate::core::channelconfig::{Bundle, OrderingValues};
        use crate::core::config::UpdateRequest;
        use crate::core::configtree::json::config as configtxlator;
        use crate::core::configtx::{channel_template, same_group, Kind, Validator};
        use crate::core::genesis::creation_update;
        use crate::core::msp::{Identity, Role};
        use crate::core::policy::PolicyName;
        use crate::proto::osn::ChannelInfo;

        let doc = doc();
        let paths = &doc["paths"];
        let schemas = &doc["components"]["schemas"];
        let example = |route: &Value, code: &str| route["responses"][code]["content"][JSON]["example"].clone();
        let request = |route: &Value| {
            UpdateRequest::parse(&envelope(&route["requestBody"]["content"][JSON]["example"]))
                .expect("a CONFIG_UPDATE envelope")
        };
        // The envelope's signature verifies, by its creator; so does each ConfigSignature, over
        // its signature header and the update: the approvals, as the signers they are.
        let approvals = |r: &UpdateRequest| -> Vec<(Identity, bytes::Bytes)> {
            let creator = Identity::deserialize(&r.creator).expect("the creator");
            creator.cert.public_key.verify(&r.envelope().payload, &r.envelope().signature).expect("the signature");
            let signed = r.signed_data();
            assert_eq!(signed.len(), r.update_envelope.signatures.len());
            signed
                .into_iter()
                .map(|s| {
                    let approver = Identity::deserialize(&s.identity).expect("an approver");
                    approver.cert.public_key.verify(&s.data, &s.signature).expect("a ConfigSignature");
                    (approver, s.identity)
                })
                .collect()
        };
        let who = |signers: &[(Identity, bytes::Bytes)]| -> Vec<(String, Role)> {
            signers.iter().map(|(id, _)| (id.msp_id.clone(), id.role())).collect()
        };
        let admin_of = |msp_id: &str| vec![(msp_id.to_owned(), Role::Admin)];

        // The creation: configtxgen's update for newchannel in SampleConsortium with the member
        // DevOrgMSP, approved by DevOrgMSP's admin, who also signed the envelope.
        let create_route = &paths["/v1/channels"]["post"];
        let create = request(create_route);
        let want = creation_update("newchannel", "SampleConsortium", &["DevOrgMSP".into()], &["V1_4_2".into()]);
        assert_eq!(create.update.channel_id, want.channel_id);
        assert!(same_group(create.update.read_set.as_ref().unwrap(), want.read_set.as_ref().unwrap()));
        assert!(same_group(create.update.write_set.as_ref().unwrap(), want.write_set.as_ref().unwrap()));
        let create_approvals = approvals(&create);
        assert_eq!(who(&create_approvals), admin_of("DevOrgMSP"));
        assert_eq!(Identity::deserialize(&create.creator).unwrap().msp_id, "DevOrgMSP");

        // Applied to osn dev's system channel, it makes the read route's example.
        let read = example(&paths["/v1/channels/{channel}/config"]["get"], "200");
        let system = dev_system(&read);
        let template = channel_template(&system, "newchannel", &create.update).expect("a creation in the consortium");
        let validator = Validator::new("newchannel", &template).unwrap();
        let created = validator.propose(&create.update_envelope, &create_approvals).expect("the creation applies");
        assert_eq!(configtxlator(&created).unwrap(), read, "the read example is not what the creation makes");
        let refused = validator.propose(&create.update_envelope, &[]).unwrap_err();
        assert_eq!(refused.kind, Kind::Unauthorized, "{refused}");
        let channel: ChannelInfo = message(&example(create_route, "201"));
        let values = OrderingValues::read(&created).unwrap();
        assert_eq!(channel.name, "newchannel");
        assert_eq!((channel.batch_size, channel.config_sequence), (Some(values.batch_size), created.sequence));
        assert_eq!(channel.batch_timeout, humantime::format_duration(values.batch_timeout).to_string());

        // The update: signed by OrdererMSP's admin, a writer of devchannel, and approved by it,
        // which /Channel/Orderer/Admins (a majority of the one orderer organisation's admins)
        // asks for; DevOrgMSP's admin's approval is not enough.
        let update_route = &paths["/v1/channels/{channel}/config"]["post"];
        let responses = &update_route["responses"];
        let info = |code: &str, name: Option<&str>| match name {
            Some(name) => responses[code]["content"][JSON]["examples"][name]["value"]["info"].clone(),
            None => responses[code]["content"][JSON]["example"]["info"].clone(),
        };
        let update = request(update_route);
        assert_eq!(update.update.channel_id, "devchannel");
        let update_approvals = approvals(&update);
        assert_eq!(who(&update_approvals), admin_of("OrdererMSP"));
        let before = Bundle::new("devchannel", created).unwrap();
        let access = Access::new(Arc::new(before.validator.policies().clone()), before.values.sequence, 900);
        let (env, timestamp) = (update.envelope(), update.timestamp());
        let signed = Request { payload: &env.payload, signature: &env.signature, creator: &update.creator, timestamp };
        access.check(&signed, PolicyName::Writers, timestamp.unwrap()).expect("the creator is a writer");
        let after = before.propose(&update.update_envelope, &update_approvals).expect("the update applies");
        let answered = example(update_route, "200");
        assert_eq!(configtxlator(&after.config).unwrap(), answered, "the 200 example is not what the update makes");
        for approvals in [&[][..], &create_approvals] {
            let refused = before.propose(&update.update_envelope, approvals).unwrap_err();
            assert_eq!(refused.kind, Kind::Unauthorized, "{refused}");
            if !approvals.is_empty() {
                assert_eq!(refused.message, info("403", Some("modPolicy")));
            }
        }

        // It sets the batch timeout to 1s (BatchTimeout's version bumped) and changes nothing else.
        let mut undone = answered.clone();
        let timeout = &mut undone["channel_group"]["groups"]["Orderer"]["values"]["BatchTimeout"];
        assert_eq!(std::mem::replace(&mut timeout["value"]["timeout"], "200ms".into()), "1s");
        assert_eq!(std::mem::replace(&mut timeout["version"], "0".into()), "1");
        assert_eq!(std::mem::replace(&mut undone["sequence"], "1".into()), "2");
        assert_eq!(undone, read);

        // Sent again, the update no longer applies: BatchTimeout is at version 1 already.
        let again = after.propose(&update.update_envelope, &update_approvals).unwrap_err();
        assert_eq!((again.kind, again.message.as_str()), (Kind::Invalid, info("409", None).as_str().unwrap()));
        assert_eq!(again.message, info("400", Some("version")));

        // The schema examples are the creation example's parts.
        assert_eq!(serde_json::to_value(&create.update_envelope).unwrap(), schemas["ConfigUpdateEnvelope"]["example"]);
        let approval = &create.update_envelope.signatures[0];
        assert_eq!(serde_json::to_value(approval).unwrap(), schemas["ConfigSignature"]["example"]);
        assert_eq!(serde_json::to_value(&create.update).unwrap(), schemas["ConfigUpdate"]["example"]);
        let application = &create.update.write_set.as_ref().unwrap().groups[0];
        assert_eq!(application.key, "Application");
        assert_eq!(serde_json::to_value(&application.value).unwrap(), schemas["ConfigGroup"]["example"]);
    }

    #[test]
    fn page_loads_nothing_from_elsewhere() {
        let page = PAGE.to_ascii_lowercase();
        for banned in ["http://", "https://", "<script src", "<link", "src=", "@import"] {
            assert!(!page.contains(banned), "api.html contains {banned:?}");
        }
        let style = page.split_once("<style>").and_then(|(_, rest)| rest.split_once("</style>")).unwrap().0;
        assert!(!style.contains("url("), "the style loads nothing");
        assert!(PAGE.contains("\"/openapi.json\""), "the page loads /openapi.json");
        assert!(page.starts_with("<!doctype html>"));
    }
}
