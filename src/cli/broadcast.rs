//! `osn broadcast`: sends envelopes to a channel — generated ones of a given size, or read from a
//! file or stdin — one per request, in batches, or over a websocket stream, and reports how many
//! were accepted, how many were not and why.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;

use super::client::{status_name, transaction, transaction_with, unreachable, Endpoint, IdentityArgs};
use crate::identity::SigningIdentity;
use crate::proto::{BroadcastResponse, Envelope, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// One envelope per request (`POST .../broadcast`).
    Single,
    /// `--batch-size` envelopes per request (`POST .../broadcast:batch`).
    Batch,
    /// One websocket stream of envelopes (`GET .../broadcast`).
    Ws,
    /// Fabric's gRPC Broadcast (`orderer.AtomicBroadcast`, at `--grpc`): one stream of envelopes.
    Grpc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// One JSON Envelope per line (canonical protobuf JSON mapping).
    Json,
    /// Length-delimited protobuf Envelopes (each preceded by its length as a varint).
    Protobuf,
    /// Each line of text becomes the data of a transaction envelope, signed with --identity.
    Lines,
}

#[derive(clap::Args, Debug)]
pub struct BroadcastArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    /// Channel to broadcast to.
    #[arg(long)]
    pub channel: String,
    /// How envelopes travel.
    #[arg(long, value_enum, default_value_t = Mode::Single)]
    pub mode: Mode,
    /// Read envelopes from this file (`-` for stdin) instead of generating them.
    #[arg(long)]
    pub input: Option<String>,
    /// What --input holds.
    #[arg(long, value_enum, default_value_t = InputFormat::Json)]
    pub input_format: InputFormat,
    /// Number of generated envelopes (without --input).
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Approximate size of each generated envelope in bytes.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Envelopes per request in batch mode.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Requests in flight at once (single and batch modes).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

/// Marshaled envelopes to send, generated lazily or read up front.
fn source(args: &BroadcastArgs) -> anyhow::Result<Box<dyn Iterator<Item = Bytes> + Send>> {
    let Some(input) = &args.input else {
        let (channel, size, signer) = (args.channel.clone(), args.size, args.identity.load()?);
        return Ok(Box::new((0..args.count).map(move |_| transaction(&signer, &channel, size).encode_to_vec().into())));
    };
    let mut raw = Vec::new();
    if input == "-" {
        std::io::stdin().read_to_end(&mut raw).context("reading envelopes from stdin")?;
    } else {
        raw = std::fs::read(input).with_context(|| format!("reading envelopes from {input}"))?;
    }
    let signer = match args.input_format {
        InputFormat::Lines => Some(args.identity.load()?),
        InputFormat::Json | InputFormat::Protobuf => None,
    };
    let envelopes = parse_input(args.input_format, &args.channel, signer.as_ref(), raw.into())?;
    Ok(Box::new(envelopes.into_iter()))
}

/// The marshaled envelopes in an input; `lines` are signed by `signer`.
pub fn parse_input(
    format: InputFormat,
    channel: &str,
    signer: Option<&SigningIdentity>,
    mut raw: Bytes,
) -> anyhow::Result<Vec<Bytes>> {
    let mut out = Vec::new();
    match format {
        InputFormat::Json => {
            for (i, line) in raw.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let env: Envelope = serde_json::from_slice(line)
                    .with_context(|| format!("line {} is not a JSON common.Envelope", i + 1))?;
                out.push(env.encode_to_vec().into());
            }
        }
        InputFormat::Protobuf => {
            while raw.has_remaining() {
                let i = out.len();
                let len = prost::encoding::decode_varint(&mut raw)
                    .map_err(|e| anyhow::anyhow!("envelope {i}: unreadable length prefix: {e}"))?;
                if len > raw.remaining() as u64 {
                    bail!("envelope {i}: length prefix says {len} bytes, only {} remain", raw.remaining());
                }
                out.push(raw.split_to(len as usize));
            }
        }
        InputFormat::Lines => {
            let signer = signer.context("lines input needs an identity to sign with")?;
            for line in raw.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                out.push(transaction_with(signer, channel, Bytes::copy_from_slice(line)).encode_to_vec().into());
            }
        }
    }
    Ok(out)
}

/// Tally of answers: accepted, and refusals by reason.
#[derive(Default)]
struct Tally {
    sent: u64,
    accepted: u64,
    refused: BTreeMap<String, u64>,
}

impl Tally {
    fn answer(&mut self, resp: &BroadcastResponse) {
        self.sent += 1;
        if resp.status == Status::Success as i32 {
            self.accepted += 1;
        } else {
            *self.refused.entry(format!("{}: {}", status_name(resp.status), resp.info)).or_default() += 1;
        }
    }

    fn failed(&mut self, n: u64, reason: String) {
        self.sent += n;
        *self.refused.entry(reason).or_default() += n;
    }
}

pub async fn run(args: BroadcastArgs) -> anyhow::Result<()> {
    let envelopes = source(&args)?;
    let base = args.endpoint.base();
    let started = Instant::now();
    let tally = match args.mode {
        Mode::Single => single(&args, &base, args.endpoint.client(Duration::from_secs(60))?, envelopes).await,
        Mode::Batch => batch(&args, &base, args.endpoint.client(Duration::from_secs(120))?, envelopes).await,
        Mode::Ws => websocket(&args, envelopes).await?,
        Mode::Grpc => grpc(&args, envelopes).await?,
    };
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "accepted {}/{} envelopes to channel '{}' in {elapsed:.2} s ({:.0} tx/s)",
        tally.accepted,
        tally.sent,
        args.channel,
        tally.accepted as f64 / elapsed
    );
    for (reason, n) in &tally.refused {
        println!("not accepted {n}: {reason}");
    }
    if tally.accepted < tally.sent {
        bail!("{} of {} envelopes were not accepted", tally.sent - tally.accepted, tally.sent);
    }
    Ok(())
}

/// POSTs a protobuf body and returns the answer's status and body; an error says what failed.
async fn post_protobuf(client: &awc::Client, url: &str, body: Bytes) -> Result<(awc::http::StatusCode, Bytes), String> {
    let mut resp = client
        .post(url)
        .insert_header(("Content-Type", "application/x-protobuf"))
        .insert_header(("Accept", "application/x-protobuf"))
        .send_body(body)
        .await
        .map_err(|e| unreachable(url, e).to_string())?;
    let body = resp.body().limit(64 << 20).await.map_err(|e| format!("reading the answer failed: {e}"))?;
    Ok((resp.status(), body))
}

async fn single(
    args: &BroadcastArgs,
    base: &str,
    client: awc::Client,
    envelopes: Box<dyn Iterator<Item = Bytes> + Send>,
) -> Tally {
    let url = format!("{base}/v1/channels/{}/broadcast", args.channel);
    let answers: Vec<Result<BroadcastResponse, String>> = futures_util::stream::iter(envelopes)
        .map(|body| async {
            let (status, body) = post_protobuf(&client, &url, body).await?;
            BroadcastResponse::decode(body).map_err(|e| format!("HTTP {status}: undecodable answer: {e}"))
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let mut tally = Tally::default();
    for a in answers {
        match a {
            Ok(resp) => tally.answer(&resp),
            Err(reason) => tally.failed(1, reason),
        }
    }
    tally
}

async fn batch(
    args: &BroadcastArgs,
    base: &str,
    client: awc::Client,
    envelopes: Box<dyn Iterator<Item = Bytes> + Send>,
) -> Tally {
    let url = format!("{base}/v1/channels/{}/broadcast:batch", args.channel);
    let mut envelopes = envelopes.peekable();
    let size = args.batch_size.max(1);
    let batches = std::iter::from_fn(move || {
        envelopes.peek()?;
        let mut body = BytesMut::new();
        let mut n = 0u64;
        for env in envelopes.by_ref().take(size) {
            prost::encoding::encode_varint(env.len() as u64, &mut body);
            body.extend_from_slice(&env);
            n += 1;
        }
        Some((n, body.freeze()))
    });
    let answers: Vec<(u64, Result<Vec<BroadcastResponse>, String>)> = futures_util::stream::iter(batches)
        .map(|(n, body)| {
            let (client, url) = (&client, &url);
            async move {
                let result = async {
                    let (status, mut body) = post_protobuf(client, url, body).await?;
                    if !status.is_success() {
                        let answer = BroadcastResponse::decode(body).unwrap_or_default();
                        return Err(format!("{}: {}", status_name(answer.status), answer.info));
                    }
                    let mut answers = Vec::new();
                    while body.has_remaining() {
                        answers.push(
                            BroadcastResponse::decode_length_delimited(&mut body)
                                .map_err(|e| format!("undecodable answer: {e}"))?,
                        );
                    }
                    Ok(answers)
                }
                .await;
                (n, result)
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let mut tally = Tally::default();
    for (n, a) in answers {
        match a {
            Ok(resps) if resps.len() as u64 == n => resps.iter().for_each(|r| tally.answer(r)),
            Ok(resps) => tally.failed(n, format!("a batch of {n} got {} answers", resps.len())),
            Err(reason) => tally.failed(n, reason),
        }
    }
    tally
}

async fn websocket(args: &BroadcastArgs, envelopes: Box<dyn Iterator<Item = Bytes> + Send>) -> anyhow::Result<Tally> {
    let url = format!("{}/v1/channels/{}/broadcast", args.endpoint.ws_base(), args.channel);
    let client = args.endpoint.client(Duration::from_secs(30))?;
    let (_, ws) = client.ws(&url).max_frame_size(64 << 20).connect().await.map_err(|e| unreachable(&url, e))?;
    let (mut sink, mut stream) = ws.split();
    let sender = async {
        let mut sent = 0u64;
        for env in envelopes {
            if sink.send(awc::ws::Message::Binary(env)).await.is_err() {
                break;
            }
            sent += 1;
        }
        let _ = sink.send(awc::ws::Message::Close(None)).await;
        sent
    };
    let receiver = async {
        let mut tally = Tally::default();
        let mut closed = None;
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(awc::ws::Frame::Binary(b)) => match BroadcastResponse::decode(b) {
                    Ok(resp) => tally.answer(&resp),
                    Err(e) => tally.failed(1, format!("undecodable answer: {e}")),
                },
                Ok(awc::ws::Frame::Close(reason)) => {
                    closed = reason;
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    closed = Some(awc::ws::CloseReason {
                        code: awc::ws::CloseCode::Abnormal,
                        description: Some(e.to_string()),
                    });
                    break;
                }
            }
        }
        (tally, closed)
    };
    let (sent, (mut tally, closed)) = futures_util::join!(sender, receiver);
    if tally.sent < sent {
        let why = closed.and_then(|c| c.description).unwrap_or_else(|| "the stream ended".into());
        tally.failed(sent - tally.sent, format!("no answer: {why}"));
    }
    Ok(tally)
}

/// Fabric's gRPC Broadcast: one stream, the envelopes sent as the OSN reads them, one answer each
/// in order; the stream ends after an answer that is not SUCCESS (what follows is unanswered).
async fn grpc(args: &BroadcastArgs, envelopes: Box<dyn Iterator<Item = Bytes> + Send>) -> anyhow::Result<Tally> {
    let mut client = args.endpoint.grpc_client().await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Envelope>(256);
    let outbound = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
    let sender = async move {
        let mut sent = 0u64;
        for raw in envelopes {
            let Ok(env) = Envelope::decode(raw) else { continue };
            if tx.send(env).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    };
    let receiver = async {
        let mut tally = Tally::default();
        let mut ended = String::from("the stream ended");
        match client.broadcast(outbound).await {
            Ok(answers) => {
                let mut answers = answers.into_inner();
                loop {
                    match answers.next().await {
                        Some(Ok(resp)) => tally.answer(&resp),
                        Some(Err(status)) => {
                            ended = format!("gRPC {:?}: {}", status.code(), status.message());
                            break;
                        }
                        None => break,
                    }
                }
            }
            Err(status) => ended = format!("gRPC {:?}: {}", status.code(), status.message()),
        }
        (tally, ended)
    };
    let (sent, (mut tally, ended)) = futures_util::join!(sender, receiver);
    if tally.sent < sent {
        tally.failed(sent - tally.sent, format!("no answer: {ended}"));
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_input_format() {
        let (_dir, signer) = crate::cli::client::tests::signer();
        let envs: Vec<Envelope> = (0..3).map(|i| transaction(&signer, "ch", 1000 + i)).collect();
        let json: String = envs.iter().map(|e| serde_json::to_string(e).unwrap() + "\n").collect();
        let got = parse_input(InputFormat::Json, "ch", None, json.into()).unwrap();
        assert_eq!(got, envs.iter().map(|e| Bytes::from(e.encode_to_vec())).collect::<Vec<_>>());

        let mut delimited = BytesMut::new();
        envs.iter().for_each(|e| e.encode_length_delimited(&mut delimited).unwrap());
        let got = parse_input(InputFormat::Protobuf, "ch", None, delimited.freeze()).unwrap();
        assert_eq!(got.len(), 3);

        let got = parse_input(InputFormat::Lines, "ch", Some(&signer), Bytes::from_static(b"a\nbb\n\nccc")).unwrap();
        assert_eq!(got.len(), 3);
        for g in got {
            crate::core::envelope::check_broadcast(&Envelope::decode(g).unwrap(), "ch", 1 << 20).unwrap();
        }

        let err = parse_input(InputFormat::Json, "ch", None, Bytes::from_static(b"{}\nnope\n")).unwrap_err();
        assert!(format!("{err:#}").contains("line 2"), "{err:#}");
    }
}
