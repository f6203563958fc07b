//! `osn deliver`: streams blocks of a channel (over the deliver websocket or a streamed HTTP
//! response) and prints them: one DeliverResponse per line as JSON, length-delimited protobuf for
//! other tools, or a one-line summary per block.

use std::str::FromStr;

use std::io::Write as _;
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use prost::Message as _;

use super::client::{deliver_over_websocket, seek_request, unreachable, Endpoint, IdentityArgs};
use crate::core::block::{header_hash, hex, kafka_metadata};
use crate::core::seek;
use crate::proto::orderer::deliver_response;
use crate::proto::orderer::seek_info::{SeekBehavior, SeekErrorResponse};
use crate::proto::{Block, DeliverResponse, SeekInfo, SeekPosition, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    Oldest,
    Newest,
    Number(u64),
}

impl FromStr for Position {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "oldest" => Ok(Position::Oldest),
            "newest" => Ok(Position::Newest),
            n => n.parse().map(Position::Number).map_err(|_| format!("'{n}' is not oldest, newest or a block number")),
        }
    }
}

impl Position {
    fn seek(self) -> SeekPosition {
        match self {
            Position::Oldest => seek::oldest(),
            Position::Newest => seek::newest(),
            Position::Number(n) => seek::specified(n),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One DeliverResponse per line, canonical protobuf JSON.
    Json,
    /// Length-delimited protobuf DeliverResponses, as received, for other tools.
    Protobuf,
    /// One line per block.
    Summary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// The deliver websocket (`GET .../deliver`).
    Ws,
    /// A streamed HTTP response (`POST .../deliver`).
    Http,
}

#[derive(clap::Args, Debug)]
pub struct DeliverArgs {
    #[command(flatten)]
    pub endpoint: Endpoint,
    /// Channel to read.
    #[arg(long)]
    pub channel: String,
    /// First block: oldest, newest or a number.
    #[arg(long, default_value = "oldest")]
    pub start: Position,
    /// Last block: newest (at the time of the request), oldest or a number (waited for).
    #[arg(long, default_value = "newest")]
    pub stop: Position,
    /// Keep streaming new blocks as they are cut (ignores --stop).
    #[arg(long)]
    pub follow: bool,
    /// Answer NOT_FOUND on reaching a block not written yet instead of waiting for it.
    #[arg(long)]
    pub fail_if_not_ready: bool,
    /// Read the ledger even while the channel is not consuming Kafka (else SERVICE_UNAVAILABLE).
    #[arg(long)]
    pub best_effort: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Summary)]
    pub format: OutputFormat,
    /// Which deliver route to use.
    #[arg(long, value_enum, default_value_t = Transport::Ws)]
    pub transport: Transport,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

/// Prints responses as they come and knows when the stream is over.
struct Printer {
    format: OutputFormat,
    blocks: u64,
    txs: u64,
}

impl Printer {
    /// Handles one raw DeliverResponse; `Some` once the final status arrived.
    fn response(&mut self, raw: Bytes) -> anyhow::Result<Option<()>> {
        let resp = DeliverResponse::decode(raw.clone()).context("undecodable DeliverResponse")?;
        match self.format {
            OutputFormat::Json => println!("{}", serde_json::to_string(&resp)?),
            OutputFormat::Protobuf => {
                let mut out = std::io::stdout().lock();
                let mut len = Vec::with_capacity(10);
                prost::encoding::encode_varint(raw.len() as u64, &mut len);
                out.write_all(&len)?;
                out.write_all(&raw)?;
                out.flush()?;
            }
            OutputFormat::Summary => {}
        }
        match resp.r#type {
            Some(deliver_response::Type::Block(block)) => {
                self.blocks += 1;
                let n = block.data.as_ref().map_or(0, |d| d.data.len());
                self.txs += n as u64;
                if let OutputFormat::Summary = self.format {
                    println!("{}", summary(&block));
                }
                Ok(None)
            }
            Some(deliver_response::Type::Status(s)) => {
                let status = Status::try_from(s).unwrap_or(Status::Unknown);
                if let OutputFormat::Summary = self.format {
                    println!("status {}: {} blocks, {} transactions", status.as_str_name(), self.blocks, self.txs);
                }
                if status == Status::Success {
                    return Ok(Some(()));
                }
                bail!("deliver ended with status {}: {}", status.as_str_name(), resp.info);
            }
            None => bail!("empty DeliverResponse"),
        }
    }
}

/// One line describing a block.
pub fn summary(block: &Block) -> String {
    let header = block.header.clone().unwrap_or_default();
    let txs = block.data.as_ref().map_or(0, |d| d.data.len());
    format!(
        "block {:>6}  txs {:>5}  bytes {:>8}  hash {}  prev {}  kafka-offset {}",
        header.number,
        txs,
        block.encoded_len(),
        &hex(&header_hash(&header))[..16],
        if header.previous_hash.is_empty() { "-".to_string() } else { hex(&header.previous_hash)[..16].to_string() },
        kafka_metadata(block).map_or(-1, |k| k.last_offset_persisted),
    )
}

pub async fn run(args: DeliverArgs) -> anyhow::Result<()> {
    let stop = if args.follow { seek::specified(u64::MAX) } else { args.stop.seek() };
    let behavior = if args.fail_if_not_ready { SeekBehavior::FailIfNotReady } else { SeekBehavior::BlockUntilReady };
    let errors = if args.best_effort { SeekErrorResponse::BestEffort } else { SeekErrorResponse::Strict };
    let seek = SeekInfo {
        start: Some(args.start.seek()),
        stop: Some(stop),
        behavior: behavior as i32,
        error_response: errors as i32,
    };
    let signer = args.identity.load()?;
    let request: Bytes = seek_request(&signer, &args.channel, &seek).encode_to_vec().into();
    let mut printer = Printer { format: args.format, blocks: 0, txs: 0 };
    match args.transport {
        Transport::Ws => over_websocket(&args, request, &mut printer).await,
        Transport::Http => over_http(&args, request, &mut printer).await,
    }
}

async fn over_websocket(args: &DeliverArgs, request: Bytes, printer: &mut Printer) -> anyhow::Result<()> {
    deliver_over_websocket(&args.endpoint, &args.channel, request, |raw| printer.response(raw)).await
}

async fn over_http(args: &DeliverArgs, request: Bytes, printer: &mut Printer) -> anyhow::Result<()> {
    let url = format!("{}/v1/channels/{}/deliver", args.endpoint.base(), args.channel);
    let mut resp = args
        .endpoint
        .client(Duration::from_secs(30))?
        .post(&url)
        .insert_header(("Content-Type", "application/x-protobuf"))
        .insert_header(("Accept", "application/x-protobuf"))
        .send_body(request)
        .await
        .map_err(|e| unreachable(&url, e))?;
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.next().await {
        buf.extend_from_slice(&chunk.context("deliver stream broken")?);
        while let Some(raw) = next_delimited(&mut buf)? {
            if printer.response(raw)?.is_some() {
                return Ok(());
            }
        }
    }
    bail!("the stream ended without a final status (HTTP {})", resp.status())
}

/// The next complete length-delimited message in `buf`, if it holds one.
pub fn next_delimited(buf: &mut BytesMut) -> anyhow::Result<Option<Bytes>> {
    let mut peek = &buf[..];
    let len = match prost::encoding::decode_varint(&mut peek) {
        Ok(len) => len as usize,
        // A varint is at most 10 bytes: shorter means it has not all arrived yet.
        Err(_) if buf.len() < 10 => return Ok(None),
        Err(e) => bail!("bad length prefix in the stream: {e}"),
    };
    let prefix = buf.len() - peek.len();
    if peek.len() < len {
        return Ok(None);
    }
    buf.advance(prefix);
    Ok(Some(buf.split_to(len).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimited_messages_are_found_across_chunks() {
        let mut all = BytesMut::new();
        for m in [&b"abc"[..], &[7u8; 300][..], b""] {
            prost::encoding::encode_varint(m.len() as u64, &mut all);
            all.extend_from_slice(m);
        }
        let all = all.freeze();
        for cut in 0..all.len() {
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for part in [&all[..cut], &all[cut..]] {
                buf.extend_from_slice(part);
                while let Some(m) = next_delimited(&mut buf).unwrap() {
                    got.push(m.len());
                }
            }
            assert_eq!(got, vec![3, 300, 0], "cut at {cut}");
        }
    }
}
