//! The broadcast senders of `osn load`: HTTP requests (single or batch), websocket streams and
//! gRPC Broadcast streams, each envelope timed from when it was due.

use super::*;

/// Single and batch mode: requests of one channel's envelopes each, interleaved across the
/// channels, `--concurrency` in flight.
pub(super) async fn broadcast_http(
    args: &LoadArgs,
    endpoint: &Endpoint,
    envelopes: &[Bytes],
    shared: &Arc<Shared>,
    started: Instant,
) -> anyhow::Result<Vec<Outcome>> {
    let n = args.channels.len();
    let per_request = if args.mode == Mode::Batch { args.batch_size } else { 1 };
    let per_channel: Vec<Vec<Vec<usize>>> = (0..n)
        .map(|c| {
            (c..envelopes.len()).step_by(n).collect::<Vec<_>>().chunks(per_request).map(<[usize]>::to_vec).collect()
        })
        .collect();
    let rounds = per_channel.iter().map(Vec::len).max().unwrap_or(0);
    let requests: Vec<Vec<usize>> =
        (0..rounds).flat_map(|r| per_channel.iter().filter_map(move |reqs| reqs.get(r).cloned())).collect();
    let client = endpoint.client(Duration::from_secs(60))?;
    let base = endpoint.base();
    let pacer = pacer(args, started, requests.len(), per_request)?;
    let answers: Vec<Vec<Outcome>> = futures_util::stream::iter(requests.into_iter().enumerate())
        .map(|(r, ids)| {
            let (client, base, shared, pacer) = (&client, &base, shared.clone(), pacer.as_ref());
            let due = args.rate.map(|rate| due(rate, started, r * per_request));
            let channel = &args.channels[ids[0] % n];
            async move {
                if let Some(pacer) = pacer {
                    pacer.turn(r).await;
                }
                let at = mark_sent(&shared, &ids, due);
                let result = send(client, base, channel, args.mode, &ids, envelopes).await;
                let took = shared.t0.elapsed() - at;
                let statuses: Vec<Option<i32>> = match result {
                    Ok(responses) => responses.iter().map(|r| Some(r.status)).collect(),
                    Err(_) => vec![None; ids.len()],
                };
                statuses.iter().for_each(|&s| count_answer(&shared, s));
                ids.into_iter().zip(statuses).map(|(i, s)| (i, s, took)).collect()
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    Ok(answers.into_iter().flatten().collect())
}

/// Sends the envelopes `ids` in one request; their answers in order.
pub(super) async fn send(
    client: &awc::Client,
    base: &str,
    channel: &str,
    mode: Mode,
    ids: &[usize],
    envelopes: &[Bytes],
) -> Result<Vec<BroadcastResponse>, String> {
    let (url, body) = match mode {
        Mode::Batch => {
            let mut body = bytes::BytesMut::new();
            for &i in ids {
                prost::encoding::encode_varint(envelopes[i].len() as u64, &mut body);
                body.extend_from_slice(&envelopes[i]);
            }
            (format!("{base}/v1/channels/{channel}/broadcast:batch"), body.freeze())
        }
        Mode::Single | Mode::Ws | Mode::Grpc => {
            (format!("{base}/v1/channels/{channel}/broadcast"), envelopes[ids[0]].clone())
        }
    };
    let mut resp = client
        .post(&url)
        .insert_header(("Content-Type", "application/x-protobuf"))
        .insert_header(("Accept", "application/x-protobuf"))
        .send_body(body)
        .await
        .map_err(|e| unreachable(&url, e).to_string())?;
    let body = resp.body().limit(64 << 20).await.map_err(|e| e.to_string())?;
    if mode == Mode::Batch && resp.status().is_success() {
        let mut buf = body;
        let mut out = Vec::new();
        while !buf.is_empty() {
            out.push(BroadcastResponse::decode_length_delimited(&mut buf).map_err(|e| e.to_string())?);
        }
        Ok(out)
    } else {
        let answer = BroadcastResponse::decode(body).map_err(|e| e.to_string())?;
        Ok(ids.iter().map(|_| answer.clone()).collect())
    }
}

/// Websocket mode: each channel gets its share of `--concurrency` broadcast streams (at least
/// one), and each stream its share of the channel's envelopes, sent in order (on schedule at a
/// target rate) and answered in order.
pub(super) async fn broadcast_ws(
    args: &LoadArgs,
    endpoint: &Endpoint,
    envelopes: &[Bytes],
    shared: &Arc<Shared>,
    started: Instant,
) -> anyhow::Result<Vec<Outcome>> {
    let client = endpoint.client(Duration::from_secs(60))?;
    let pacer = pacer(args, started, envelopes.len(), 1)?;
    let schedule = args.rate.zip(pacer.as_ref()).map(|(rate, pacer)| Schedule { rate, started, pacer });
    let tasks = stream_shares(args, envelopes.len()).into_iter().map(|(c, ids)| {
        let url = format!("{}/v1/channels/{}/broadcast", endpoint.ws_base(), args.channels[c]);
        ws_stream(&client, url, ids, envelopes, shared, schedule.as_ref())
    });
    Ok(futures_util::future::join_all(tasks).await.into_iter().flatten().collect())
}

/// The streams of ws and gRPC mode: each channel gets its share of `--concurrency` streams (at
/// least one), and each stream its share of the channel's envelopes (channel, envelope numbers).
fn stream_shares(args: &LoadArgs, count: usize) -> Vec<(usize, Vec<usize>)> {
    let n = args.channels.len();
    let streams = args.concurrency.div_ceil(n).max(1);
    (0..n).flat_map(|c| (0..streams).map(move |k| (c, (c + k * n..count).step_by(n * streams).collect()))).collect()
}

/// The schedule of a stream's envelopes at `--rate`: envelope `i` waits for the pacer's turn `i`.
struct Schedule<'a> {
    rate: f64,
    started: Instant,
    pacer: &'a pace::Pacer,
}

impl Schedule<'_> {
    /// Waits for envelope `i`'s turn; when it was due.
    async fn wait(&self, i: usize) -> Instant {
        self.pacer.turn(i).await;
        due(self.rate, self.started, i)
    }
}

/// Waits for envelope `i`'s turn, if there is a schedule; when it was due.
async fn on_schedule(schedule: Option<&Schedule<'_>>, i: usize) -> Option<Instant> {
    match schedule {
        Some(s) => Some(s.wait(i).await),
        None => None,
    }
}

/// One broadcast websocket: sends `ids` in order and pairs each answer with the oldest envelope
/// not answered yet.
async fn ws_stream(
    client: &awc::Client,
    url: String,
    ids: Vec<usize>,
    envelopes: &[Bytes],
    shared: &Shared,
    schedule: Option<&Schedule<'_>>,
) -> Vec<Outcome> {
    let ws = match client.ws(&url).max_frame_size(64 << 20).connect().await {
        Ok((_, ws)) => ws,
        Err(_) => {
            ids.iter().for_each(|_| count_answer(shared, None));
            return ids.into_iter().map(|i| (i, None, Duration::ZERO)).collect();
        }
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Duration)>();
    let sender = async {
        for (n, &i) in ids.iter().enumerate() {
            let due = on_schedule(schedule, i).await;
            let _ = tx.send((i, mark_sent(shared, &[i], due)));
            if sink.send(awc::ws::Message::Binary(envelopes[i].clone())).await.is_err() {
                return n + 1;
            }
        }
        let _ = sink.send(awc::ws::Message::Close(None)).await;
        drop(tx);
        ids.len()
    };
    let receiver = async {
        let mut outcomes = Vec::new();
        while let Some(Ok(frame)) = stream.next().await {
            match frame {
                awc::ws::Frame::Binary(b) => {
                    let status = BroadcastResponse::decode(b).ok().map(|r| r.status);
                    let Ok((i, at)) = rx.try_recv() else { break };
                    count_answer(shared, status);
                    outcomes.push((i, status, shared.t0.elapsed() - at));
                }
                awc::ws::Frame::Close(_) => break,
                _ => {}
            }
        }
        outcomes
    };
    let (sent, mut outcomes) = futures_util::join!(sender, receiver);
    // Envelopes sent but never answered, and those never sent (the stream broke first).
    let unanswered = std::iter::from_fn(|| rx.try_recv().ok().map(|(i, _)| i));
    for i in unanswered.collect::<Vec<_>>().into_iter().chain(ids[sent..].iter().copied()) {
        count_answer(shared, None);
        outcomes.push((i, None, Duration::ZERO));
    }
    outcomes
}

/// gRPC mode: as websocket mode, over Fabric's Broadcast RPC (`--grpc`), one connection per
/// stream. A stream ends at its first answer that is not SUCCESS; what was sent after it gets no
/// answer.
pub(super) async fn broadcast_grpc(
    args: &LoadArgs,
    endpoint: &Endpoint,
    envelopes: &[Bytes],
    shared: &Arc<Shared>,
    started: Instant,
) -> anyhow::Result<Vec<Outcome>> {
    let shares = stream_shares(args, envelopes.len());
    let mut clients = Vec::new();
    for _ in 0..shares.len() {
        clients.push(endpoint.grpc_client().await?);
    }
    let pacer = pacer(args, started, envelopes.len(), 1)?;
    let schedule = args.rate.zip(pacer.as_ref()).map(|(rate, pacer)| Schedule { rate, started, pacer });
    let tasks = shares
        .into_iter()
        .zip(clients)
        .map(|((_, ids), client)| grpc_stream(client, ids, envelopes, shared, schedule.as_ref()));
    Ok(futures_util::future::join_all(tasks).await.into_iter().flatten().collect())
}

/// One gRPC Broadcast stream: sends `ids` in order and pairs each answer with the oldest envelope
/// not answered yet.
async fn grpc_stream(
    mut client: crate::proto::orderer::atomic_broadcast_client::AtomicBroadcastClient<tonic::transport::Channel>,
    ids: Vec<usize>,
    envelopes: &[Bytes],
    shared: &Shared,
    schedule: Option<&Schedule<'_>>,
) -> Vec<Outcome> {
    let (requests, rx) = tokio::sync::mpsc::channel::<crate::proto::Envelope>(64);
    let outbound = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
    let (tx, mut sent_at) = tokio::sync::mpsc::unbounded_channel::<(usize, Duration)>();
    let sender = async {
        for (n, &i) in ids.iter().enumerate() {
            let due = on_schedule(schedule, i).await;
            let Ok(envelope) = crate::proto::Envelope::decode(envelopes[i].clone()) else { return n };
            let _ = tx.send((i, mark_sent(shared, &[i], due)));
            if requests.send(envelope).await.is_err() {
                return n + 1;
            }
        }
        drop(requests);
        drop(tx);
        ids.len()
    };
    let receiver = async {
        let mut outcomes = Vec::new();
        if let Ok(answers) = client.broadcast(outbound).await {
            let mut answers = answers.into_inner();
            while let Some(Ok(resp)) = answers.next().await {
                let Ok((i, at)) = sent_at.try_recv() else { break };
                count_answer(shared, Some(resp.status));
                outcomes.push((i, Some(resp.status), shared.t0.elapsed() - at));
            }
        }
        (outcomes, sent_at)
    };
    let (sent, (mut outcomes, mut sent_at)) = futures_util::join!(sender, receiver);
    let unanswered = std::iter::from_fn(|| sent_at.try_recv().ok().map(|(i, _)| i));
    for i in unanswered.collect::<Vec<_>>().into_iter().chain(ids[sent..].iter().copied()) {
        count_answer(shared, None);
        outcomes.push((i, None, Duration::ZERO));
    }
    outcomes
}
