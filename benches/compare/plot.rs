//! The SVG plot: CPU time per request against idle connections, a panel per message size and
//! active connection count.

use std::path::Path;

use crate::load::Measured;
use crate::plan::{Cell, Plan, Server};
use crate::report::{fmt_value, size_name, thousands};
use crate::stats::{summary, Runs};

pub fn plot(plan: &Plan, runs: &Runs, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;

    let panels: Vec<(usize, usize)> = plan
        .sizes
        .iter()
        .flat_map(|&s| plan.active.iter().map(move |&a| (s, a)))
        .collect();
    let cols = plan.active.len().max(1);
    let rows = plan.sizes.len().max(1);
    let width = (420 * cols as u32).max(640);
    let root = SVGBackend::new(path, (width, 340 * rows as u32 + 40)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (title, body) = root.split_vertically(40);
    title
        .titled(
            "Server CPU time per request against idle connections (median of the rounds)",
            ("sans-serif", 20),
        )
        .map_err(|e| e.to_string())?;
    let areas = body.split_evenly((rows, cols));
    let colours = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    let cpu = |m: &Measured| m.cpu_us;
    for ((size, active), area) in panels.into_iter().zip(areas.iter()) {
        let series: Vec<(Server, Vec<(usize, f64)>)> = plan
            .servers
            .iter()
            .map(|&s| {
                let points = plan
                    .idle
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &idle)| {
                        summary(runs, plan.rounds, Cell::new(size, active, idle), s, cpu)
                            .map(|(v, _)| (i, v))
                    })
                    .collect();
                (s, points)
            })
            .collect();
        // A log scale: select and poll grow by orders of magnitude with idle connections,
        // while the others stay within tens of percent of each other.
        let values = series.iter().flat_map(|(_, p)| p.iter().map(|&(_, v)| v));
        let lo = values
            .clone()
            .fold(f64::INFINITY, f64::min)
            .clamp(0.01, 1e9)
            * 0.7;
        let hi = values.fold(0.0f64, f64::max).max(lo * 2.0) * 1.6;
        let idle_labels = plan.idle.clone();
        let n = plan.idle.len().max(1);
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{} messages, {} active", size_name(size), active),
                ("sans-serif", 15),
            )
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.25f64..(n as f64 - 0.75), (lo..hi).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    idle_labels
                        .get(i as usize)
                        .map_or(String::new(), |&v| thousands(v))
                } else {
                    String::new()
                }
            })
            .disable_x_mesh()
            .y_label_formatter(&|y| fmt_value(*y))
            .x_desc("idle connections")
            .y_desc("µs per request (log scale)")
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, (server, points)) in series.into_iter().enumerate() {
            let colour = colours[k % colours.len()];
            let pts: Vec<(f64, f64)> = points.iter().map(|&(i, v)| (i as f64, v)).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(server.name())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 11))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}
