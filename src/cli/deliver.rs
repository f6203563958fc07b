//! `osn deliver`: streams blocks of a channel over the deliver websocket and prints them, one
//! DeliverResponse per line in the canonical protobuf JSON mapping, or a one-line summary per
//! block.

use std::str::FromStr;

use anyhow::{bail, Context as _};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;

use super::client::{seek_request, ws_url};
use crate::core::block::{header_hash, hex, kafka_metadata};
use crate::core::seek;
use crate::proto::orderer::deliver_response;
use crate::proto::orderer::seek_info::SeekBehavior;
use crate::proto::{DeliverResponse, SeekInfo, SeekPosition, Status};

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

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OutputFormat {
    Json,
    Summary,
}

#[derive(clap::Args, Debug)]
pub struct DeliverArgs {
    /// Base URL of the OSN.
    #[arg(long, default_value = "http://127.0.0.1:7050")]
    pub url: String,
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
    /// Output: one DeliverResponse per line as JSON, or a summary line per block.
    #[arg(long, value_enum, default_value_t = OutputFormat::Summary)]
    pub format: OutputFormat,
}

pub async fn run(args: DeliverArgs) -> anyhow::Result<()> {
    let stop = if args.follow { seek::specified(u64::MAX) } else { args.stop.seek() };
    let seek = SeekInfo {
        start: Some(args.start.seek()),
        stop: Some(stop),
        behavior: SeekBehavior::BlockUntilReady as i32,
        error_response: 0,
    };
    let url = format!("{}/v1/channels/{}/deliver", ws_url(&args.url), args.channel);
    let (_, mut ws) = awc::Client::new()
        .ws(&url)
        .max_frame_size(256 * 1024 * 1024)
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the deliver websocket {url}: {e}"))?;
    ws.send(awc::ws::Message::Binary(seek_request(&args.channel, &seek).encode_to_vec().into()))
        .await
        .context("sending the seek request")?;
    let (mut blocks, mut txs) = (0u64, 0u64);
    while let Some(frame) = ws.next().await {
        let raw = match frame.context("deliver stream broken")? {
            awc::ws::Frame::Binary(b) => b,
            awc::ws::Frame::Close(reason) => bail!("the OSN closed the stream: {reason:?}"),
            _ => continue,
        };
        let resp = DeliverResponse::decode(raw).context("undecodable DeliverResponse")?;
        if let OutputFormat::Json = args.format {
            println!("{}", serde_json::to_string(&resp)?);
        }
        match resp.r#type {
            Some(deliver_response::Type::Block(block)) => {
                blocks += 1;
                let n = block.data.as_ref().map_or(0, |d| d.data.len());
                txs += n as u64;
                if let OutputFormat::Summary = args.format {
                    let header = block.header.clone().unwrap_or_default();
                    println!(
                        "block {:>6}  txs {:>5}  bytes {:>8}  hash {}  prev {}  kafka-offset {}",
                        header.number,
                        n,
                        block.encoded_len(),
                        &hex(&header_hash(&header))[..16],
                        if header.previous_hash.is_empty() {
                            "-".to_string()
                        } else {
                            hex(&header.previous_hash)[..16].to_string()
                        },
                        kafka_metadata(&block).map_or(-1, |k| k.last_offset_persisted),
                    );
                }
            }
            Some(deliver_response::Type::Status(s)) => {
                let status = Status::try_from(s).unwrap_or(Status::Unknown);
                if let OutputFormat::Summary = args.format {
                    println!("status {}: {blocks} blocks, {txs} transactions", status.as_str_name());
                }
                if status == Status::Success {
                    return Ok(());
                }
                bail!("deliver ended with status {}", status.as_str_name());
            }
            None => bail!("empty DeliverResponse"),
        }
    }
    bail!("the stream ended without a final status")
}
