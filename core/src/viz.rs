//! Pictures: image grids, 2-D scatter plots and loss curves, as PNG bytes.
//!
//! Plotters draws into an RGB buffer with the bundled DejaVu font (no system fonts, no
//! fontconfig); the `png` crate encodes it. Everything returns bytes so the trainer can write
//! them atomically and notebooks can show them inline.

use anyhow::{Context, bail};
use candle_core::{DType, Tensor};
use plotters::prelude::*;
use std::sync::Once;

/// Encodes an 8-bit RGB or grayscale buffer as PNG.
pub fn encode_png(width: u32, height: u32, channels: u8, pixels: &[u8]) -> anyhow::Result<Vec<u8>> {
    let color = match channels {
        1 => png::ColorType::Grayscale,
        3 => png::ColorType::Rgb,
        c => bail!("cannot encode {c}-channel images as PNG"),
    };
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header()?;
        w.write_image_data(pixels)?;
    }
    Ok(out)
}

/// A grid of images (N, C, H, W) with values in [-1, 1] (1 or 3 channels), `cols` per row,
/// 2-pixel gutters, upscaled by `scale`.
pub fn image_grid(images: &Tensor, cols: usize, scale: usize) -> anyhow::Result<Vec<u8>> {
    let (n, c, h, w) = images.dims4().context("image_grid expects (N, C, H, W)")?;
    if c != 1 && c != 3 {
        bail!("image_grid: {c} channels (expected 1 or 3)");
    }
    let cols = cols.clamp(1, n.max(1));
    let rows = n.div_ceil(cols);
    let s = scale.max(1);
    let pad = 2;
    let (gw, gh) = (cols * (w * s + pad) + pad, rows * (h * s + pad) + pad);
    let data = images.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let mut px = vec![40u8; gw * gh * c];
    for i in 0..n {
        let (r0, c0) = (pad + (i / cols) * (h * s + pad), pad + (i % cols) * (w * s + pad));
        for ch in 0..c {
            for y in 0..h * s {
                for x in 0..w * s {
                    let v = data[((i * c + ch) * h + y / s) * w + x / s];
                    let v = ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
                    px[((r0 + y) * gw + c0 + x) * c + ch] = v;
                }
            }
        }
    }
    encode_png(gw as u32, gh as u32, c as u8, &px)
}

/// Registers the bundled DejaVu Sans as `sans-serif` for plotters (once per process).
pub fn register_font() {
    static FONT: Once = Once::new();
    FONT.call_once(|| {
        // The bundled DejaVu Sans; registration only fails on a malformed font file.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

fn to_anyhow<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plotting failed: {e:?}")
}

/// One named series of (x, y) points for [`line_plot`].
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// Line chart of several series (e.g. losses over steps).
pub fn line_plot(title: &str, x_label: &str, series: &[Series<'_>], size: (u32, u32)) -> anyhow::Result<Vec<u8>> {
    register_font();
    let (w, h) = size;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(to_anyhow)?;
        let pts = series.iter().flat_map(|s| s.points.iter()).filter(|p| p.0.is_finite() && p.1.is_finite());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in pts {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 - x0 < 1e-12 {
            x1 = x0 + 1.0;
        }
        let pad = ((y1 - y0) * 0.05).max(1e-6);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            .map_err(to_anyhow)?;
        chart.configure_mesh().x_desc(x_label).label_style(("sans-serif", 13)).draw().map_err(to_anyhow)?;
        for (i, s) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let pts: Vec<(f64, f64)> =
                s.points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(to_anyhow)?
                .label(s.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(to_anyhow)?;
        root.present().map_err(to_anyhow)?;
    }
    encode_png(w, h, 3, &buf)
}

/// One layer of a scatter plot: name, points, colour.
pub type Layer<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

/// Scatter of 2-D point sets, drawn in order.
pub fn scatter(title: &str, layers: &[Layer<'_>], size: (u32, u32)) -> anyhow::Result<Vec<u8>> {
    register_font();
    let (w, h) = size;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(to_anyhow)?;
        let m = layers
            .iter()
            .flat_map(|l| l.1.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .fold(1.0f64, |m, p| m.max(p.0.abs()).max(p.1.abs()))
            .min(1e6)
            * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(-m..m, -m..m)
            .map_err(to_anyhow)?;
        chart.configure_mesh().label_style(("sans-serif", 12)).draw().map_err(to_anyhow)?;
        for (name, pts, color) in layers {
            let color = *color;
            chart
                .draw_series(
                    pts.iter()
                        .filter(|p| p.0.is_finite() && p.1.is_finite())
                        .map(|&p| Circle::new(p, 2, color.filled())),
                )
                .map_err(to_anyhow)?
                .label(*name)
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(to_anyhow)?;
        root.present().map_err(to_anyhow)?;
    }
    encode_png(w, h, 3, &buf)
}

/// Rows of a (N, 2) tensor as points.
pub fn points(t: &Tensor) -> anyhow::Result<Vec<(f64, f64)>> {
    let v = t.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    Ok(v.iter().filter(|r| r.len() >= 2).map(|r| (r[0], r[1])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn is_png(b: &[u8]) -> bool {
        b.starts_with(&[0x89, b'P', b'N', b'G'])
    }

    #[test]
    fn renders_pngs() -> anyhow::Result<()> {
        let imgs = Tensor::zeros((5, 1, 4, 4), DType::F32, &Device::Cpu)?;
        let g = image_grid(&imgs, 3, 2)?;
        assert!(is_png(&g));
        let dec = png::Decoder::new(std::io::Cursor::new(g)).read_info()?;
        assert_eq!((dec.info().width, dec.info().height), (3 * 10 + 2, 2 * 10 + 2));
        let s = [Series { name: "d_loss", points: vec![(0.0, 1.0), (1.0, 0.5), (2.0, f64::NAN)] }];
        assert!(is_png(&line_plot("losses", "step", &s, (400, 300))?));
        assert!(is_png(&scatter("toy", &[("real", vec![(0.0, 1.0)], BLUE)], (300, 300))?));
        Ok(())
    }
}
