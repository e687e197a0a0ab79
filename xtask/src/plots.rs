//! `plots`: reads the JSON results the `bench/` scripts commit (each file a
//! JSON array of `stele bench --json` reports, several runs per point),
//! takes the median of the runs at each point, and draws PNGs with plotters'
//! bitmap backend. Text is drawn with ab_glyph from DejaVu Sans embedded in
//! the binary, so no system font is needed. It also prints (and writes to
//! `summary.md`) the medians as Markdown tables, for BENCHMARKS.md.
//!
//! | file | figure |
//! |---|---|
//! | `clients.json` | `clients.png`: single node, log writes and the ceiling vs clients |
//! | `latency.json` | `latency.png`: commit latency percentiles vs offered load (open loop) |
//! | `workers.json` | `workers.png`: SmallBank through the service, 1 vs 2 workers |
//! | `etcd3.json` | `etcd3.png`: 3-node Stele vs 3-node etcd, throughput and p99 |
//! | `memory-10m.tsv` | `memory.png`: RSS vs committed transactions at constant state (`bench/memory.sh`), with the least-squares B/tx |
//!
//! `single.json` and `cluster3.json` (every workload on one node, on a 3-node
//! cluster) are tables only. `memory-10m.tsv` is what `bench/memory.sh`
//! prints (`seconds`, `seqno`, `rss_kib`); rows whose seqno does not increase
//! (the load had finished) are left out of the plot and the slope.
//!
//! A missing file is skipped with a note, so partial results still plot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

/// Pixels of every PNG.
const SIZE: (u32, u32) = (960, 600);
/// Series colours, in order.
const COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

/// The figures of one `stele bench` report that the plots use.
#[derive(Debug, Clone)]
struct Run {
    label: Option<String>,
    workload: String,
    clients: u64,
    rate: Option<f64>,
    accounts: Option<u64>,
    committed_per_s: f64,
    ceiling_per_s: f64,
    ratio: f64,
    /// p50, p90, p99, p99.9 of the workload, ms.
    latency: [f64; 4],
    ceiling_p99: f64,
    failed: u64,
}

impl Run {
    fn from_json(report: &Value) -> Result<Run> {
        let number = |pointer: &str| {
            report
                .pointer(pointer)
                .and_then(Value::as_f64)
                .with_context(|| format!("no number at {pointer}"))
        };
        let settings = &report["settings"];
        Ok(Run {
            label: settings["label"].as_str().map(str::to_owned),
            workload: settings["workload"]
                .as_str()
                .context("no settings.workload")?
                .to_owned(),
            clients: settings["clients"]
                .as_u64()
                .context("no settings.clients")?,
            rate: settings["rate_per_s"].as_f64(),
            accounts: settings["accounts"].as_u64(),
            committed_per_s: number("/result/committed_per_s")?,
            ceiling_per_s: number("/ceiling/committed_per_s")?,
            ratio: report
                .pointer("/ratio/throughput")
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
            latency: [
                number("/result/latency_ms/p50")?,
                number("/result/latency_ms/p90")?,
                number("/result/latency_ms/p99")?,
                number("/result/latency_ms/p99_9")?,
            ],
            ceiling_p99: number("/ceiling/latency_ms/p99")?,
            failed: report
                .pointer("/result/failed")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        })
    }
}

/// The runs in `dir/name`, or `None` if the file is absent.
fn load(dir: &Path, name: &str) -> Result<Option<Vec<Run>>> {
    let path = dir.join(name);
    if !path.exists() {
        eprintln!("skipping {}: absent", path.display());
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path:?}"))?;
    let json: Value = serde_json::from_str(&text).with_context(|| format!("parsing {path:?}"))?;
    let reports = json
        .as_array()
        .with_context(|| format!("{path:?} is not a JSON array of reports"))?;
    let runs = reports
        .iter()
        .map(Run::from_json)
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("reading the reports of {path:?}"))?;
    if runs.is_empty() {
        eprintln!("skipping {}: no runs", path.display());
        return Ok(None);
    }
    Ok(Some(runs))
}

/// The median (the lower middle of an even count).
fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[(values.len() - 1) / 2]
}

/// Which figure of a [`Point`] a series shows.
type Figure = fn(&Point) -> f64;

/// The medians of a group of runs of one point.
#[derive(Debug, Clone)]
struct Point {
    committed_per_s: f64,
    ceiling_per_s: f64,
    ratio: f64,
    ratios: Vec<f64>,
    latency: [f64; 4],
    ceiling_p99: f64,
    failed: u64,
    /// Lowest and highest committed/s of the runs.
    committed_range: (f64, f64),
    /// Lowest and highest p99 of the runs.
    p99_range: (f64, f64),
}

/// The lowest and highest of `values`.
fn range(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    values
        .into_iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), v| {
            (low.min(v), high.max(v))
        })
}

impl Point {
    fn of(runs: &[Run]) -> Point {
        Point {
            committed_per_s: median(runs.iter().map(|r| r.committed_per_s)),
            ceiling_per_s: median(runs.iter().map(|r| r.ceiling_per_s)),
            ratio: median(runs.iter().map(|r| r.ratio)),
            ratios: runs.iter().map(|r| r.ratio).collect(),
            latency: [0, 1, 2, 3].map(|i| median(runs.iter().map(|r| r.latency[i]))),
            ceiling_p99: median(runs.iter().map(|r| r.ceiling_p99)),
            failed: runs.iter().map(|r| r.failed).sum(),
            committed_range: range(runs.iter().map(|r| r.committed_per_s)),
            p99_range: range(runs.iter().map(|r| r.latency[2])),
        }
    }
}

fn runs_list(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Registers the embedded font under the names plotters asks for.
fn register_fonts() -> Result<()> {
    for name in ["sans-serif", "serif", "monospace"] {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            plotters::style::register_font(name, style, dejavu::sans::regular())
                .map_err(|_| anyhow!("the embedded DejaVu Sans is not a valid font"))?;
        }
    }
    Ok(())
}

fn plot_error<E: std::fmt::Debug>(error: E) -> anyhow::Error {
    anyhow!("drawing: {error:?}")
}

/// Writes every plot it has results for into `out` and the medians to stdout
/// and `out/summary.md`.
pub fn plots(results: &Path, out: &Path) -> Result<()> {
    register_fonts()?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {out:?}"))?;
    let mut summary = String::from(
        "<!-- written by `cargo run -p xtask -- plots`: medians of the runs in bench/results -->\n",
    );
    if let Some(runs) = load(results, "clients.json")? {
        clients(&runs, &out.join("clients.png"), &mut summary)?;
    }
    if let Some(runs) = load(results, "latency.json")? {
        latency(&runs, &out.join("latency.png"), &mut summary)?;
    }
    if let Some(runs) = load(results, "workers.json")? {
        workers(&runs, &out.join("workers.png"), &mut summary)?;
    }
    if let Some(runs) = load(results, "etcd3.json")? {
        etcd(&runs, &out.join("etcd3.png"), &mut summary)?;
    }
    if let Some(samples) = load_memory(results, "memory-10m.tsv")? {
        memory(&samples, &out.join("memory.png"))?;
    }
    if let Some(runs) = load(results, "single.json")? {
        every_workload(&runs, "Single node", &mut summary);
    }
    if let Some(runs) = load(results, "cluster3.json")? {
        every_workload(&runs, "3-node cluster, at the leader", &mut summary);
    }
    print!("{summary}");
    let path = out.join("summary.md");
    std::fs::write(&path, &summary).with_context(|| format!("writing {path:?}"))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Throughput of log writes and of the ceiling vs clients (log2 axis).
fn clients(runs: &[Run], path: &Path, summary: &mut String) -> Result<()> {
    let mut groups: BTreeMap<u64, Vec<Run>> = BTreeMap::new();
    for run in runs {
        groups.entry(run.clients).or_default().push(run.clone());
    }
    let points: Vec<(u64, Point)> = groups.iter().map(|(c, g)| (*c, Point::of(g))).collect();
    let workload = runs[0].workload.clone();
    let _ = writeln!(
        summary,
        "\n### Single node, {workload} writes vs clients (closed loop)\n\n\
         | clients | committed tx/s | ceiling req/s | ratio (runs) | p50 ms | p99 ms | failed |\n|---|---|---|---|---|---|---|"
    );
    for (clients, p) in &points {
        let _ = writeln!(
            summary,
            "| {clients} | {:.0} | {:.0} | {:.2} ({}) | {:.2} | {:.2} | {} |",
            p.committed_per_s,
            p.ceiling_per_s,
            p.ratio,
            runs_list(&p.ratios),
            p.latency[0],
            p.latency[2],
            p.failed
        );
    }
    // x is log2(clients) on a linear axis, labelled with the counts.
    let x_max = (points.last().map_or(2, |(c, _)| *c).max(2) as f64).log2();
    let y_max = points
        .iter()
        .map(|(_, p)| p.committed_per_s.max(p.ceiling_per_s))
        .fold(1.0, f64::max)
        * 1.15;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Single node: {workload} writes vs the HTTPS ceiling (median of runs)"),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(-0.2..x_max + 0.2, 0.0..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("concurrent clients (keep-alive connections), log scale")
        .y_desc("per second")
        .x_labels(x_max as usize + 1)
        .light_line_style(RGBColor(238, 238, 238))
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 && *x >= 0.0 {
                format!("{:.0}", 2f64.powf(x.round()))
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(plot_error)?;
    let series: [(&str, Figure); 2] = [
        ("committed tx/s (fdatasync'd)", |p| p.committed_per_s),
        ("ceiling: GET /node/commit req/s", |p| p.ceiling_per_s),
    ];
    let lines = series.map(|(name, value)| {
        let data = points
            .iter()
            .map(|(c, p)| ((*c as f64).log2(), value(p)))
            .collect();
        (name, data)
    });
    draw_lines(&mut chart, lines)?;
    finish(&root, path)
}

/// Latency percentiles vs offered load (open loop), log latency axis.
fn latency(runs: &[Run], path: &Path, summary: &mut String) -> Result<()> {
    let mut groups: BTreeMap<u64, Vec<Run>> = BTreeMap::new();
    for run in runs {
        let rate = run.rate.context("a latency run without --rate")?;
        groups
            .entry(rate.round() as u64)
            .or_default()
            .push(run.clone());
    }
    let points: Vec<(u64, Point)> = groups.iter().map(|(r, g)| (*r, Point::of(g))).collect();
    let workload = runs[0].workload.clone();
    let clients = runs[0].clients;
    let _ = writeln!(
        summary,
        "\n### Single node, {workload} writes: latency vs offered load (open loop, {clients} clients)\n\n\
         | offered tx/s | committed tx/s | p50 ms | p90 ms | p99 ms | p99.9 ms | ceiling p99 ms | failed |\n|---|---|---|---|---|---|---|---|"
    );
    for (rate, p) in &points {
        let _ = writeln!(
            summary,
            "| {rate} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            p.committed_per_s,
            p.latency[0],
            p.latency[1],
            p.latency[2],
            p.latency[3],
            p.ceiling_p99,
            p.failed
        );
    }
    let x_max = points.last().map_or(1, |(r, _)| *r) as f64 * 1.05;
    let y_min = points
        .iter()
        .map(|(_, p)| p.latency[0])
        .fold(f64::INFINITY, f64::min)
        .max(0.01)
        * 0.7;
    let y_max = points
        .iter()
        .map(|(_, p)| p.latency[3])
        .fold(y_min * 2.0, f64::max)
        * 1.5;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Single node: {workload} commit latency vs offered load (open loop)"),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(0.0..x_max, (y_min..y_max).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("offered load, requests/s (scheduled, latency from the scheduled start)")
        .y_desc("latency, ms (log scale)")
        .y_labels(20)
        .light_line_style(RGBColor(238, 238, 238))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()
        .map_err(plot_error)?;
    let lines = ["p50", "p90", "p99", "p99.9"]
        .into_iter()
        .enumerate()
        .map(|(index, name)| {
            let data = points
                .iter()
                .map(|(r, p)| (*r as f64, p.latency[index].max(y_min)))
                .collect();
            (name, data)
        });
    draw_lines(&mut chart, lines)?;
    finish(&root, path)
}

/// One line with dots per series, in `COLOURS` order, labelled, and the legend.
fn draw_lines<'a, Y, N>(
    chart: &mut ChartContext<
        'a,
        BitMapBackend<'a>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, Y>,
    >,
    lines: impl IntoIterator<Item = (N, Vec<(f64, f64)>)>,
) -> Result<()>
where
    Y: Ranged<ValueType = f64>,
    N: Into<String>,
{
    for (index, (name, data)) in lines.into_iter().enumerate() {
        let colour = COLOURS[index];
        chart
            .draw_series(LineSeries::new(data.clone(), colour.stroke_width(2)))
            .map_err(plot_error)?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart
            .draw_series(
                data.into_iter()
                    .map(|xy| Circle::new(xy, 4, colour.filled())),
            )
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// Writes the picture.
fn finish(
    root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    path: &Path,
) -> Result<()> {
    root.present().map_err(plot_error)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// SmallBank through the service with 1 and 2 frontend workers.
fn workers(runs: &[Run], path: &Path, summary: &mut String) -> Result<()> {
    let mut groups: BTreeMap<(u64, String), Vec<Run>> = BTreeMap::new();
    for run in runs {
        let label = run.label.clone().unwrap_or_else(|| "?".to_owned());
        groups
            .entry((run.accounts.unwrap_or(0), label))
            .or_default()
            .push(run.clone());
    }
    let _ = writeln!(
        summary,
        "\n### SmallBank through the service (single node, {} clients): frontend workers\n\n\
         | accounts | workers | committed tx/s | ceiling req/s | ratio to ceiling | p99 ms | failed |\n|---|---|---|---|---|---|---|",
        runs[0].clients
    );
    let mut bars = Vec::new();
    let mut ordered: Vec<_> = groups.iter().collect();
    ordered.sort_by_key(|((accounts, label), _)| (std::cmp::Reverse(*accounts), label.clone()));
    for ((accounts, label), group) in ordered {
        let p = Point::of(group);
        let _ = writeln!(
            summary,
            "| {accounts} | {} | {:.0} | {:.0} | {:.2} ({}) | {:.2} | {} |",
            label.trim_start_matches("workers="),
            p.committed_per_s,
            p.ceiling_per_s,
            p.ratio,
            runs_list(&p.ratios),
            p.latency[2],
            p.failed
        );
        bars.push(Bar {
            name: format!("{label}, {accounts} accounts"),
            value: p.committed_per_s,
            text: format!("{:.0}", p.committed_per_s),
            range: p.committed_range,
        });
    }
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    bar_chart(
        &root,
        "SmallBank through HTTPS: 1 vs 2 frontend workers",
        "committed tx/s (bar: median; line: lowest to highest run)",
        &bars,
    )?;
    finish(&root, path)
}

/// Stele vs etcd: throughput and p99 side by side.
fn etcd(runs: &[Run], path: &Path, summary: &mut String) -> Result<()> {
    let stele: Vec<Run> = runs
        .iter()
        .filter(|r| r.label.as_deref() == Some("stele"))
        .cloned()
        .collect();
    let etcd: Vec<Run> = runs
        .iter()
        .filter(|r| r.label.as_deref() == Some("etcd"))
        .cloned()
        .collect();
    if stele.is_empty() || etcd.is_empty() {
        eprintln!("skipping the etcd plot: runs labelled stele and etcd are both needed");
        return Ok(());
    }
    let (s, e) = (Point::of(&stele), Point::of(&etcd));
    // Per-run ratios (runs alternate, so run i of each shared the machine's state).
    let pairs = stele.len().min(etcd.len());
    let throughput: Vec<f64> = (0..pairs)
        .map(|i| stele[i].committed_per_s / etcd[i].committed_per_s)
        .collect();
    let p99: Vec<f64> = (0..pairs)
        .map(|i| stele[i].latency[2] / etcd[i].latency[2])
        .collect();
    let _ = writeln!(
        summary,
        "\n### 3-node Stele ({}) vs 3-node etcd (put through its JSON gateway), {} clients\n\n\
         | | committed/s | p50 ms | p99 ms | ceiling req/s | ratio to own ceiling |\n|---|---|---|---|---|---|\n\
         | Stele {} | {:.0} | {:.2} | {:.2} | {:.0} (GET /node/commit) | {:.2} |\n\
         | etcd put | {:.0} | {:.2} | {:.2} | {:.0} (serializable range) | {:.2} |\n\n\
         Stele / etcd throughput: **{:.2}x** (runs {}); p99 Stele / etcd: {:.2}x (runs {}).",
        stele[0].workload,
        stele[0].clients,
        stele[0].workload,
        s.committed_per_s,
        s.latency[0],
        s.latency[2],
        s.ceiling_per_s,
        s.ratio,
        e.committed_per_s,
        e.latency[0],
        e.latency[2],
        e.ceiling_per_s,
        e.ratio,
        median(throughput.iter().copied()),
        runs_list(&throughput),
        median(p99.iter().copied()),
        runs_list(&p99),
    );
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    bar_chart(
        &left,
        "3 nodes: committed writes/s",
        "per second (bar: median; line: lowest to highest run)",
        &[
            Bar {
                name: format!("Stele {}", stele[0].workload),
                value: s.committed_per_s,
                text: format!("{:.0}", s.committed_per_s),
                range: s.committed_range,
            },
            Bar {
                name: "etcd put (JSON gateway)".to_owned(),
                value: e.committed_per_s,
                text: format!("{:.0}", e.committed_per_s),
                range: e.committed_range,
            },
        ],
    )?;
    bar_chart(
        &right,
        "p99 commit latency",
        "ms (bar: median; line: lowest to highest run)",
        &[
            Bar {
                name: format!("Stele {}", stele[0].workload),
                value: s.latency[2],
                text: format!("{:.1} ms", s.latency[2]),
                range: s.p99_range,
            },
            Bar {
                name: "etcd put (JSON gateway)".to_owned(),
                value: e.latency[2],
                text: format!("{:.1} ms", e.latency[2]),
                range: e.p99_range,
            },
        ],
    )?;
    finish(&root, path)
}

/// The table of every workload on one setup (no plot).
fn every_workload(runs: &[Run], setup: &str, summary: &mut String) {
    let mut groups: BTreeMap<(String, u64), Vec<Run>> = BTreeMap::new();
    for run in runs {
        groups
            .entry((run.workload.clone(), run.accounts.unwrap_or(0)))
            .or_default()
            .push(run.clone());
    }
    let _ = writeln!(
        summary,
        "\n### {setup}, every workload ({} clients, closed loop)\n\n\
         | workload | committed/s | ceiling req/s | ratio to ceiling (runs) | p50 ms | p99 ms | failed |\n|---|---|---|---|---|---|---|",
        runs[0].clients
    );
    for ((workload, accounts), group) in &groups {
        let p = Point::of(group);
        let name = if *accounts > 0 {
            format!("{workload} ({accounts} accounts)")
        } else {
            workload.clone()
        };
        let _ = writeln!(
            summary,
            "| {name} | {:.0} | {:.0} | {:.2} ({}) | {:.2} | {:.2} | {} |",
            p.committed_per_s,
            p.ceiling_per_s,
            p.ratio,
            runs_list(&p.ratios),
            p.latency[0],
            p.latency[2],
            p.failed
        );
    }
    let runs = groups.values().map(Vec::len).max().unwrap_or(0);
    let _ = writeln!(summary, "\n({runs} runs per row.)");
}

/// RSS growth per committed transaction that the memory target allows, bytes.
const TARGET_BYTES_PER_TX: f64 = 16.0;

/// One row of a `bench/memory.sh` TSV: the committed sequence number and the
/// node's resident set, KiB.
#[derive(Debug, Clone, Copy)]
struct Sample {
    seqno: u64,
    rss_kib: u64,
}

impl Sample {
    /// Parses `seconds\tseqno\trss_kib`.
    fn parse(line: &str) -> Result<Sample> {
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        let [_, seqno, rss_kib] = fields[..] else {
            bail!("expected 3 tab-separated fields, found {}", fields.len());
        };
        Ok(Sample {
            seqno: seqno.parse().with_context(|| format!("seqno {seqno:?}"))?,
            rss_kib: rss_kib
                .parse()
                .with_context(|| format!("rss_kib {rss_kib:?}"))?,
        })
    }

    /// Committed transactions, millions.
    fn millions(&self) -> f64 {
        self.seqno as f64 / 1e6
    }

    fn rss_bytes(&self) -> f64 {
        self.rss_kib as f64 * 1024.0
    }
}

/// The samples of `dir/name` (a `bench/memory.sh` TSV, after its header
/// line) whose seqno increases: the rows after the load finished repeat the
/// last seqno. `None` if the file is absent or has fewer than two.
fn load_memory(dir: &Path, name: &str) -> Result<Option<Vec<Sample>>> {
    let path = dir.join(name);
    if !path.exists() {
        eprintln!("skipping {}: absent", path.display());
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path:?}"))?;
    let mut samples: Vec<Sample> = Vec::new();
    for (index, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let sample =
            Sample::parse(line).with_context(|| format!("{path:?}, line {}", index + 1))?;
        if samples.last().is_none_or(|last| sample.seqno > last.seqno) {
            samples.push(sample);
        }
    }
    if samples.len() < 2 {
        eprintln!("skipping {}: fewer than two samples", path.display());
        return Ok(None);
    }
    Ok(Some(samples))
}

/// The least-squares slope of RSS bytes over committed transactions
/// (at least two samples of distinct seqno).
fn bytes_per_tx(samples: &[Sample]) -> f64 {
    let n = samples.len() as f64;
    let x_mean = samples.iter().map(|s| s.seqno as f64).sum::<f64>() / n;
    let y_mean = samples.iter().map(Sample::rss_bytes).sum::<f64>() / n;
    let (covariance, variance) = samples.iter().fold((0.0, 0.0), |(c, v), s| {
        let dx = s.seqno as f64 - x_mean;
        (c + dx * (s.rss_bytes() - y_mean), v + dx * dx)
    });
    covariance / variance
}

/// RSS (MiB) vs committed transactions (millions), labelled with its
/// least-squares slope, and the target slope dashed from the first sample.
fn memory(samples: &[Sample], path: &Path) -> Result<()> {
    const MIB: f64 = 1024.0 * 1024.0;
    let slope = bytes_per_tx(samples);
    eprintln!(
        "memory: least squares {slope:.1} B/tx over {} samples",
        samples.len()
    );
    let measured: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| (s.millions(), s.rss_bytes() / MIB))
        .collect();
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let target = [first, last].map(|s| {
        let growth = TARGET_BYTES_PER_TX * (s.seqno - first.seqno) as f64;
        (s.millions(), (first.rss_bytes() + growth) / MIB)
    });
    let y_max = measured
        .iter()
        .chain(&target)
        .map(|(_, y)| *y)
        .fold(1.0, f64::max)
        * 1.15;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Memory at constant state: RSS vs committed transactions (bench/memory.sh)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(0.0..last.millions() * 1.05, 0.0..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("committed transactions (millions)")
        .y_desc("RSS (MiB)")
        .light_line_style(RGBColor(238, 238, 238))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(plot_error)?;
    let grey = RGBColor(110, 110, 110).stroke_width(2);
    chart
        .draw_series(DashedLineSeries::new(target, 10, 6, grey))
        .map_err(plot_error)?
        .label(format!("{TARGET_BYTES_PER_TX:.0} B/tx target"))
        .legend(move |(x, y)| {
            plotters::element::DashedPathElement::new([(x, y), (x + 20, y)], 6, 3, grey)
        });
    let name = format!("RSS (least squares {slope:.1} B/tx)");
    draw_lines(&mut chart, [(name, measured)])?;
    finish(&root, path)
}

/// One bar: its name under it, its height (the median), the text above it,
/// and the lowest and highest of the runs (drawn as a whisker).
struct Bar {
    name: String,
    value: f64,
    text: String,
    range: (f64, f64),
}

/// Bars with their value written above and the runs' spread as a whisker,
/// on `area`.
fn bar_chart(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    bars: &[Bar],
) -> Result<()> {
    let y_max = bars
        .iter()
        .map(|b| b.value.max(b.range.1))
        .fold(1e-9, f64::max)
        * 1.2;
    let count = bars.len() as u32;
    let names: Vec<String> = bars.iter().map(|b| b.name.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(75)
        // A segmented 0..n has n + 1 segments: n - 1 gives one per bar.
        .build_cartesian_2d(
            (0u32..count.saturating_sub(1).max(1)).into_segmented(),
            0.0..y_max,
        )
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(y_desc)
        .x_labels(bars.len())
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, bar)| {
            let (i, value) = (i as u32, &bar.value);
            let colour = COLOURS[i as usize % COLOURS.len()];
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *value),
                ],
                colour.filled(),
            );
            bar.set_margin(0, 0, 20, 20);
            bar
        }))
        .map_err(plot_error)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, bar)| {
            let centre = SegmentValue::CenterOf(i as u32);
            PathElement::new(
                [(centre.clone(), bar.range.0), (centre, bar.range.1)],
                BLACK.stroke_width(2),
            )
        }))
        .map_err(plot_error)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, bar)| {
            Text::new(
                bar.text.clone(),
                (
                    SegmentValue::CenterOf(i as u32),
                    bar.value.max(bar.range.1) + y_max * 0.01,
                ),
                TextStyle::from(("sans-serif", 16).into_font())
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))
        .map_err(plot_error)?;
    Ok(())
}
