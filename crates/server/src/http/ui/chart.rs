//! Small line charts drawn on the server as SVG polylines: no script, no library,
//! readable without JavaScript and in both colour schemes (they use `currentColor`).

/// Width and height of the drawing's coordinate space.
pub const WIDTH: f64 = 300.0;
pub const HEIGHT: f64 = 60.0;
/// At most this many points are drawn; longer series are thinned evenly.
pub const MAX_POINTS: usize = 300;

pub struct Chart {
    pub title: String,
    /// The newest value as people read it.
    pub latest: String,
    /// The top of the scale as people read it.
    pub top: String,
    /// `x,y x,y ...` for `<polyline points>`; empty with fewer than two values.
    pub points: String,
    /// How far back the chart goes, as people read it.
    pub span: String,
}

impl Chart {
    /// `values` oldest first, with their timestamps; `top` is the scale's upper end
    /// (the series' maximum when `None`).
    pub fn new(title: &str, values: &[(i64, f64)], top: Option<f64>, show: impl Fn(f64) -> String) -> Self {
        let max = top.unwrap_or_else(|| values.iter().map(|(_, v)| *v).fold(0.0, f64::max)).max(f64::MIN_POSITIVE);
        let step = values.len().div_ceil(MAX_POINTS).max(1);
        let thinned: Vec<&(i64, f64)> = values.iter().step_by(step).collect();
        let points = if thinned.len() < 2 {
            String::new()
        } else {
            let last = (thinned.len() - 1) as f64;
            thinned
                .iter()
                .enumerate()
                .map(|(i, (_, v))| {
                    let x = i as f64 / last * WIDTH;
                    let y = HEIGHT - (v / max).clamp(0.0, 1.0) * HEIGHT;
                    format!("{x:.1},{y:.1}")
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let span = match (values.first(), values.last()) {
            (Some((from, _)), Some((to, _))) if to > from => span(to - from),
            _ => String::new(),
        };
        Chart {
            title: title.to_owned(),
            latest: values.last().map_or_else(|| "–".to_owned(), |(_, v)| show(*v)),
            top: show(max),
            points,
            span,
        }
    }
}

fn span(seconds: i64) -> String {
    match seconds {
        0..=119 => format!("last {seconds} s"),
        120..=7199 => format!("last {} min", seconds / 60),
        _ => format!("last {:.1} h", seconds as f64 / 3600.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_span_the_drawing_and_scale_to_the_top() {
        let chart = Chart::new("load", &[(0, 0.0), (10, 50.0), (20, 100.0)], Some(100.0), |v| format!("{v}"));
        assert_eq!(chart.points, "0.0,60.0 150.0,30.0 300.0,0.0");
        assert_eq!((chart.latest.as_str(), chart.top.as_str(), chart.span.as_str()), ("100", "100", "last 20 s"));
        let long: Vec<(i64, f64)> = (0..1000).map(|i| (i, 1.0)).collect();
        assert!(Chart::new("x", &long, None, |v| v.to_string()).points.split(' ').count() <= MAX_POINTS);
        assert!(Chart::new("x", &[(0, 1.0)], None, |v| v.to_string()).points.is_empty());
    }
}
