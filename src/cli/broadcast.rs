//! `osn broadcast`: sends N envelopes of about a given size to a channel, with bounded
//! concurrency, and reports how many were accepted, how many failed and why.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt;
use prost::Message as _;

use super::client::{base_url, transaction};
use crate::proto::{BroadcastResponse, Status};

#[derive(clap::Args, Debug)]
pub struct BroadcastArgs {
    /// Base URL of the OSN.
    #[arg(long, default_value = "http://127.0.0.1:7050")]
    pub url: String,
    /// Channel to broadcast to.
    #[arg(long)]
    pub channel: String,
    /// Number of envelopes.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Approximate size of each envelope in bytes.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

pub async fn run(args: BroadcastArgs) -> anyhow::Result<()> {
    let client = awc::Client::builder().timeout(Duration::from_secs(60)).finish();
    let url = format!("{}/v1/channels/{}/broadcast", base_url(&args.url), args.channel);
    let started = Instant::now();
    let results: Vec<Result<(), String>> = futures_util::stream::iter(0..args.count)
        .map(|_| {
            let body = transaction(&args.channel, args.size).encode_to_vec();
            let req = client
                .post(&url)
                .insert_header(("Content-Type", "application/x-protobuf"))
                .insert_header(("Accept", "application/x-protobuf"));
            async move {
                let mut resp = req.send_body(body).await.map_err(|e| format!("request failed: {e}"))?;
                let body = resp.body().await.map_err(|e| format!("reading the answer failed: {e}"))?;
                let answer = BroadcastResponse::decode(body)
                    .map_err(|e| format!("HTTP {}: undecodable answer: {e}", resp.status()))?;
                if answer.status == Status::Success as i32 {
                    Ok(())
                } else {
                    let status = Status::try_from(answer.status).map(|s| s.as_str_name()).unwrap_or("UNKNOWN");
                    Err(format!("{status}: {}", answer.info))
                }
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed();
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for e in results.into_iter().filter_map(Result::err) {
        *failures.entry(e).or_default() += 1;
    }
    println!(
        "accepted {accepted}/{} envelopes of ~{} bytes to channel '{}' in {:.2} s ({:.0} tx/s)",
        args.count,
        args.size,
        args.channel,
        elapsed.as_secs_f64(),
        accepted as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    for (reason, n) in &failures {
        println!("failed {n}: {reason}");
    }
    if !failures.is_empty() {
        return Err(anyhow::anyhow!("{} envelopes were not accepted", args.count as usize - accepted)).context(url);
    }
    Ok(())
}
