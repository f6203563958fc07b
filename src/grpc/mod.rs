//! Fabric's own transport: the `orderer.AtomicBroadcast` gRPC service (`Broadcast` and
//! `Deliver`, both bidirectional streams), which Fabric's peers, its `peer channel` CLI, its
//! sample clients and its SDKs speak to an orderer. A thin front end over the service layer, as
//! the HTTP API is: [`broadcast`] routes each envelope by its channel header and relays it through
//! `service::broadcast`; [`deliver`] serves each SeekInfo with a `service::deliver` subscription.
//!
//! The server (tonic) runs on a runtime of its own (`grpc.workers` threads), listening on
//! `grpc.address`, in plaintext or with TLS (`[grpc.tls]`; mutual TLS with `client-ca-file`, in
//! which case Deliver requires the request's `tls_cert_hash`, as Fabric's orderer does). It counts
//! Fabric's `grpc_server_stream_*` and `grpc_comm_conn_*` metrics.

pub mod broadcast;
pub mod deliver;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::config::GrpcConfig;
use crate::metrics::{metrics, secs};
use crate::proto::orderer::atomic_broadcast_server::AtomicBroadcastServer;
use crate::service::Service;

/// Fabric's label for the service (its full name, dots as underscores).
pub const SERVICE_LABEL: &str = "orderer_AtomicBroadcast";

/// How long shutdown waits for open streams before it drops them.
const DRAIN: Duration = Duration::from_secs(5);

/// The AtomicBroadcast service over the application layer.
#[derive(Clone)]
pub struct AtomicBroadcast {
    service: Service,
    config: Arc<GrpcConfig>,
}

/// A running gRPC listener and the runtime it runs on.
pub struct GrpcServer {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Set when the server task ends (a serve error, or shutdown): `/healthz`'s `grpc` check.
    failure: Arc<std::sync::Mutex<Option<String>>>,
}

impl GrpcServer {
    /// Binds `config.address` (an error says so at once) and starts serving `service` there.
    pub fn start(service: Service, config: &GrpcConfig) -> anyhow::Result<GrpcServer> {
        let tls = config.tls.as_ref().map(tls_config).transpose()?;
        let listener = std::net::TcpListener::bind(&config.address)
            .with_context(|| format!("cannot listen on {} (grpc.address)", config.address))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.workers())
            .thread_name("osn-grpc")
            .enable_all()
            .build()
            .context("cannot start the gRPC runtime")?;
        let handler = AtomicBroadcast { service, config: Arc::new(config.clone()) };
        let server = AtomicBroadcastServer::new(handler)
            .max_decoding_message_size(config.max_recv_message_size)
            .max_encoding_message_size(config.max_send_message_size);
        let mut builder = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(config.keepalive_interval))
            .http2_keepalive_timeout(Some(config.keepalive_timeout))
            // Flow-control windows sized by the measured bandwidth-delay product, as grpc-go (and
            // so Fabric's orderer) sizes them: on a fast link a stream's envelopes wait in the
            // pipeline (`grpc.max-in-flight`), not by the megabyte in HTTP/2's receive buffers.
            .http2_adaptive_window(Some(true))
            .tcp_nodelay(true);
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).context("the gRPC TLS configuration ([grpc.tls]) is unusable")?;
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (finished, done) = tokio::sync::oneshot::channel();
        let failure = Arc::new(std::sync::Mutex::new(None));
        let failed = failure.clone();
        let router = builder.add_service(server);
        runtime.spawn(async move {
            let incoming = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => Counted(tonic::transport::server::TcpIncoming::from(l).with_nodelay(Some(true))),
                Err(e) => {
                    *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("cannot listen: {e}"));
                    let _ = finished.send(());
                    return;
                }
            };
            let result = router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
            let why = match result {
                Ok(()) => "the gRPC listener was shut down".to_owned(),
                Err(e) => {
                    tracing::error!(error = %e, "the gRPC server failed");
                    format!("the gRPC server failed: {e}")
                }
            };
            *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
            let _ = finished.send(());
        });
        Ok(GrpcServer { addr, runtime: Some(runtime), stop: Some(stop), done: Some(done), failure })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Why the listener no longer serves, if it does not (`/healthz`).
    pub fn health(&self) -> GrpcHealth {
        GrpcHealth(self.failure.clone())
    }

    /// Stops accepting connections, lets open streams finish for up to 5 s, then drops them and
    /// the runtime. Blocking: call it off the async threads.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let (Some(runtime), Some(done)) = (self.runtime.take(), self.done.take()) {
            let _ = runtime.block_on(async { tokio::time::timeout(DRAIN, done).await });
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// What `/healthz` asks of the gRPC listener.
#[derive(Clone, Default)]
pub struct GrpcHealth(Arc<std::sync::Mutex<Option<String>>>);

impl GrpcHealth {
    /// Why the listener stopped serving, if it did.
    pub fn failure(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// tonic's TLS settings from `[grpc.tls]`: the certificate, and with `client-ca-file` the CAs a
/// client certificate is required to chain to.
fn tls_config(tls: &crate::config::GrpcTlsConfig) -> anyhow::Result<tonic::transport::ServerTlsConfig> {
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).with_context(|| format!("cannot read grpc.tls.{what} {}", path.display()))
    };
    let identity =
        tonic::transport::Identity::from_pem(read(&tls.cert_file, "cert-file")?, read(&tls.key_file, "key-file")?);
    let mut config = tonic::transport::ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &tls.client_ca_file {
        config = config
            .client_ca_root(tonic::transport::Certificate::from_pem(read(ca, "client-ca-file")?))
            .client_auth_optional(false);
    }
    Ok(config)
}

/// The listener's connections, counted (`grpc_comm_conn_opened` / `_closed`, Fabric's).
struct Counted(tonic::transport::server::TcpIncoming);

impl Stream for Counted {
    type Item = std::io::Result<CountedConn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.0).poll_next(cx).map(|next| {
            next.map(|conn| {
                conn.map(|stream| {
                    metrics().grpc_conn_opened.inc();
                    CountedConn(stream)
                })
            })
        })
    }
}

/// One accepted connection; counted closed when dropped.
struct CountedConn(TcpStream);

impl Drop for CountedConn {
    fn drop(&mut self) {
        metrics().grpc_conn_closed.inc();
    }
}

impl Connected for CountedConn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.0.connect_info()
    }
}

impl AsyncRead for CountedConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

/// Fabric's stream metrics of one RPC (`grpc_server_stream_*`, labels service and method, and the
/// gRPC code it ended with): received when made, completed with its duration when dropped.
pub struct StreamMetrics {
    method: &'static str,
    started: Instant,
    code: tonic::Code,
    sent: prometheus::IntCounter,
    received: prometheus::IntCounter,
}

impl StreamMetrics {
    pub fn new(method: &'static str) -> Self {
        let m = metrics();
        let labels = [SERVICE_LABEL, method];
        m.grpc_stream_requests_received.with_label_values(&labels).inc();
        StreamMetrics {
            method,
            started: Instant::now(),
            code: tonic::Code::Ok,
            sent: m.grpc_stream_messages_sent.with_label_values(&labels),
            received: m.grpc_stream_messages_received.with_label_values(&labels),
        }
    }

    pub fn received(&self) {
        self.received.inc();
    }

    pub fn sent(&self) {
        self.sent.inc();
    }

    /// The stream ends with this gRPC status code (not OK).
    pub fn failed(&mut self, code: tonic::Code) {
        self.code = code;
    }
}

impl Drop for StreamMetrics {
    fn drop(&mut self) {
        let m = metrics();
        let code = code_name(self.code);
        let labels = [SERVICE_LABEL, self.method, code.as_str()];
        m.grpc_stream_requests_completed.with_label_values(&labels).inc();
        m.grpc_stream_request_duration.with_label_values(&labels).observe(secs(self.started.elapsed()));
    }
}

/// A gRPC code as grpc-go names it (Fabric's `code` label): `OK`, `Canceled`, `Unavailable`, ...
pub fn code_name(code: tonic::Code) -> String {
    match code {
        tonic::Code::Ok => "OK".into(),
        tonic::Code::Cancelled => "Canceled".into(),
        other => format!("{other:?}"),
    }
}

/// A stream of answers fed by a task: the receiving half of a bounded channel.
pub struct Answers<T>(tokio::sync::mpsc::Receiver<Result<T, tonic::Status>>);

impl<T> Stream for Answers<T> {
    type Item = Result<T, tonic::Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

#[tonic::async_trait]
impl crate::proto::orderer::atomic_broadcast_server::AtomicBroadcast for AtomicBroadcast {
    type BroadcastStream = Answers<crate::proto::BroadcastResponse>;
    type DeliverStream = Answers<crate::proto::DeliverResponse>;

    async fn broadcast(
        &self,
        request: tonic::Request<tonic::Streaming<crate::proto::Envelope>>,
    ) -> Result<tonic::Response<Self::BroadcastStream>, tonic::Status> {
        let (tx, rx) = tokio::sync::mpsc::channel(broadcast::ANSWERS_BUFFERED);
        let stream = broadcast::Stream::new(self.service.clone(), self.config.max_in_flight);
        tokio::spawn(stream.run(request.into_inner(), tx));
        Ok(tonic::Response::new(Answers(rx)))
    }

    async fn deliver(
        &self,
        request: tonic::Request<tonic::Streaming<crate::proto::Envelope>>,
    ) -> Result<tonic::Response<Self::DeliverStream>, tonic::Status> {
        let binding =
            deliver::Binding::of(&request, self.config.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some()));
        let (tx, rx) = tokio::sync::mpsc::channel(deliver::BLOCKS_BUFFERED);
        tokio::spawn(deliver::serve(self.service.clone(), binding, request.into_inner(), tx));
        Ok(tonic::Response::new(Answers(rx)))
    }
}
