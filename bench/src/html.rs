//! `report.html`: one self-contained page (inline SVG drawn by plotters)
//! with the table, the latency percentile curves on a log percentile axis
//! (as HdrHistogram plots them) and throughput over time, one line per
//! broker.

use plotters::coord::CoordTranslate;
use plotters::prelude::*;

use crate::histogram::Latency;
use crate::report::{Output, table};

const SIZE: (u32, u32) = (900, 420);

/// `x = 1 / (1 - q)`: 1 is p0, 10 p90, 100 p99, 1000 p99.9.
fn spread(percentile: f64) -> f64 {
    1.0 / (1.0 - percentile / 100.0).max(1e-9)
}

fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    let text = format!("{p:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// A latency percentile chart: one curve per (name, points).
fn percentile_chart(title: &str, curves: &[(String, Vec<(f64, u64)>)]) -> anyhow::Result<String> {
    let points: Vec<(f64, f64)> = curves
        .iter()
        .flat_map(|(_, c)| {
            c.iter()
                .map(|&(p, us)| (spread(p), us.max(1) as f64 / 1000.0))
        })
        .collect();
    let max_x = points.iter().map(|p| p.0).fold(10.0, f64::max);
    let max_y = points.iter().map(|p| p.1).fold(0.01, f64::max) * 1.5;
    let min_y = points
        .iter()
        .map(|p| p.1)
        .fold(f64::MAX, f64::min)
        .min(max_y)
        / 1.5;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((1f64..max_x).log_scale(), (min_y..max_y).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("percentile")
            .y_desc("latency (ms)")
            .x_label_formatter(&|x| percentile_label(*x))
            .draw()?;
        let lines: Vec<(&str, Vec<(f64, f64)>)> = curves
            .iter()
            .map(|(name, curve)| {
                let points = curve
                    .iter()
                    .map(|&(p, us)| (spread(p), us.max(1) as f64 / 1000.0))
                    .collect();
                (name.as_str(), points)
            })
            .collect();
        draw_lines(&mut chart, &lines, SeriesLabelPosition::UpperLeft)?;
        root.present()?;
    }
    Ok(svg)
}

/// Messages per second over the run: one line per (name, series).
fn throughput_chart(title: &str, lines: &[(String, Vec<u64>)]) -> anyhow::Result<String> {
    let max_x = lines.iter().map(|l| l.1.len()).max().unwrap_or(0).max(2) as f64;
    let max_y = lines
        .iter()
        .flat_map(|l| l.1.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..max_x, 0f64..max_y)?;
        chart
            .configure_mesh()
            .x_desc("seconds since start")
            .y_desc("messages/s")
            .draw()?;
        let lines: Vec<(&str, Vec<(f64, f64)>)> = lines
            .iter()
            .map(|(name, series)| {
                let points = series
                    .iter()
                    .enumerate()
                    .map(|(s, &v)| (s as f64, v as f64))
                    .collect();
                (name.as_str(), points)
            })
            .collect();
        draw_lines(&mut chart, &lines, SeriesLabelPosition::LowerRight)?;
        root.present()?;
    }
    Ok(svg)
}

/// One 2 px line per (name, points), in palette order, and the legend.
fn draw_lines<'a, CT>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    lines: &[(&str, Vec<(f64, f64)>)],
    legend: SeriesLabelPosition,
) -> anyhow::Result<()>
where
    CT: CoordTranslate<From = (f64, f64)>,
{
    for (i, (name, points)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The whole page.
pub fn render(output: &Output) -> anyhow::Result<String> {
    let curves = |e2e: bool| -> Vec<(String, Vec<(f64, u64)>)> {
        output
            .runs
            .iter()
            .map(|r| {
                let h = if e2e {
                    &r.end_to_end_latency
                } else {
                    &r.publish_latency
                };
                (r.broker.clone(), Latency::from_report(h).curve())
            })
            .filter(|(_, c)| !c.is_empty())
            .collect()
    };
    let mut charts = Vec::new();
    for (title, e2e) in [
        ("Publish latency (send to acknowledgement)", false),
        ("End-to-end latency (send to consumption)", true),
    ] {
        let curves = curves(e2e);
        if !curves.is_empty() {
            charts.push(percentile_chart(title, &curves)?);
        }
    }
    let mut lines = Vec::new();
    for r in &output.runs {
        let produced = r.seconds.iter().map(|s| s.produced).collect();
        lines.push((format!("{} produced", r.broker), produced));
        if r.consume.messages > 0 {
            let consumed = r.seconds.iter().map(|s| s.consumed).collect();
            lines.push((format!("{} consumed", r.broker), consumed));
        }
    }
    charts.push(throughput_chart("Throughput per second", &lines)?);
    let workload = toml::to_string(&output.workload).unwrap_or_default();
    let machine = &output.machine;
    let runs: Vec<RunRow> = output.runs.iter().map(RunRow::of).collect();
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <title>shardlog bench: {name}</title>\
         <style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}\
         pre{{background:#f6f6f6;padding:1em;overflow-x:auto}}</style></head><body>\n\
         <h1>shardlog bench: {name}</h1>\n\
         <p>{tool} {version}, librdkafka {librdkafka}, on {host}: {cpus} CPUs ({cpu}), \
         {mem:.1} GiB, Linux {kernel}; started at Unix time {started}.</p>\n\
         <h2>Results</h2>\n<pre>{table}</pre>\n",
        name = escape(&output.workload.name),
        tool = escape(&output.tool),
        version = escape(&output.version),
        librdkafka = escape(&output.librdkafka),
        host = escape(&machine.hostname),
        cpus = machine.cpus,
        cpu = escape(&machine.cpu_model),
        mem = machine.memory_bytes as f64 / (1u64 << 30) as f64,
        kernel = escape(&machine.kernel),
        started = output.started_unix,
        table = escape(&table(&output.runs)),
    );
    for chart in charts {
        page.push_str(&chart);
        page.push('\n');
    }
    page.push_str("<h2>Runs</h2>\n<pre>");
    for row in runs {
        page.push_str(&escape(&row.0));
    }
    page.push_str(&format!(
        "</pre>\n<h2>Workload</h2>\n<pre>{}</pre>\n</body></html>\n",
        escape(&workload)
    ));
    Ok(page)
}

/// A run's counts, one line.
struct RunRow(String);

impl RunRow {
    fn of(r: &crate::report::RunResult) -> RunRow {
        RunRow(format!(
            "{} ({}, driver {}, seed {}): sent {}, acked {}, errors {}, retries {}; \
             read {}, unique {}, duplicates {}, missing {}\n",
            r.broker,
            r.bootstrap,
            r.driver,
            r.seed,
            r.produce.sent,
            r.produce.acked,
            r.produce.errors,
            r.produce.retries,
            r.consume.messages,
            r.consume.unique,
            r.consume.duplicates,
            r.consume.missing,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_read_as_percentiles() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert!((spread(99.0) - 100.0).abs() < 1e-6);
    }

    #[test]
    fn charts_are_svg_with_a_line_per_broker() {
        let mut h = Latency::new();
        for us in 1..=10_000 {
            h.record(std::time::Duration::from_micros(us));
        }
        let svg = percentile_chart(
            "publish",
            &[("a".into(), h.curve()), ("b".into(), h.curve())],
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        // Series are 2 px wide; axes, ticks and legend marks 1 px.
        assert_eq!(svg.matches("stroke-width=\"2\"").count(), 2, "{svg}");
        assert!(svg.contains("99%"), "{svg}");
        let svg = throughput_chart("t", &[("a".into(), vec![1, 5, 3])]).unwrap();
        assert_eq!(svg.matches("stroke-width=\"2\"").count(), 1, "{svg}");
    }
}
