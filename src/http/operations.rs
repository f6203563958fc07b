//! The operations routes, after Fabric's operations service: what an operator's tools ask of a
//! running OSN rather than what clients of a channel do. They are served by the API's listener,
//! or by a listener of their own when `[operations] address` is set (see [`super::serve_operations`]).
//!
//! - `GET /version`: `{"version", "commit"}` (Fabric answers `{"Version", "CommitSHA"}`).
//! - `GET /logspec`: `{"spec"}`, the log filter in force (`OSN_LOG`'s syntax); `PUT /logspec` with
//!   `{"spec"}` replaces it until the process ends (204, as Fabric), or answers 400 and keeps it.
//! - `GET /healthz`, `GET /readyz` and `GET /metrics`: see [`super::health`].
//!
//! Their bodies are JSON only, whatever `Content-Type` and `Accept` say (a `curl -d` sends a
//! form type), and their errors the API's `{status, info}`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::negotiate::{fail, read_body, Format};
use crate::logging::{self, LogSpecError};
use crate::proto::Status;

/// The largest `PUT /logspec` body.
const LOGSPEC_BODY_LIMIT: usize = 16 * 1024;

/// Registers the operations routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/version", "GET").route(web::get().to(version)))
        .service(resource("/logspec", "GET, PUT").route(web::get().to(get_logspec)).route(web::put().to(put_logspec)))
        .service(resource("/healthz", "GET").route(web::get().to(super::health::healthz)))
        .service(resource("/readyz", "GET").route(web::get().to(super::health::readyz)))
        .service(resource("/metrics", "GET").route(web::get().to(super::health::metrics)));
}

/// The body of `GET /version`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Version {
    /// The crate's version.
    pub version: String,
    /// The git commit the binary was built from (abbreviated), or `unknown`.
    pub commit: String,
}

impl Version {
    /// This binary's.
    pub fn current() -> Version {
        Version { version: env!("CARGO_PKG_VERSION").into(), commit: env!("OSN_GIT_COMMIT").into() }
    }
}

/// The body of `GET /logspec` and of `PUT /logspec`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogSpec {
    pub spec: String,
}

/// `GET /version`.
pub async fn version() -> HttpResponse {
    HttpResponse::Ok().json(Version::current())
}

/// `GET /logspec`: the spec in force; empty in a process whose logging is not reloadable.
pub async fn get_logspec() -> HttpResponse {
    let spec = logging::spec().unwrap_or_default();
    tracing::trace!(spec = %spec, "log spec read");
    HttpResponse::Ok().json(LogSpec { spec })
}

/// `PUT /logspec`.
pub async fn put_logspec(req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let body = match read_body(&req, payload, LOGSPEC_BODY_LIMIT).await {
        Ok(body) => body,
        Err((status, info)) => return fail(Format::Json, status, info),
    };
    let wanted: LogSpec = match serde_json::from_slice(&body) {
        Ok(wanted) => wanted,
        Err(e) => {
            let info = format!("body is not a JSON log spec {{\"spec\": \"info,osn=debug\"}}: {e}");
            return fail(Format::Json, Status::BadRequest, info);
        }
    };
    match logging::set_spec(&wanted.spec) {
        Ok(previous) => {
            tracing::info!(spec = %wanted.spec.trim(), previous = %previous, "log spec changed");
            HttpResponse::NoContent().finish()
        }
        Err(e @ LogSpecError::Invalid { .. }) => fail(Format::Json, Status::BadRequest, e.to_string()),
        Err(e @ LogSpecError::NotReloadable) => fail(Format::Json, Status::ServiceUnavailable, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::{call_service, init_service, read_body_json, TestRequest};
    use actix_web::App;
    use serde_json::{json, Value};

    use super::*;

    #[actix_rt::test]
    async fn answers_in_a_process_without_reloadable_logging() {
        // The unit test process never initialises logging: GET answers, PUT says it cannot.
        let app = init_service(App::new().configure(routes)).await;
        let call = |req: TestRequest| {
            let app = &app;
            async move {
                let resp = call_service(app, req.to_request()).await;
                let code = resp.status().as_u16();
                let body: Value = read_body_json(resp).await;
                (code, body)
            }
        };
        let version = json!({ "version": env!("CARGO_PKG_VERSION"), "commit": env!("OSN_GIT_COMMIT") });
        assert_eq!(call(TestRequest::get().uri("/version")).await, (200, version));
        assert!(!Version::current().commit.is_empty());
        assert_eq!(call(TestRequest::get().uri("/logspec")).await, (200, json!({ "spec": "" })));

        let put = |body: &'static str| TestRequest::put().uri("/logspec").set_payload(body);
        let unavailable =
            json!({ "status": "SERVICE_UNAVAILABLE", "info": "logging is not reloadable in this process" });
        assert_eq!(call(put(r#"{"spec":"debug"}"#)).await, (503, unavailable));
        for body in ["spec=debug", r#"{"spec":"debug","level":"x"}"#, "{}"] {
            let (code, answer) = call(put(body)).await;
            assert_eq!((code, &answer["status"]), (400, &json!("BAD_REQUEST")), "{body}: {answer}");
            assert!(answer["info"].as_str().unwrap().starts_with("body is not a JSON log spec"), "{answer}");
        }
    }
}
