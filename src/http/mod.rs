//! The HTTP API (actix-web): a thin shell that decodes requests, calls the core's checks, hands
//! envelopes to channel actors and reads blocks from ledgers.
//!
//! - [`negotiate`]: JSON (canonical protobuf mapping) or protobuf, by Content-Type and Accept;
//!   bodies read with a limit; errors as Fabric status + HTTP code + info.
//! - [`broadcast`]: `POST /v1/channels/{channel}/broadcast` (one envelope),
//!   `POST /v1/channels/{channel}/broadcast:batch` (many), and
//!   `GET /v1/channels/{channel}/broadcast` (a websocket stream of envelopes).
//! - [`blocks`]: `GET /v1/channels/{channel}/blocks/{number}`.
//! - [`docs`]: `GET /openapi.json` (the OpenAPI document of all of these routes) and `GET /docs`
//!   (an interactive page rendering it).
//! - [`explorer`]: `GET /explorer` (the block explorer and channel console),
//!   `GET /explorer/dev-reader` (`osn dev`'s client identity, for its explorer link's token) and
//!   `GET /` (an index of the pages).
//! - [`channels`]: `GET /v1/channels`, `GET /v1/channels/{channel}`,
//!   `GET /v1/channels/{channel}/config`; `POST /v1/channels` (create a channel through the system
//!   channel) and `POST /v1/channels/{channel}/config` (update a channel's configuration).
//! - [`deliver`]: `GET /v1/channels/{channel}/deliver` (websocket) and
//!   `POST /v1/channels/{channel}/deliver` (a streamed response).
//! - [`operations`]: `GET /version`, `GET` and `PUT /logspec` (Fabric's operations service), on
//!   the API's listener or, with `[operations] address`, on a plain-HTTP listener of their own
//!   ([`serve_operations`]).
//! - [`tls`]: HTTPS (`[http.tls]`) and the client side's trust of one CA file.

pub mod blocks;
pub mod broadcast;
pub mod channels;
pub mod deliver;
pub mod docs;
pub mod explorer;
pub mod health;
pub mod negotiate;
pub mod operations;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use crate::actors::ChannelHandle;
use crate::config::HttpConfig;
use crate::proto::Status;
use crate::service::{Service, ServiceError};
use negotiate::{fail, Format};

/// State shared by every handler: the service every front end calls, and what only HTTP needs.
/// It dereferences to the [`Service`].
#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    pub http: HttpConfig,
    /// The Kafka side of `/healthz`.
    pub kafka_health: Arc<health::KafkaHealth>,
    /// The gRPC listener's side of `/healthz`, when there is one.
    pub grpc_health: Option<crate::grpc::GrpcHealth>,
}

impl std::ops::Deref for AppState {
    type Target = Service;

    fn deref(&self) -> &Service {
        &self.service
    }
}

impl AppState {
    /// The channel named in the path, or the response to send: 400 for a name that is not a
    /// channel ID, 404 for a channel this OSN does not have.
    pub fn channel(&self, name: &str, format: Format) -> Result<ChannelHandle, ApiError> {
        self.service.lookup(name).map_err(|error| ApiError { out: format, error })
    }
}

/// A [`ServiceError`] as an HTTP answer in the negotiated format: its HTTP code, and a
/// `BroadcastResponse` body with the Fabric status and what was wrong.
#[derive(Debug)]
pub struct ApiError {
    pub out: Format,
    pub error: ServiceError,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl actix_web::ResponseError for ApiError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::from_u16(self.error.http_code())
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let body = crate::proto::BroadcastResponse { status: self.error.status() as i32, info: self.error.to_string() };
        negotiate::respond(self.out, self.status_code(), &body)
    }
}

impl From<ApiError> for HttpResponse {
    fn from(e: ApiError) -> Self {
        actix_web::ResponseError::error_response(&e)
    }
}

/// The channel of a websocket route, or the answer to a request that is not a websocket
/// handshake (`alternative` says what to do instead) or names an unknown channel.
#[allow(clippy::result_large_err)]
pub fn websocket_channel(
    state: &AppState,
    channel: &str,
    req: &HttpRequest,
    alternative: &str,
) -> Result<ChannelHandle, HttpResponse> {
    let ch = state.channel(channel, Format::Json)?;
    if !req.headers().contains_key(actix_web::http::header::UPGRADE) {
        let info = format!(
            "GET on {} is a websocket route: connect with a websocket client (Upgrade: websocket), or {alternative}",
            req.path()
        );
        return Err(fail(Format::Json, Status::BadRequest, info));
    }
    Ok(ch)
}

/// What is wrong with a websocket handshake, checked exactly as the API document's header
/// parameters describe it (RFC 6455's rules): `Upgrade` is `websocket` (any case), `Connection`
/// lists `Upgrade` among its comma-separated tokens (any case), `Sec-WebSocket-Version` is `13`,
/// and `Sec-WebSocket-Key` is the base64 of 16 bytes (24 characters, canonical padding).
pub fn handshake_problem(headers: &actix_web::http::header::HeaderMap) -> Option<String> {
    use actix_web::http::header::{CONNECTION, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE};
    use base64::Engine as _;
    let value = |name| headers.get(name).map(|v: &actix_web::http::header::HeaderValue| v.as_bytes());
    let shown = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    match value(UPGRADE) {
        Some(v) if v.eq_ignore_ascii_case(b"websocket") => {}
        Some(v) => return Some(format!("the Upgrade header is '{}', not websocket", shown(v))),
        None => return Some("no Upgrade header".into()),
    }
    // A token between commas, with spaces and tabs around it (HTTP's optional whitespace).
    let is_upgrade = |mut token: &[u8]| {
        while let [b' ' | b'\t', rest @ ..] = token {
            token = rest;
        }
        while let [rest @ .., b' ' | b'\t'] = token {
            token = rest;
        }
        token.eq_ignore_ascii_case(b"upgrade")
    };
    let lists_upgrade = |v: &[u8]| v.split(|b| *b == b',').any(is_upgrade);
    match value(CONNECTION) {
        Some(v) if lists_upgrade(v) => {}
        Some(v) => return Some(format!("the Connection header is '{}', which does not list Upgrade", shown(v))),
        None => return Some("no Connection header".into()),
    }
    match value(SEC_WEBSOCKET_VERSION) {
        Some(b"13") => {}
        Some(v) => return Some(format!("Sec-WebSocket-Version is '{}'; this server speaks version 13", shown(v))),
        None => return Some("no Sec-WebSocket-Version header".into()),
    }
    match value(SEC_WEBSOCKET_KEY) {
        Some(v)
            if v.len() == 24 && base64::engine::general_purpose::STANDARD.decode(v).is_ok_and(|k| k.len() == 16) =>
        {
            None
        }
        Some(v) => Some(format!("Sec-WebSocket-Key '{}' is not the base64 of 16 bytes", shown(v))),
        None => Some("no Sec-WebSocket-Key header".into()),
    }
}

/// The websocket handshake; a request that starts one but is not a valid one
/// ([`handshake_problem`]) gets the usual error body saying what is wrong, not an empty 400.
#[allow(clippy::result_large_err)]
pub fn websocket_handshake(
    req: &HttpRequest,
    body: web::Payload,
) -> Result<(HttpResponse, actix_ws::Session, actix_ws::MessageStream), HttpResponse> {
    let refuse = |problem: String| {
        let info = format!(
            "not a valid websocket handshake on {}: {problem} (send Connection: Upgrade, Upgrade: websocket, \
             Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key of 16 random bytes in base64)",
            req.path()
        );
        fail(Format::Json, Status::BadRequest, info)
    };
    if let Some(problem) = handshake_problem(req.headers()) {
        return Err(refuse(problem));
    }
    actix_ws::handle(req, body).map_err(|e| refuse(e.to_string()))
}

/// Registers every route of the API (the operations routes are registered apart).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/", "GET").route(web::get().to(explorer::index)))
        // The pages are gzipped for browsers that take it (all do): ~95 KB of script and style.
        .service(
            resource("/explorer", "GET")
                .route(web::get().to(explorer::page))
                .wrap(actix_web::middleware::Compress::default()),
        )
        .service(resource("/explorer/dev-reader", "GET").route(web::get().to(explorer::dev_reader)))
        .service(resource("/openapi.json", "GET").route(web::get().to(docs::openapi)))
        .service(
            resource("/docs", "GET").route(web::get().to(docs::page)).wrap(actix_web::middleware::Compress::default()),
        )
        .service(
            resource("/v1/channels", "GET, POST")
                .route(web::get().to(channels::list))
                .route(web::post().to(channels::create)),
        )
        .service(
            resource("/v1/channels/{channel}/config", "GET, POST")
                .route(web::get().to(channels::config))
                .route(web::post().to(channels::update)),
        )
        .service(resource("/v1/channels/{channel}", "GET").route(web::get().to(channels::info)))
        .service(
            resource("/v1/channels/{channel}/broadcast", "GET, POST")
                .route(web::get().to(broadcast::websocket::websocket))
                .route(web::post().to(broadcast::broadcast)),
        )
        .service(
            resource("/v1/channels/{channel}/broadcast:batch", "POST").route(web::post().to(broadcast::batch::batch)),
        )
        .service(resource("/v1/channels/{channel}/blocks/{number}", "GET").route(web::get().to(blocks::get_block)))
        .service(
            resource("/v1/channels/{channel}/deliver", "GET, POST")
                .route(web::get().to(deliver::websocket::websocket))
                .route(web::post().to(deliver::stream::stream)),
        )
        .default_service(web::to(not_found));
}

/// A path and the methods it serves (`allow`, as the `Allow` header lists them): any other method
/// is answered 405 Method Not Allowed with `Allow`, and the usual error body (status
/// BAD_REQUEST) naming the methods to use.
pub fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |req: HttpRequest| async move { not_allowed(&req, allow) }))
}

fn not_allowed(req: &HttpRequest, allow: &'static str) -> HttpResponse {
    let format = negotiate::response_format(req, Format::Json);
    let info = format!("{} is not allowed on {}: it serves {allow}", req.method(), req.path());
    let body = crate::proto::BroadcastResponse { status: Status::BadRequest as i32, info };
    let mut resp = negotiate::respond(format, actix_web::http::StatusCode::METHOD_NOT_ALLOWED, &body);
    resp.headers_mut().insert(actix_web::http::header::ALLOW, actix_web::http::header::HeaderValue::from_static(allow));
    resp
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    let format = negotiate::response_format(&req, Format::Json);
    fail(format, Status::NotFound, format!("no route for {} {}", req.method(), req.path()))
}

/// Binds the API, over TLS only when `tls` is given, with the operations routes too when
/// `operations` is set, and returns the server (not yet awaited) and the address it listens on.
pub fn serve(
    state: AppState,
    address: &str,
    workers: usize,
    tls: Option<rustls::ServerConfig>,
    operations: bool,
) -> std::io::Result<(Server, SocketAddr)> {
    let keep_alive = state.http.keep_alive;
    let mut server = HttpServer::new(move || {
        App::new().app_data(web::Data::new(state.clone())).configure(|cfg| {
            if operations {
                operations::routes(cfg);
            }
            routes(cfg);
        })
    })
    .disable_signals()
    .keep_alive(actix_web::http::KeepAlive::Timeout(keep_alive))
    // Without it, a block frame written while the client has not yet acknowledged the one before
    // waits (Nagle's algorithm) until the next block is written or the client's delayed
    // acknowledgement comes: every other block of a live deliver stream arrived late.
    .tcp_nodelay(true)
    .shutdown_timeout(5);
    if workers > 0 {
        server = server.workers(workers);
    }
    let server = match tls {
        Some(tls) => server.bind_rustls_0_23(address, tls)?,
        None => server.bind(address)?,
    };
    let addr = *server.addrs().first().ok_or_else(|| std::io::Error::other("bound to no address"))?;
    Ok((server.run(), addr))
}

/// Binds the operations routes alone, over plain HTTP, on their own listener (`[operations]
/// address`), and returns the server (not yet awaited) and the address it listens on. They get
/// the API's state; two workers, so a slow check does not hold up the others.
pub fn serve_operations(state: AppState, address: &str) -> std::io::Result<(Server, SocketAddr)> {
    let keep_alive = state.http.keep_alive;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .configure(operations::routes)
            .default_service(web::to(not_found))
    })
    .disable_signals()
    .keep_alive(actix_web::http::KeepAlive::Timeout(keep_alive))
    .tcp_nodelay(true)
    .shutdown_timeout(5)
    .workers(2)
    .bind(address)?;
    let addr = *server.addrs().first().ok_or_else(|| std::io::Error::other("bound to no address"))?;
    Ok((server.run(), addr))
}
