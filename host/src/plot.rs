//! One x-y chart as an SVG string (plotters' SVG backend): the frame every figure of the study
//! and the benchmark shares (white page, caption, axes with their descriptions, a boxed legend),
//! with the series left to the caller.
//!
//! ```
//! use lightsnn::plot::{plot_err, Chart};
//! use plotters::prelude::*;
//!
//! let svg = Chart {
//!     size: (400, 300),
//!     caption: "y = x^2".into(),
//!     x: 0.0..1.0,
//!     y: 0.0..1.0,
//!     x_desc: "x".into(),
//!     y_desc: "y".into(),
//!     legend: SeriesLabelPosition::UpperLeft,
//! }
//! .svg(|chart| {
//!     chart
//!         .draw_series(LineSeries::new((0..=10).map(|i| (i as f64 / 10.0, (i * i) as f64 / 100.0)), &BLACK))
//!         .map_err(plot_err)?
//!         .label("x^2")
//!         .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
//!     Ok(())
//! })
//! .unwrap();
//! assert!(svg.starts_with("<svg") && svg.contains("x^2"));
//! ```

use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::ops::Range;

/// The chart area the series are drawn on.
pub type ChartArea<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A plotters drawing error as an [`anyhow::Error`].
pub fn plot_err(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("{e:?}")
}

/// The frame of one chart.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Width and height in pixels.
    pub size: (u32, u32),
    /// The caption above the chart.
    pub caption: String,
    /// The x range.
    pub x: Range<f64>,
    /// The y range.
    pub y: Range<f64>,
    /// The x axis' description.
    pub x_desc: String,
    /// The y axis' description.
    pub y_desc: String,
    /// Where the legend of the labelled series goes.
    pub legend: SeriesLabelPosition,
}

impl Chart {
    /// The SVG of the chart with the series `draw` adds (labelled series enter the legend).
    pub fn svg(self, draw: impl FnOnce(&mut ChartArea<'_, '_>) -> Result<()>) -> Result<String> {
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, self.size).into_drawing_area();
            root.fill(&WHITE).map_err(plot_err)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(self.caption, ("sans-serif", 16))
                .margin(15)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(self.x, self.y)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .x_desc(&self.x_desc)
                .y_desc(&self.y_desc)
                .draw()
                .map_err(plot_err)?;
            draw(&mut chart)?;
            chart
                .configure_series_labels()
                .position(self.legend)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(plot_err)?;
            root.present().map_err(plot_err)?;
        }
        Ok(out)
    }
}
