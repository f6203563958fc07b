//! `osn load --report FILE.html`: the summary as one self-contained page (inline SVG and CSS, no
//! script, nothing fetched), for people who would rather look than read: the figures, the
//! throughput over time, and the latency distributions.

use std::fmt::Write as _;

use super::report::TICK;
use super::Summary;

/// The whole page.
pub(super) fn report(s: &Summary, command: &[String]) -> String {
    let mut page = String::new();
    let title = format!("osn load: {:.0} tx/s ordered", s.ordered_tps);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    let _ = writeln!(page, "<h1>{}</h1>", escape(&title));
    let _ = writeln!(
        page,
        "<p class=\"cmd\"><code>{}</code><br>{}</p>",
        escape(&command.join(" ")),
        escape(&humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string())
    );
    page.push_str(&figures(s));
    let tps = |series: &[u64]| -> Vec<(f64, f64)> {
        // Each tick's count as a rate, smoothed over four ticks (one second).
        let rate = 1.0 / TICK.as_secs_f64();
        (0..series.len())
            .map(|i| {
                let from = i.saturating_sub(3);
                let sum: u64 = series[from..=i].iter().sum();
                ((i + 1) as f64 * TICK.as_secs_f64(), sum as f64 * rate / (i + 1 - from) as f64)
            })
            .collect()
    };
    page.push_str("<h2>Throughput over time</h2>\n");
    page.push_str(&chart(
        &Axes { x: "seconds since the load began", y: "transactions per second (1 s average)", log_x: false },
        &[
            ("accepted (answered SUCCESS)", "#1f77b4", tps(&s.plots.accepted)),
            ("ordered (delivered in a block)", "#d62728", tps(&s.plots.ordered)),
        ],
    ));
    page.push_str("<h2>Latency distribution</h2>\n");
    page.push_str(&chart(
        &Axes { x: "percentile", y: "milliseconds", log_x: true },
        &[
            ("broadcast → answered", "#1f77b4", s.plots.ack.clone()),
            ("broadcast → delivered in a block", "#d62728", s.plots.delivered.clone()),
        ],
    ));
    page.push_str(
        "<p class=\"note\">The percentile axis is spread as 1/(1 − p), so the tail (99 %, 99.9 %, 99.99 %) \
         gets as much room as the median. Each point is the latency that fraction of the envelopes stayed under.</p>\n",
    );
    page.push_str("</body></html>\n");
    page
}

const STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}table{border-collapse:collapse}\
td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.cmd code{font-size:.85em;word-break:break-all}.note{color:#555;font-size:.9em}svg text{font:12px system-ui,sans-serif}";

/// The summary's figures as a table.
fn figures(s: &Summary) -> String {
    let mut rows: Vec<(String, String)> = vec![
        ("channels".into(), s.channels.len().to_string()),
        ("envelopes".into(), format!("{} of {} bytes, mode {}", s.count, s.size, s.mode)),
        ("accepted".into(), format!("{} ({:.0} tx/s)", s.accepted, s.accepted_tps)),
        ("ordered".into(), format!("{} ({:.0} tx/s)", s.ordered, s.ordered_tps)),
    ];
    if let Some(rate) = s.rate {
        rows.push(("target rate".into(), format!("{rate:.0} tx/s")));
    }
    let p = |l: &super::Percentiles| {
        format!("p50 {:.1} · p90 {:.1} · p99 {:.1} · p99.9 {:.1} · max {:.1} ms", l.p50, l.p90, l.p99, l.p999, l.max)
    };
    rows.push(("broadcast → answered".into(), p(&s.ack_latency_ms)));
    rows.push(("broadcast → delivered".into(), p(&s.delivered_latency_ms)));
    if let Some(kafka) = &s.baseline_kafka_latency_ms {
        rows.push(("Kafka alone: produced → acknowledged".into(), p(&kafka.ack)));
        rows.push(("Kafka alone: produced → read back".into(), p(&kafka.consumed)));
    }
    if let Some(lag) = &s.send_lag_ms {
        rows.push(("sent after due (the generator's lag)".into(), p(lag)));
    }
    if let (Some(tps), Some(ratio)) = (s.baseline_kafka_tps, s.baseline_ratio) {
        rows.push(("Kafka alone".into(), format!("{tps:.0} rec/s (the OSN orders {:.0} % of it)", ratio * 100.0)));
    }
    if let Some(us) = s.server_cpu_us_per_tx {
        let parts: Vec<String> = s.server_cpu_us_per_tx_by_part.iter().map(|(p, us)| format!("{p} {us:.1}")).collect();
        rows.push(("server CPU per transaction".into(), format!("{us:.1} µs ({})", parts.join(" · "))));
    }
    if let Some(us) = s.osn_cpu_us_per_tx {
        rows.push((
            "OSN's own CPU per transaction".into(),
            format!("{us:.1} µs (less verification and the embedded broker)"),
        ));
    }
    for (status, n) in &s.refused {
        rows.push((format!("refused {status}"), n.to_string()));
    }
    rows.push((
        "subscribers".into(),
        format!(
            "{} per channel, {} opened, {} received every block",
            s.subscribers.per_channel, s.subscribers.opened, s.subscribers.received_every_block
        ),
    ));
    if let Some(rss) = &s.server_rss_mib {
        rows.push(("server RSS".into(), format!("{:.0} → {:.0} MiB (at most {:.0})", rss.before, rss.after, rss.max)));
    }
    let mut out = String::from("<table>\n");
    for (k, v) in rows {
        let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(&k), escape(&v));
    }
    out.push_str("</table>\n");
    out
}

struct Axes {
    x: &'static str,
    y: &'static str,
    /// The x axis is a percentile, spread as 1/(1 − p).
    log_x: bool,
}

/// A plotted line: its name, its colour and its points.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

/// A line chart of `series` as inline SVG.
fn chart(axes: &Axes, series: &[Series<'_>]) -> String {
    const W: f64 = 900.0;
    const H: f64 = 360.0;
    const L: f64 = 70.0;
    const R: f64 = 20.0;
    const T: f64 = 20.0;
    const B: f64 = 50.0;
    // Percentile p → log10(1 / (1 − p)), capped at 99.999 %.
    let fx = |x: f64| if axes.log_x { (1.0 / (1.0 - (x / 100.0).min(0.99999))).log10() } else { x };
    let points: Vec<(f64, f64)> = series.iter().flat_map(|(_, _, p)| p.iter().map(|&(x, y)| (fx(x), y))).collect();
    if points.is_empty() {
        return "<p class=\"note\">(nothing to plot)</p>\n".into();
    }
    let x_max = points.iter().map(|p| p.0).fold(f64::MIN, f64::max).max(1e-9);
    let x_min = if axes.log_x { 0.0 } else { points.iter().map(|p| p.0).fold(f64::MAX, f64::min).min(0.0) };
    let y_max = nice(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let sx = |x: f64| L + (x - x_min) / (x_max - x_min).max(1e-9) * (W - L - R);
    let sy = |y: f64| H - B - y / y_max * (H - T - B);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\">\n"
    );
    // The y grid and labels.
    for i in 0..=5 {
        let y = y_max * i as f64 / 5.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{L}\" x2=\"{}\" y1=\"{py:.1}\" y2=\"{py:.1}\" stroke=\"#e5e5e5\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - R,
            L - 6.0,
            sy(y) + 4.0,
            label(y),
            py = sy(y)
        );
    }
    // The x ticks.
    let ticks: Vec<(f64, String)> = if axes.log_x {
        [(0.0, "0 %"), (50.0, "50 %"), (90.0, "90 %"), (99.0, "99 %"), (99.9, "99.9 %"), (99.99, "99.99 %")]
            .iter()
            .filter(|(p, _)| fx(*p) <= x_max + 1e-9)
            .map(|(p, l)| (fx(*p), l.to_string()))
            .collect()
    } else {
        let step = nice(x_max / 8.0).max(TICK.as_secs_f64());
        (0..=((x_max / step) as usize)).map(|i| (i as f64 * step, label(i as f64 * step))).collect()
    };
    for (x, text) in ticks {
        let _ = writeln!(
            svg,
            "<line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{T}\" y2=\"{}\" stroke=\"#f0f0f0\"/><text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            H - B,
            H - B + 16.0,
            escape(&text),
            px = sx(x)
        );
    }
    let _ = writeln!(
        svg,
        "<line x1=\"{L}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#888\"/><line x1=\"{L}\" x2=\"{L}\" y1=\"{T}\" y2=\"{}\" stroke=\"#888\"/>",
        W - R,
        H - B,
        H - B,
        H - B
    );
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        (L + W - R) / 2.0,
        H - 12.0,
        escape(axes.x)
    );
    let _ = writeln!(
        svg,
        "<text transform=\"translate(16 {}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        (T + H - B) / 2.0,
        escape(axes.y)
    );
    for (n, (name, colour, points)) in series.iter().enumerate() {
        let path: Vec<String> = points.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(fx(x)), sy(y))).collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        if axes.log_x {
            for &(x, y) in points {
                let _ =
                    writeln!(svg, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>", sx(fx(x)), sy(y));
            }
        }
        let ly = T + 14.0 + 18.0 * n as f64;
        let _ = writeln!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"4\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            L + 14.0,
            ly - 6.0,
            L + 34.0,
            ly,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A round number at or above `v` (1, 2 or 5 times a power of ten).
fn nice(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * p).find(|&c| c >= v).unwrap_or(10.0 * p)
}

/// An axis label: no decimals past what the value needs.
fn label(v: f64) -> String {
    if v >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_one_page_with_both_plots_and_the_figures_escaped() {
        let summary = Summary {
            channels: vec![],
            mode: "batch".into(),
            count: 10,
            size: 2048,
            accepted: 10,
            ordered: 10,
            rate: None,
            accepted_tps: 1000.0,
            ordered_tps: 900.0,
            ack_latency_ms: Default::default(),
            delivered_latency_ms: Default::default(),
            send_lag_ms: None,
            refused: [("SERVICE_UNAVAILABLE".to_string(), 2)].into(),
            subscribers: Default::default(),
            server_rss_mib: None,
            server_threads: None,
            server_cpu_us_per_tx: Some(40.0),
            server_cpu_us_per_tx_by_part: [("verify".to_string(), 30.0)].into(),
            osn_cpu_us_per_tx: Some(10.0),
            create_channels_secs: None,
            channel_metrics: Default::default(),
            baseline_kafka_tps: None,
            baseline_kafka_latency_ms: None,
            baseline_ratio: None,
            plots: super::super::Plots {
                accepted: vec![3, 4, 3],
                ordered: vec![2, 5, 3],
                ack: vec![(0.0, 1.0), (50.0, 2.0), (99.0, 5.0), (100.0, 9.0)],
                delivered: vec![(0.0, 2.0), (50.0, 4.0), (99.0, 20.0), (100.0, 30.0)],
            },
        };
        let page = report(&summary, &["osn".into(), "load".into(), "--channel=<x>".into()]);
        assert!(page.starts_with("<!DOCTYPE html>") && page.ends_with("</html>\n"));
        assert_eq!(page.matches("<svg").count(), 2, "throughput and latency plots");
        assert_eq!(page.matches("<polyline").count(), 4, "two series in each");
        assert!(page.contains("--channel=&lt;x&gt;"), "the command is escaped");
        assert!(page.contains("OSN's own CPU per transaction"));
        assert!(page.contains("SERVICE_UNAVAILABLE"));
        assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("href="), "self-contained");
        assert!(!page.contains("NaN") && !page.contains("inf"), "every coordinate is a number");
        assert_eq!(nice(7.3), 10.0);
        assert_eq!(nice(0.34), 0.5);
    }
}
