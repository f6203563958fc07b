//! What the CLI clients share: the OSN's URL and the CA to trust for it ([`Endpoint`]), building
//! envelopes and seek requests.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use prost::Message as _;
use rand::RngCore;

use crate::identity::dev::{default_dev_root, dev_client_identity};
use crate::identity::SigningIdentity;
use crate::proto::{BroadcastResponse, Envelope, HeaderType, SeekInfo, Status};

/// Bytes of an envelope that are not the payload data (headers, framing), roughly.
const OVERHEAD: usize = 160;

/// `--identity DIR`: who the CLI signs as.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct IdentityArgs {
    /// Identity to sign with: a directory written by `osn identity issue` (`mspid`, `signcerts/`,
    /// `keystore/`), or a Fabric local MSP directory as cryptogen writes it (then with --msp-id).
    /// Default: the client identity `osn dev` creates.
    #[arg(long, env = "OSN_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// The MSP ID of --identity, for a Fabric MSP directory (which does not say it).
    #[arg(long, env = "OSN_MSP_ID", requires = "identity")]
    pub msp_id: Option<String>,
}

impl IdentityArgs {
    /// Loads the identity, or says how to get one.
    pub fn load(&self) -> anyhow::Result<SigningIdentity> {
        let dir = match &self.identity {
            Some(dir) => dir.clone(),
            None => {
                let dir = dev_client_identity(&default_dev_root());
                if !dir.is_dir() {
                    anyhow::bail!(
                        "no identity to sign with: pass --identity DIR (an identity directory from `osn identity issue`), \
                         or run `osn dev` once, which creates its client identity in {}",
                        dir.display()
                    );
                }
                dir
            }
        };
        SigningIdentity::load_as(&dir, self.msp_id.as_deref())
            .with_context(|| format!("cannot load the identity in {}", dir.display()))
    }

    /// Loads the identity; without --identity, the admin identity `osn dev` creates (config
    /// updates and channel creations need an admin).
    pub fn load_admin(&self) -> anyhow::Result<SigningIdentity> {
        if self.identity.is_some() {
            return self.load();
        }
        let dir = crate::identity::dev::dev_admin_identity(&default_dev_root());
        if !dir.is_dir() {
            anyhow::bail!(
                "no identity to sign with: pass --identity DIR (an admin identity of an organisation), or run `osn dev` once, which creates its admin identity in {}",
                dir.display()
            );
        }
        SigningIdentity::load(&dir).with_context(|| format!("cannot load the identity in {}", dir.display()))
    }
}

pub use crate::identity::envelope::{payload, sign};

/// A signed transaction envelope carrying `data`.
pub fn transaction_with(signer: &SigningIdentity, channel: &str, data: Bytes) -> Envelope {
    sign(signer, &payload(signer, channel, HeaderType::EndorserTransaction, data))
}

/// A signed transaction envelope of about `size` bytes (payload + signature), random data.
pub fn transaction(signer: &SigningIdentity, channel: &str, size: usize) -> Envelope {
    // Headers, the creator's certificate and the signature (at most 72 bytes DER).
    let overhead = OVERHEAD + signer.serialized().len() + 72;
    let mut data = vec![0u8; size.saturating_sub(overhead)];
    rand::rng().fill_bytes(&mut data);
    transaction_with(signer, channel, data.into())
}

/// A signed DELIVER_SEEK_INFO envelope.
pub fn seek_request(signer: &SigningIdentity, channel: &str, seek: &SeekInfo) -> Envelope {
    sign(signer, &payload(signer, channel, HeaderType::DeliverSeekInfo, seek.encode_to_vec().into()))
}

/// The `Authorization` header value that lets `signer` read blocks of `channel` with
/// `GET .../blocks/{n}`: `Envelope ` and a signed DELIVER_SEEK_INFO envelope in base64. It is good
/// while its timestamp is within the OSN's time window.
pub fn read_authorization(signer: &SigningIdentity, channel: &str) -> String {
    use base64::Engine as _;
    let seek = SeekInfo {
        start: Some(crate::core::seek::oldest()),
        stop: Some(crate::core::seek::oldest()),
        ..Default::default()
    };
    let envelope = seek_request(signer, channel, &seek).encode_to_vec();
    format!(
        "{} {}",
        crate::http::blocks::AUTHORIZATION_SCHEME,
        base64::engine::general_purpose::STANDARD.encode(envelope)
    )
}

/// Where the OSN is and whom to trust for it: flattened into every client subcommand.
#[derive(clap::Args, Debug, Clone)]
pub struct Endpoint {
    /// Base URL of the OSN: http://HOST:PORT, or https://HOST:PORT for an OSN with [http.tls].
    #[arg(long, global = true, default_value = "http://127.0.0.1:7060")]
    pub url: String,
    /// PEM file of the CA that signed the OSN's certificate: the only CA trusted for https:// (and
    /// wss://) URLs.
    #[arg(long, global = true, env = "OSN_CACERT", value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// PEM certificate to present to an OSN that requires client certificates
    /// (`http.tls.client-ca-file`), with --client-key.
    #[arg(long, global = true, env = "OSN_CLIENT_CERT", value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, global = true, env = "OSN_CLIENT_KEY", value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Address of the OSN's gRPC listener (`--mode grpc`): HOST:PORT. Over TLS (`[grpc.tls]`),
    /// --cacert, and --client-cert/--client-key for mutual TLS, apply to it too.
    #[arg(long, global = true, default_value = "127.0.0.1:7050", value_name = "HOST:PORT")]
    pub grpc: String,
}

impl Endpoint {
    /// The base URL without a trailing slash.
    pub fn base(&self) -> String {
        base_url(&self.url)
    }

    /// The base URL as ws:// or wss://.
    pub fn ws_base(&self) -> String {
        ws_url(&self.url)
    }

    /// An HTTP and websocket client for this OSN; over TLS it trusts `--cacert` only.
    pub fn client(&self, timeout: Duration) -> anyhow::Result<awc::Client> {
        let builder = awc::Client::builder().timeout(timeout);
        let Some(ca) = &self.cacert else {
            if self.url.starts_with("https://") {
                anyhow::bail!(
                    "{} is an https URL: give --cacert FILE (or OSN_CACERT), the PEM of the CA that signed the OSN's certificate",
                    self.url
                );
            }
            // No cap on connections (awc's default is 100): `osn load --concurrency` decides.
            return Ok(builder.connector(awc::Connector::new().limit(0)).finish());
        };
        let client_cert = self.client_cert.as_deref().zip(self.client_key.as_deref());
        let tls = crate::http::tls::client_config_with(ca, "--cacert", client_cert)?;
        let connector = awc::Connector::new().rustls_0_23(Arc::new(tls)).limit(0);
        Ok(builder.connector(connector).finish())
    }

    /// A new connection to the OSN's gRPC listener (`--grpc`): TLS when --cacert is given.
    pub async fn grpc_client(
        &self,
    ) -> anyhow::Result<crate::proto::orderer::atomic_broadcast_client::AtomicBroadcastClient<tonic::transport::Channel>>
    {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let scheme = if self.cacert.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", self.grpc);
        let mut endpoint = tonic::transport::Endpoint::from_shared(url.clone())
            .with_context(|| format!("--grpc {} is not HOST:PORT", self.grpc))?
            .connect_timeout(Duration::from_secs(10));
        if let Some(ca) = &self.cacert {
            let read = |p: &std::path::Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
            if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            endpoint = endpoint.tls_config(tls).context("the gRPC TLS settings are unusable")?;
        }
        let channel = endpoint.connect().await.map_err(|e| unreachable(&url, e))?;
        Ok(crate::proto::orderer::atomic_broadcast_client::AtomicBroadcastClient::new(channel)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20))
    }
}

/// Opens the deliver websocket of `channel`, sends `request` (a marshaled seek request), and hands
/// each DeliverResponse's bytes to `each` until it returns `Some` (the stream is over), which is
/// returned. A stream that ends before is an error.
pub async fn deliver_over_websocket<T>(
    endpoint: &Endpoint,
    channel: &str,
    request: Bytes,
    mut each: impl FnMut(Bytes) -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    use futures_util::{SinkExt as _, StreamExt as _};
    let url = format!("{}/v1/channels/{channel}/deliver", endpoint.ws_base());
    let (_, mut ws) = endpoint
        .client(Duration::from_secs(30))?
        .ws(&url)
        .max_frame_size(256 * 1024 * 1024)
        .connect()
        .await
        .map_err(|e| unreachable(&url, e))?;
    ws.send(awc::ws::Message::Binary(request)).await.context("sending the seek request")?;
    while let Some(frame) = ws.next().await {
        let raw = match frame.context("deliver stream broken")? {
            awc::ws::Frame::Binary(b) => b,
            awc::ws::Frame::Close(reason) => anyhow::bail!("the OSN closed the stream: {reason:?}"),
            _ => continue,
        };
        if let Some(done) = each(raw)? {
            return Ok(done);
        }
    }
    anyhow::bail!("the stream ended without a final status")
}

/// A request that never got an answer: say where, and what to check.
pub fn unreachable(url: &str, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("cannot reach the OSN at {url}: {e} (is it running? is --url right? https needs --cacert)")
}

/// A Fabric status number as its name.
pub fn status_name(status: i32) -> &'static str {
    Status::try_from(status).map(|s| s.as_str_name()).unwrap_or("UNKNOWN")
}

/// GETs a message from the API as protobuf. An error answer (a BroadcastResponse with status and
/// info) becomes an error that says both.
pub async fn get_message<M: prost::Message + Default>(client: &awc::Client, url: &str) -> anyhow::Result<M> {
    get_message_as(client, url, None).await
}

/// [`get_message`] with an `Authorization` header value (see [`read_authorization`]).
pub async fn get_message_as<M: prost::Message + Default>(
    client: &awc::Client,
    url: &str,
    authorization: Option<&str>,
) -> anyhow::Result<M> {
    let mut req = client.get(url).insert_header(("Accept", "application/x-protobuf"));
    if let Some(value) = authorization {
        req = req.insert_header(("Authorization", value));
    }
    let resp = req.send().await.map_err(|e| unreachable(url, e))?;
    decode_answer(resp, url, 1 << 30).await
}

/// An API answer decoded as `M`, or the error it carries (`{status, info}`) in words.
pub async fn decode_answer<M: prost::Message + Default, S>(
    mut resp: awc::ClientResponse<S>,
    url: &str,
    limit: usize,
) -> anyhow::Result<M>
where
    S: futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
{
    let body = resp.body().limit(limit).await.map_err(|e| anyhow::anyhow!("reading the answer of {url}: {e}"))?;
    if !resp.status().is_success() {
        let answer = BroadcastResponse::decode(body).unwrap_or_default();
        return Err(Refused { http: resp.status().as_u16(), status: answer.status, info: answer.info }.into());
    }
    M::decode(body).map_err(|e| anyhow::anyhow!("the answer of {url} does not decode: {e}"))
}

/// An OSN's answer that is not a success: the HTTP status, Fabric's status and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub http: u16,
    pub status: i32,
    pub info: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the OSN answered HTTP {} {}: {}", self.http, status_name(self.status), self.info)
    }
}

impl std::error::Error for Refused {}

/// The HTTP status of an error that is an OSN's refusal ([`Refused`]), if it is one.
pub fn refused_with(e: &anyhow::Error) -> Option<u16> {
    e.downcast_ref::<Refused>().map(|r| r.http)
}

/// `base` without a trailing slash.
pub fn base_url(base: &str) -> String {
    base.trim_end_matches('/').to_owned()
}

/// The websocket URL of an http(s) base URL.
pub fn ws_url(base: &str) -> String {
    let base = base_url(base);
    if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A client identity of a fresh test organisation.
    pub fn signer() -> (tempfile::TempDir, SigningIdentity) {
        let (dir, signer, _) = test_org();
        (dir, signer)
    }

    /// A fresh test organisation `TestMSP` (and an orderer organisation): a client identity of
    /// it, and the configuration of a channel with it as the member, created as a network
    /// creates one.
    pub fn test_org() -> (tempfile::TempDir, SigningIdentity, crate::proto::common::Config) {
        use crate::core::testkit::{batch, channel, system, Org};
        let dir = tempfile::tempdir().unwrap();
        let orderer = Org::new(dir.path(), "OrdererMSP", Default::default());
        let org = Org::new(dir.path(), "TestMSP", Default::default());
        let signer = org.identity("client", crate::identity::Role::Client, Default::default(), None);
        let system = system(&[&orderer], &[&org], batch(10, 1 << 20, 1 << 19), "2s");
        let config = channel(&system, "ch", &[&org]);
        (dir, signer, config)
    }

    /// The access control of a configuration (a 900 s time window).
    pub fn access_of(config: &crate::proto::common::Config) -> std::sync::Arc<crate::core::access::Access> {
        let bundle = crate::core::channelconfig::Bundle::new("ch", config.clone()).unwrap();
        crate::core::chain::InForce::new(std::sync::Arc::new(bundle), 900).access
    }

    #[test]
    fn transaction_is_about_the_asked_size_signed_and_valid() {
        let (_dir, signer) = signer();
        for size in [1024, 2048, 4096] {
            let env = transaction(&signer, "ch", size);
            let len = env.payload.len() + env.signature.len();
            assert!(len.abs_diff(size) < 64, "asked {size}, got {len}");
            let checked = crate::core::envelope::check_broadcast(&env, "ch", 1 << 20).unwrap();
            assert_eq!(checked.creator, signer.serialized());
            let id = crate::core::msp::Identity::deserialize(&checked.creator).unwrap();
            id.cert.public_key.verify(&env.payload, &env.signature).unwrap();
        }
    }

    #[test]
    fn urls() {
        assert_eq!(ws_url("http://127.0.0.1:7050/"), "ws://127.0.0.1:7050");
        assert_eq!(ws_url("https://osn:7050"), "wss://osn:7050");
    }
}
