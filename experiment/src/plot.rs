//! `plot.png`: one panel per metric; bars with error bars (± std) and each seed as a dot, or,
//! with an x-axis, the metric against x with one line per group.

use crate::report::Report;
use anyhow::Result;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

const PANEL: (u32, u32) = (460, 340);

fn to_anyhow<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plotting failed: {e:?}")
}

pub fn plot(report: &Report) -> Result<Vec<u8>> {
    ganfold_core::viz::register_font();
    let m = report.metrics.len().max(1);
    let cols = m.min(3);
    let rows = m.div_ceil(cols);
    let (w, h) = (PANEL.0 * cols as u32, PANEL.1 * rows as u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(to_anyhow)?;
        let panels = root.split_evenly((rows, cols));
        for (j, area) in panels.iter().enumerate().take(report.metrics.len()) {
            if report.x_axis.is_some() {
                curve_panel(report, j, area)?;
            } else {
                bar_panel(report, j, area)?;
            }
        }
        root.present().map_err(to_anyhow)?;
    }
    ganfold_core::viz::encode_png(w, h, 3, &buf)
}

/// (lowest, highest) of means ± std and of every seed's value, padded.
fn y_range(points: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in points.filter(|v| v.is_finite()) {
        (lo, hi) = (lo.min(v), hi.max(v));
    }
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs().max(1e-9) * 0.02);
    (lo - pad, hi + pad)
}

fn title(report: &Report, j: usize) -> String {
    let m = &report.metrics[j];
    let arrow = match m.better {
        Some(crate::spec::Better::Lower) => " (lower is better)",
        Some(crate::spec::Better::Higher) => " (higher is better)",
        None => "",
    };
    format!("{}{arrow}", m.label)
}

fn seed_values(report: &Report, arm: usize, j: usize) -> Vec<f64> {
    crate::report::defined_values(&report.arms[arm].runs, j)
}

/// Every value a panel draws for metric `j`: each seed's, and each arm's mean ± std.
fn drawn_values(report: &Report, j: usize) -> impl Iterator<Item = f64> + '_ {
    report.arms.iter().enumerate().flat_map(move |(i, a)| {
        let s = &a.stats[j];
        let mut v = seed_values(report, i, j);
        if s.n > 0 {
            v.extend([s.mean - s.std, s.mean + s.std]);
        }
        v
    })
}

fn bar_panel(report: &Report, j: usize, area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()> {
    let n = report.arms.len();
    let all = drawn_values(report, j);
    let refv = report.reference.as_ref().map(|r| r[j]).filter(|v| v.is_finite());
    let (mut y0, y1) = y_range(all.chain(refv));
    // Bars start at zero when zero is near the data.
    if y0 > 0.0 && y0 < 0.5 * y1 {
        y0 = 0.0;
    }
    let labels: Vec<String> = report.arms.iter().map(|a| a.label.chars().take(18).collect()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(title(report, j), ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), y0..y1)
        .map_err(to_anyhow)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.max(1))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(to_anyhow)?;
    if let Some(v) = refv {
        let grey = RGBColor(120, 120, 120).stroke_width(2);
        chart
            .draw_series([PathElement::new(vec![(-0.5, v), (n as f64 - 0.5, v)], grey)])
            .map_err(to_anyhow)?
            .label("real data")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], grey));
        legend(&mut chart)?;
    }
    for (i, a) in report.arms.iter().enumerate() {
        let s = &a.stats[j];
        let c = Palette99::pick(i).to_rgba();
        let x = i as f64;
        if s.n > 0 {
            let base = y0.max(0.0).min(s.mean);
            chart
                .draw_series([Rectangle::new([(x - 0.3, base), (x + 0.3, s.mean)], c.mix(0.45).filled())])
                .map_err(to_anyhow)?;
            let (lo, hi) = (s.mean - s.std, s.mean + s.std);
            let bar = BLACK.stroke_width(2);
            chart
                .draw_series([
                    PathElement::new(vec![(x, lo), (x, hi)], bar),
                    PathElement::new(vec![(x - 0.1, lo), (x + 0.1, lo)], bar),
                    PathElement::new(vec![(x - 0.1, hi), (x + 0.1, hi)], bar),
                ])
                .map_err(to_anyhow)?;
        }
        let seeds = seed_values(report, i, j);
        let k = seeds.len().max(1) as f64;
        chart
            .draw_series(
                seeds
                    .iter()
                    .enumerate()
                    .map(|(t, &v)| Circle::new((x - 0.15 + 0.3 * (t as f64 + 0.5) / k, v), 3, c.filled())),
            )
            .map_err(to_anyhow)?;
    }
    Ok(())
}

fn curve_panel(report: &Report, j: usize, area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()> {
    let ax = report.x_axis.as_ref().expect("curve panels need an x-axis");
    let tx = |x: f64| if ax.log { x.log10() } else { x };
    let xs: Vec<f64> = report.arms.iter().filter_map(|a| a.x).map(tx).collect();
    let (mut x0, mut x1) =
        (xs.iter().copied().fold(f64::INFINITY, f64::min), xs.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    if x0 >= x1 {
        (x0, x1) = (x0 - 1.0, x1 + 1.0);
    }
    let pad = (x1 - x0) * 0.06;
    let all = drawn_values(report, j);
    let (y0, y1) = y_range(all);
    let mut chart = ChartBuilder::on(area)
        .caption(title(report, j), ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 - pad)..(x1 + pad), y0..y1)
        .map_err(to_anyhow)?;
    let log = ax.log;
    chart
        .configure_mesh()
        .x_desc(ax.label.as_str())
        .x_label_formatter(&|x| if log { tick(10f64.powf(*x)) } else { format!("{x}") })
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(to_anyhow)?;
    let mut groups: Vec<&str> = vec![];
    for a in &report.arms {
        if !groups.contains(&a.group.as_str()) {
            groups.push(&a.group);
        }
    }
    for (g, name) in groups.iter().enumerate() {
        let c = Palette99::pick(g).to_rgba();
        let mut pts: Vec<(f64, f64, f64)> = report
            .arms
            .iter()
            .filter(|a| a.group == *name && a.stats[j].n > 0)
            .filter_map(|a| Some((tx(a.x?), a.stats[j].mean, a.stats[j].std)))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), c.stroke_width(2)))
            .map_err(to_anyhow)?
            .label(name.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        let w = (x1 - x0 + 2.0 * pad) * 0.01;
        for &(x, m, s) in &pts {
            chart
                .draw_series([
                    PathElement::new(vec![(x, m - s), (x, m + s)], c.stroke_width(1)),
                    PathElement::new(vec![(x - w, m - s), (x + w, m - s)], c.stroke_width(1)),
                    PathElement::new(vec![(x - w, m + s), (x + w, m + s)], c.stroke_width(1)),
                ])
                .map_err(to_anyhow)?;
            chart.draw_series([Circle::new((x, m), 3, c.filled())]).map_err(to_anyhow)?;
        }
    }
    // Measured positions on the x-axis (e.g. an intrinsic dimension), as dashed vertical lines.
    for (t, key) in ax.marks.iter().enumerate() {
        let Some(jm) = report.metrics.iter().position(|m| &m.key == key) else { continue };
        let (sum, n) = report
            .arms
            .iter()
            .map(|a| &a.stats[jm])
            .filter(|s| s.n > 0 && s.mean.is_finite())
            .fold((0.0, 0usize), |(s, n), st| (s + st.mean * st.n as f64, n + st.n));
        if n == 0 || (ax.log && sum <= 0.0) {
            continue;
        }
        let x = tx(sum / n as f64);
        let c = BLACK.mix(0.7 - 0.25 * (t % 2) as f64);
        let label = format!("{} = {:.2}", report.metrics[jm].label, sum / n as f64);
        chart
            .draw_series(DashedLineSeries::new([(x, y0), (x, y1)], 6, 4, c.stroke_width(1)))
            .map_err(to_anyhow)?
            .label(label)
            .legend(move |(lx, ly)| PathElement::new(vec![(lx, ly), (lx + 18, ly)], c.stroke_width(1)));
    }
    legend(&mut chart)
}

/// A log-axis tick at two significant digits (1.6, 2.5, 40, 100), not plotters' 1.585.
fn tick(v: f64) -> String {
    let digits = (1 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.digits$}")
}

type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The legend of the labelled series, framed, in the corner plotters picks.
fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .draw()
        .map_err(to_anyhow)
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_ticks_have_two_significant_digits() {
        let ticks: Vec<String> = [1.585, 2.512, 10.0, 63.096, 100.0, 0.03162].map(super::tick).into();
        assert_eq!(ticks, ["1.6", "2.5", "10", "63", "100", "0.032"]);
    }
}
