//! Training curves as SVG (plotters, SVG backend): loss, top-1, validation SAR and learning
//! rate per epoch.

use super::metrics::EpochMetrics;
use anyhow::{Context, Result};
use plotters::prelude::*;

/// A named, coloured line of `(epoch, value)` points.
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// One panel: a title and its series.
struct Panel<'a> {
    title: &'a str,
    series: Vec<Series<'a>>,
}

/// The SVG document for `history` (an empty history gives empty panels).
pub fn curves_svg(history: &[EpochMetrics]) -> Result<String> {
    let pts = |f: &dyn Fn(&EpochMetrics) -> f64| -> Vec<(f64, f64)> {
        history.iter().map(|m| (m.epoch as f64, f(m))).collect()
    };
    let panels = [
        Panel {
            title: "loss",
            series: vec![
                ("train", BLUE, pts(&|m| m.train_loss)),
                ("validation", RED, pts(&|m| m.val_loss)),
            ],
        },
        Panel {
            title: "top-1 accuracy (%)",
            series: vec![
                ("train", BLUE, pts(&|m| 100.0 * m.train_top1)),
                ("validation", RED, pts(&|m| 100.0 * m.val_top1)),
            ],
        },
        Panel {
            title: "validation spike activity rate",
            series: vec![("SAR", GREEN, pts(&|m| m.val_sar))],
        },
        Panel {
            title: "learning rate",
            series: vec![("lr", BLACK, pts(&|m| m.lr))],
        },
    ];
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1000, 700)).into_drawing_area();
        root.fill(&WHITE).context("filling the plot")?;
        let areas = root.split_evenly((2, 2));
        let last = history.last().map_or(1.0, |m| m.epoch as f64).max(1.0);
        for (area, panel) in areas.iter().zip(&panels) {
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for (_, _, s) in &panel.series {
                for &(_, v) in s {
                    if v.is_finite() {
                        lo = lo.min(v);
                        hi = hi.max(v);
                    }
                }
            }
            if !lo.is_finite() {
                (lo, hi) = (0.0, 1.0);
            }
            let pad = ((hi - lo) * 0.05).max(1e-9);
            let mut chart = ChartBuilder::on(area)
                .caption(panel.title, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(60)
                .build_cartesian_2d(1.0..last.max(1.0 + 1e-9), (lo - pad)..(hi + pad))
                .context("laying out a panel")?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .max_light_lines(2)
                .draw()
                .context("drawing the axes")?;
            for (name, color, s) in &panel.series {
                let color = *color;
                chart
                    .draw_series(LineSeries::new(s.iter().copied(), color.stroke_width(2)))
                    .context("drawing a series")?
                    .label(*name)
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .context("drawing the legend")?;
        }
        root.present().context("writing the SVG")?;
    }
    Ok(out)
}
