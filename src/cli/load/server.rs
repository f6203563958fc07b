//! What `osn load` reads of the OSN under load: its resident memory, its channels' metrics
//! before and after, and a progress bar.

use super::*;

/// The `/metrics` sample of the OSN's resident memory.
pub(super) const RSS: &str = "process_resident_memory_bytes";

/// The `/metrics` sample of the OSN's threads.
pub(super) const THREADS: &str = "process_threads";
/// The OSN's CPU time, in seconds.
pub(super) const CPU: &str = "process_cpu_seconds_total";

/// Keeps the most resident memory the OSN reports, every 500 ms until `stop`.
pub(super) async fn sample_rss(endpoint: Endpoint, max: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        if let Some(rss) = scrape(&endpoint).await.and_then(|m| m.get(RSS).copied()) {
            max.fetch_max(rss as u64, Ordering::Relaxed);
        }
        actix_rt::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A progress bar on stderr (a terminal): answered and ordered envelopes, ordered per second.
pub(super) async fn progress_bar(shared: Arc<Shared>, total: usize, stop: Arc<AtomicBool>) {
    const WIDTH: usize = 30;
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let (answered, accepted, ordered) = (
            shared.answered.load(Ordering::Relaxed),
            shared.accepted.load(Ordering::Relaxed),
            shared.ordered.load(Ordering::Relaxed),
        );
        let filled = ordered * WIDTH / total.max(1);
        eprint!(
            "\r[{}{}] {:>3}% · answered {answered}/{total} · accepted {accepted} · ordered {ordered} · {:.0} tx/s ",
            "#".repeat(filled.min(WIDTH)),
            ".".repeat(WIDTH - filled.min(WIDTH)),
            ordered * 100 / total.max(1),
            ordered as f64 / started.elapsed().as_secs_f64().max(1e-3),
        );
        actix_rt::time::sleep(Duration::from_millis(250)).await;
    }
    eprint!("\r{:120}\r", "");
}

/// Every sample of the OSN's `/metrics` (name{labels} → value), when it serves them there.
pub(super) async fn scrape(endpoint: &Endpoint) -> Option<HashMap<String, f64>> {
    let client = endpoint.client(Duration::from_secs(10)).ok()?;
    let mut resp = client.get(format!("{}/metrics", endpoint.base())).send().await.ok()?;
    let text = String::from_utf8(resp.body().limit(64 << 20).await.ok()?.to_vec()).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(k, v)| Some((k.to_owned(), v.parse().ok()?))))
            .collect(),
    )
}

/// The loaded channels' `osn_channel_*` samples (no histogram buckets), after minus before, with
/// the channel label removed and summed over the channels.
pub(super) fn channel_metrics(
    before: &HashMap<String, f64>,
    after: &HashMap<String, f64>,
    channels: &[String],
) -> BTreeMap<String, f64> {
    let channels: HashSet<&str> = channels.iter().map(String::as_str).collect();
    let mut out = BTreeMap::new();
    for (key, value) in after {
        if !key.starts_with("osn_channel_") || key.contains("_bucket{") {
            continue;
        }
        if let Some(name) = without_channel(key, &channels) {
            *out.entry(name).or_default() += value - before.get(key).copied().unwrap_or(0.0);
        }
    }
    out
}

/// `key` without its `channel="…"` label, if that label names one of `channels`.
pub(super) fn without_channel(key: &str, channels: &HashSet<&str>) -> Option<String> {
    const LABEL: &str = "channel=\"";
    let start = key.find(LABEL)?;
    let rest = &key[start + LABEL.len()..];
    let end = rest.find('"')?;
    if !channels.contains(&rest[..end]) {
        return None;
    }
    let joined = format!("{}{}", &key[..start], &rest[end + 1..]);
    Some(joined.replace("{,", "{").replace(",}", "}").replace("{}", ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_labels_are_removed_from_the_loaded_channels_samples_only() {
        let channels: HashSet<&str> = ["a", "b"].into_iter().collect();
        assert_eq!(
            without_channel("osn_channel_blocks_cut_total{channel=\"a\",reason=\"time_to_cut\"}", &channels).unwrap(),
            "osn_channel_blocks_cut_total{reason=\"time_to_cut\"}"
        );
        assert_eq!(
            without_channel("osn_channel_x{reason=\"r\",channel=\"b\"}", &channels).unwrap(),
            "osn_channel_x{reason=\"r\"}"
        );
        assert_eq!(without_channel("osn_channel_status{channel=\"a\"}", &channels).unwrap(), "osn_channel_status");
        assert_eq!(without_channel("osn_channel_status{channel=\"c\"}", &channels), None);
        let before: HashMap<String, f64> = [("osn_channel_y{channel=\"a\"}".to_owned(), 2.0)].into_iter().collect();
        let after: HashMap<String, f64> = [
            ("osn_channel_y{channel=\"a\"}".to_owned(), 5.0),
            ("osn_channel_y{channel=\"b\"}".to_owned(), 1.0),
            ("osn_channel_y{channel=\"c\"}".to_owned(), 100.0),
            ("osn_channel_h_bucket{channel=\"a\",le=\"1\"}".to_owned(), 9.0),
        ]
        .into_iter()
        .collect();
        let summed = channel_metrics(&before, &after, &["a".to_owned(), "b".to_owned()]);
        assert_eq!(summed, [("osn_channel_y".to_owned(), 4.0)].into_iter().collect());
    }
}
