//! The API's own documentation, served by every OSN:
//!
//! - `GET /openapi.json`: the OpenAPI 3.0 document, [`OPENAPI`] (`openapi.json` beside this
//!   module, written by hand and served byte for byte).
//! - `GET /docs`: [`PAGE`] (`api.html` beside this module), a self-contained page with inline CSS
//!   and JavaScript that loads `/openapi.json`, renders every operation and lets a browser try
//!   the HTTP and websocket routes. It loads nothing from anywhere else, so it works offline.
//! - `GET /`: a redirect to `/docs`.
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
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
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

/// `GET /`: to the page.
pub async fn root_redirect() -> HttpResponse {
    HttpResponse::TemporaryRedirect().insert_header((header::LOCATION, "/docs")).finish()
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
            "Version" => p::<crate::http::operations::Version>(v),
            "LogSpec" => p::<crate::http::operations::LogSpec>(v),
            _ => return None,
        })
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
                        // state when it was consumed 409 CONFLICT, with Fabric's BAD_REQUEST; a read
                        // without credentials is HTTP's 401, with Fabric's FORBIDDEN.
                        let conflict = code == 409 && status == Status::BadRequest && path.starts_with("/v1/channels");
                        let unauthenticated = code == 401 && status == Status::Forbidden;
                        assert!(
                            status.http_code() == code || conflict || unauthenticated,
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
