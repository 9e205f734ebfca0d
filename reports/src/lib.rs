//! Report pages: charts drawn with plotters as SVG and PNG (axes with
//! units, legends, readable at 1200 px) and a self-contained index.html that inlines them,
//! so a report opens anywhere without network.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use plotters::{
    coord::{Shift, types::RangedCoordf64},
    prelude::*,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("drawing {path}: {message}")]
    Chart { path: PathBuf, message: String },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "drawing {path}: no TrueType font found (tried {tried}; Debian: apt-get install fonts-dejavu-core)"
    )]
    NoFont { path: PathBuf, tried: String },
    #[error("chart {path} has no data")]
    Empty { path: PathBuf },
}

const SIZE: (u32, u32) = (1200, 700);
const LEGEND_WIDTH: u32 = 230;

/// Colours that stay apart for up to sixteen series.
const PALETTE: [RGBColor; 16] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
    RGBColor(255, 152, 150),
    RGBColor(197, 176, 213),
    RGBColor(196, 156, 148),
];

pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A named set of points.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Lines,
    Points,
}

/// Axis titles, with units.
#[derive(Debug, Clone, Copy)]
pub struct Axes<'a> {
    pub title: &'a str,
    pub x: &'a str,
    pub y: &'a str,
}

/// Where the text of the charts comes from: plotters lays text out (and
/// draws it into PNGs) with a TrueType font it is given once.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

fn fonts(path: &Path) -> Result<(), ReportError> {
    static LOADED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *LOADED.get_or_init(|| {
        FONTS.iter().any(|f| {
            std::fs::read(f).is_ok_and(|bytes| {
                // Lives as long as the process, as plotters needs.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    });
    if ok {
        Ok(())
    } else {
        Err(ReportError::NoFont {
            path: path.to_owned(),
            tried: FONTS.join(", "),
        })
    }
}

fn chart_err(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> ReportError + '_ {
    move |e| ReportError::Chart {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn bounds(series: &[Series]) -> Option<(f64, f64, f64, f64)> {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    let mut any = false;
    for &(x, y) in pts {
        any = true;
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !any {
        return None;
    }
    // A flat series still needs a range to draw in.
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    Some((x0, x1, y0, y1))
}

/// A chart of several series (lines or points) with a legend. The y axis
/// starts at 0 unless `y_from_data`. Written as `path` (SVG) and, next to
/// it, the same chart as PNG.
pub fn xy_chart(
    path: &Path,
    axes: Axes<'_>,
    series: &[Series],
    style: Style,
    y_from_data: bool,
) -> Result<(), ReportError> {
    shaded_chart(path, axes, series, style, y_from_data, None)
}

/// Spans of the x axis to shade, with their legend label.
#[derive(Debug, Clone, Copy)]
pub struct Shade<'a> {
    pub label: &'a str,
    pub spans: &'a [(f64, f64)],
}

/// Like `xy_chart`, with x spans shaded behind the series (e.g. the
/// periods a CPU quota throttled).
pub fn shaded_chart(
    path: &Path,
    axes: Axes<'_>,
    series: &[Series],
    style: Style,
    y_from_data: bool,
    shade: Option<Shade<'_>>,
) -> Result<(), ReportError> {
    fonts(path)?;
    let svg = SVGBackend::new(path, SIZE).into_drawing_area();
    draw_xy(svg, path, axes, series, style, y_from_data, shade)?;
    let png = path.with_extension("png");
    let bitmap = BitMapBackend::new(&png, SIZE).into_drawing_area();
    draw_xy(bitmap, path, axes, series, style, y_from_data, shade)
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A white chart with title, labelled axes and a mesh.
fn frame<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    path: &Path,
    axes: Axes<'_>,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
) -> Result<Chart<'a, DB>, ReportError> {
    let err = chart_err(path);
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(root)
        .caption(axes.title, ("sans-serif", 28))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(90)
        .build_cartesian_2d(x, y)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(axes.x)
        .y_desc(axes.y)
        .label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 20))
        .draw()
        .map_err(|e| err(&e))?;
    Ok(chart)
}

/// Draws the legend at `pos` and writes the chart out.
fn finish<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    root: &DrawingArea<DB, Shift>,
    path: &Path,
    pos: SeriesLabelPosition,
) -> Result<(), ReportError> {
    let err = chart_err(path);
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 18))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(pos)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

/// A legend swatch.
fn swatch(c: RGBColor) -> impl Fn((i32, i32)) -> Rectangle<(i32, i32)> {
    move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], c.filled())
}

fn draw_xy<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    path: &Path,
    axes: Axes<'_>,
    series: &[Series],
    style: Style,
    y_from_data: bool,
    shade: Option<Shade<'_>>,
) -> Result<(), ReportError> {
    let err = chart_err(path);
    let (x0, x1, y0, y1) = bounds(series).ok_or_else(|| ReportError::Empty {
        path: path.to_owned(),
    })?;
    let y0 = if y_from_data { y0 } else { 0.0_f64.min(y0) };
    let pad = (y1 - y0) * 0.05;
    let mut chart = frame(&root, path, axes, x0..x1, y0..(y1 + pad))?;
    if let Some(sh) = shade.filter(|s| !s.spans.is_empty()) {
        let grey = RGBColor(200, 200, 200);
        let top = y1 + pad;
        chart
            .draw_series(sh.spans.iter().map(|&(a, b)| {
                Rectangle::new([(a.max(x0), y0), (b.min(x1), top)], grey.mix(0.5).filled())
            }))
            .map_err(|e| err(&e))?
            .label(sh.label)
            .legend(swatch(grey));
    }
    for (i, s) in series.iter().enumerate() {
        let c = color(i);
        let anno = match style {
            Style::Lines => chart
                .draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                .map_err(|e| err(&e))?,
            Style::Points => chart
                .draw_series(
                    s.points
                        .iter()
                        .map(|&p| Circle::new(p, 3, c.mix(0.7).filled())),
                )
                .map_err(|e| err(&e))?,
        };
        anno.label(s.name.as_str()).legend(swatch(c));
    }
    finish(&mut chart, &root, path, SeriesLabelPosition::LowerRight)
}

/// A histogram of each series' values (their x), in `bins` bins over the
/// range of all of them, the series' bars side by side in each bin. SVG at
/// `path`, PNG next to it.
pub fn histogram(
    path: &Path,
    axes: Axes<'_>,
    series: &[Series],
    bins: usize,
) -> Result<(), ReportError> {
    fonts(path)?;
    let svg = SVGBackend::new(path, SIZE).into_drawing_area();
    draw_histogram(svg, path, axes, series, bins)?;
    let png = path.with_extension("png");
    let bitmap = BitMapBackend::new(&png, SIZE).into_drawing_area();
    draw_histogram(bitmap, path, axes, series, bins)
}

fn draw_histogram<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    path: &Path,
    axes: Axes<'_>,
    series: &[Series],
    bins: usize,
) -> Result<(), ReportError> {
    let err = chart_err(path);
    let (x0, x1, _, _) = bounds(series).ok_or_else(|| ReportError::Empty {
        path: path.to_owned(),
    })?;
    let bins = bins.max(1);
    let width = (x1 - x0) / bins as f64;
    let bin = |x: f64| (((x - x0) / width) as usize).min(bins - 1);
    let counts: Vec<Vec<u32>> = series
        .iter()
        .map(|s| {
            let mut c = vec![0u32; bins];
            for &(x, _) in &s.points {
                c[bin(x)] += 1;
            }
            c
        })
        .collect();
    let top = counts.iter().flatten().copied().max().unwrap_or(1) as f64 * 1.1;
    let mut chart = frame(&root, path, axes, x0..x1, 0f64..top)?;
    let n = series.len().max(1) as f64;
    for (i, (s, c)) in series.iter().zip(&counts).enumerate() {
        let col = color(i);
        let bars = c
            .iter()
            .enumerate()
            .filter(|(_, k)| **k > 0)
            .map(|(b, &k)| {
                let left = x0 + width * b as f64 + width * i as f64 / n;
                Rectangle::new(
                    [(left, 0.0), (left + width / n * 0.9, f64::from(k))],
                    col.filled(),
                )
            });
        chart
            .draw_series(bars)
            .map_err(|e| err(&e))?
            .label(s.name.as_str())
            .legend(swatch(col));
    }
    finish(&mut chart, &root, path, SeriesLabelPosition::UpperRight)
}

/// One bar per group, its segments stacked bottom-up in the given order.
#[derive(Debug, Clone)]
pub struct StackedBar {
    pub name: String,
    pub segments: Vec<(String, f64)>,
}

/// Stacked bars with a legend of segment names (coloured consistently
/// across bars), as SVG at `path` and PNG next to it.
pub fn stacked_bars(path: &Path, axes: Axes<'_>, bars: &[StackedBar]) -> Result<(), ReportError> {
    fonts(path)?;
    draw_bars(
        SVGBackend::new(path, SIZE).into_drawing_area(),
        path,
        axes,
        bars,
    )?;
    let png = path.with_extension("png");
    draw_bars(
        BitMapBackend::new(&png, SIZE).into_drawing_area(),
        path,
        axes,
        bars,
    )
}

fn draw_bars<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    path: &Path,
    axes: Axes<'_>,
    bars: &[StackedBar],
) -> Result<(), ReportError> {
    let err = chart_err(path);
    if bars.is_empty() {
        return Err(ReportError::Empty {
            path: path.to_owned(),
        });
    }
    let mut names: Vec<String> = Vec::new();
    for b in bars {
        for (n, _) in &b.segments {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    let top = bars
        .iter()
        .map(|b| b.segments.iter().map(|s| s.1).sum::<f64>())
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(axes.title, ("sans-serif", 28))
        .margin(20)
        // Room on the right for the legend, clear of the bars.
        .margin_right(LEGEND_WIDTH)
        .x_label_area_size(60)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..bars.len() as f64, 0f64..top)
        .map_err(|e| err(&e))?;
    let labels: Vec<String> = bars.iter().map(|b| b.name.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.26 {
                labels.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc(axes.x)
        .y_desc(axes.y)
        .label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 20))
        .draw()
        .map_err(|e| err(&e))?;
    for (ni, name) in names.iter().enumerate() {
        let c = color(ni);
        let rects: Vec<Rectangle<(f64, f64)>> = bars
            .iter()
            .enumerate()
            .filter_map(|(bi, b)| {
                let pos = b.segments.iter().position(|(n, _)| n == name)?;
                let below: f64 = b.segments[..pos].iter().map(|s| s.1).sum();
                let h = b.segments[pos].1;
                let x = bi as f64;
                Some(Rectangle::new(
                    [(x + 0.2, below), (x + 0.8, below + h)],
                    c.filled(),
                ))
            })
            .collect();
        chart.draw_series(rects).map_err(|e| err(&e))?;
    }
    // The legend in the margin kept for it, top segment first as stacked.
    let x = (SIZE.0 - LEGEND_WIDTH + 10) as i32;
    for (i, name) in names.iter().enumerate().rev() {
        let y = 70 + 26 * (names.len() - 1 - i) as i32;
        root.draw(&Rectangle::new(
            [(x, y), (x + 18, y + 16)],
            color(i).filled(),
        ))
        .map_err(|e| err(&e))?;
        root.draw(&Text::new(name.as_str(), (x + 26, y), ("sans-serif", 17)))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// A table for the page: a header row and rows of cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes `dir/index.html` with the tables and the charts (SVG files in
/// `dir`, inlined so the page is whole on its own).
pub fn index_html(
    dir: &Path,
    title: &str,
    notes: &[String],
    tables: &[Table],
    charts: &[(String, String)],
) -> Result<PathBuf, ReportError> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1260px}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #bbb;padding:4px 10px;text-align:right}}\
         th:first-child,td:first-child{{text-align:left}}figure{{margin:2em 0}}\
         figure svg{{width:100%;height:auto;border:1px solid #ddd}}</style></head><body>\n<h1>{t}</h1>\n",
        t = escape(title)
    );
    for n in notes {
        let _ = writeln!(h, "<p>{}</p>", escape(n));
    }
    for t in tables {
        let _ = write!(h, "<h2>{}</h2>\n<table><tr>", escape(&t.title));
        for c in &t.header {
            let _ = write!(h, "<th>{}</th>", escape(c));
        }
        h.push_str("</tr>\n");
        for r in &t.rows {
            h.push_str("<tr>");
            for c in r {
                let _ = write!(h, "<td>{}</td>", escape(c));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    for (caption, file) in charts {
        let path = dir.join(file);
        let svg = std::fs::read_to_string(&path).map_err(|source| ReportError::Write {
            path: path.clone(),
            source,
        })?;
        // The XML prolog is not allowed inside HTML.
        let svg = svg
            .find("<svg")
            .map_or(svg.as_str(), |i| &svg[i..])
            .to_owned();
        let _ = writeln!(
            h,
            "<figure id=\"{id}\">{svg}<figcaption>{c} (<a href=\"{f}\">{f}</a>)</figcaption></figure>",
            id = escape(file),
            c = escape(caption),
            f = escape(file)
        );
    }
    h.push_str("</body></html>\n");
    let out = dir.join("index.html");
    std::fs::write(&out, h).map_err(|source| ReportError::Write {
        path: out.clone(),
        source,
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_and_page_are_written_with_labels() {
        let d = tempfile::tempdir().unwrap();
        let s = vec![
            Series {
                name: "boxrun".into(),
                points: vec![(1.0, 0.1), (2.0, 0.5), (3.0, 1.0)],
            },
            Series {
                name: "runc".into(),
                points: vec![(10.0, 0.1), (20.0, 1.0)],
            },
        ];
        let axes = Axes {
            title: "Start latency CDF",
            x: "latency (ms)",
            y: "fraction of starts",
        };
        xy_chart(&d.path().join("cdf.svg"), axes, &s, Style::Lines, false).unwrap();
        let bars = vec![StackedBar {
            name: "boxrun".into(),
            segments: vec![("clone".into(), 1.0), ("mounts".into(), 2.0)],
        }];
        stacked_bars(
            &d.path().join("bars.svg"),
            Axes {
                title: "Phases",
                x: "runtime",
                y: "median (ms)",
            },
            &bars,
        )
        .unwrap();
        // Each chart also as PNG, text drawn with the registered font.
        for png in ["cdf.png", "bars.png"] {
            let head = std::fs::read(d.path().join(png)).unwrap();
            assert_eq!(&head[1..4], b"PNG", "{png}");
        }
        let svg = std::fs::read_to_string(d.path().join("cdf.svg")).unwrap();
        for want in ["latency (ms)", "fraction of starts", "boxrun", "runc"] {
            assert!(svg.contains(want), "no {want} in the chart");
        }
        let page = index_html(
            d.path(),
            "Report <1>",
            &["a note".into()],
            &[Table {
                title: "Medians".into(),
                header: vec!["runtime".into(), "p50 ms".into()],
                rows: vec![vec!["boxrun".into(), "6.2".into()]],
            }],
            &[
                ("CDF".into(), "cdf.svg".into()),
                ("Phases".into(), "bars.svg".into()),
            ],
        )
        .unwrap();
        let html = std::fs::read_to_string(page).unwrap();
        assert!(html.contains("Report &lt;1&gt;"));
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(!html.contains("<?xml"));
        let empty = xy_chart(&d.path().join("e.svg"), axes, &[], Style::Lines, false);
        assert!(matches!(empty, Err(ReportError::Empty { .. })));
    }
}
