//! Charts drawn as SVG on the server, so every page reads without
//! JavaScript: the optimisation history, sparklines, learning curves and
//! parallel coordinates. Each trial is one element carrying `data-trial`
//! and a `<title>` (hover text without scripts).

use std::fmt::Write as _;

use ktune_algorithms::history::TrialState;

use super::data::HistoryPoint;
use super::html::escape;
use crate::store::TrialRow;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 32.0;

/// A linear or log axis from data values to pixels.
#[derive(Debug, Clone, Copy)]
struct Scale {
    lo: f64,
    hi: f64,
    log: bool,
    from: f64,
    to: f64,
}

impl Scale {
    /// The scale over `values`; a log scale only when every value is positive.
    fn over(values: impl Iterator<Item = f64>, log: bool, from: f64, to: f64) -> Self {
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        let mut all_positive = true;
        for v in values.filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
            all_positive &= v > 0.0;
        }
        let log = log && all_positive && lo.is_finite();
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        let (mut lo, mut hi) = if log {
            (lo.log10(), hi.log10())
        } else {
            (lo, hi)
        };
        if hi - lo < 1e-12 {
            lo -= 0.5;
            hi += 0.5;
        }
        Self {
            lo,
            hi,
            log,
            from,
            to,
        }
    }

    fn px(&self, v: f64) -> f64 {
        let v = if self.log { v.log10() } else { v };
        self.from + (v - self.lo) / (self.hi - self.lo) * (self.to - self.from)
    }

    /// `data-…` attributes from which the page's script maps a pixel back
    /// to a value (for brushing): value = lo + (px − from)/(to − from)·(hi − lo),
    /// as a power of ten on a log axis.
    fn data_attributes(&self) -> String {
        format!(
            "data-from=\"{}\" data-to=\"{}\" data-lo=\"{}\" data-hi=\"{}\" data-log=\"{}\"",
            self.from,
            self.to,
            self.lo,
            self.hi,
            u8::from(self.log)
        )
    }

    /// The value at the low and high ends, for axis labels.
    fn ends(&self) -> (f64, f64) {
        if self.log {
            (10f64.powf(self.lo), 10f64.powf(self.hi))
        } else {
            (self.lo, self.hi)
        }
    }
}

/// A short label for an axis value.
pub(crate) fn num(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.3e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn open(class: &str, label: &str) -> String {
    format!(
        "<svg class=\"chart {class}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        escape(label)
    )
}

/// Frame and end labels for an x/y chart.
fn axes(out: &mut String, x: &Scale, y: &Scale, x_label: &str, y_label: &str) {
    let (x0, x1) = x.ends();
    let (y0, y1) = y.ends();
    let _ = write!(
        out,
        "<g class=\"axes\"><path d=\"M{LEFT} {TOP}V{b}H{r}\"/>\
         <text x=\"{LEFT}\" y=\"{ty}\">{}</text><text x=\"{r}\" y=\"{ty}\" text-anchor=\"end\">{}</text>\
         <text x=\"{lx}\" y=\"{b}\" text-anchor=\"end\">{}</text><text x=\"{lx}\" y=\"{t}\" text-anchor=\"end\">{}</text>\
         <text x=\"{mx}\" y=\"{ty}\" text-anchor=\"middle\">{}</text>\
         <text x=\"12\" y=\"{my}\" transform=\"rotate(-90 12 {my})\" text-anchor=\"middle\">{}{}</text></g>",
        num(x0),
        num(x1),
        num(y0),
        num(y1),
        escape(x_label),
        escape(y_label),
        if y.log { " (log)" } else { "" },
        b = HEIGHT - BOTTOM,
        r = WIDTH - RIGHT,
        ty = HEIGHT - 8.0,
        lx = LEFT - 4.0,
        t = TOP + 10.0,
        mx = f64::midpoint(LEFT, WIDTH - RIGHT),
        my = HEIGHT / 2.0,
    );
}

/// The CSS class of a trial state.
#[must_use]
pub fn state_class(state: TrialState) -> &'static str {
    match state {
        TrialState::Pending => "pending",
        TrialState::Running => "running",
        TrialState::Succeeded => "succeeded",
        TrialState::Failed => "failed",
        TrialState::Killed => "killed",
        TrialState::EarlyStopped => "early-stopped",
        TrialState::MetricsUnavailable => "no-metrics",
    }
}

/// The optimisation history: one marker path per trial (trials without an
/// objective sit on the bottom edge as a cross), and the best-so-far line.
/// `href` gives each trial's link.
#[must_use]
pub fn history(
    points: &[HistoryPoint],
    metric: &str,
    log: bool,
    href: &dyn Fn(&str) -> String,
) -> String {
    let x = Scale::over(
        points.iter().map(|p| p.seq as f64),
        false,
        LEFT + 6.0,
        WIDTH - RIGHT - 6.0,
    );
    let y = Scale::over(
        points.iter().filter_map(|p| p.objective),
        log,
        HEIGHT - BOTTOM - 6.0,
        TOP + 6.0,
    );
    let mut out = open("history", &format!("{metric} by trial number"));
    axes(&mut out, &x, &y, "trial", metric);
    let mut best = String::new();
    for p in points {
        let Some(b) = p.best_so_far.filter(|b| !y.log || *b > 0.0) else {
            continue;
        };
        let (px, py) = (x.px(p.seq as f64), y.px(b));
        // A step line: along at the old best, then down (or up) to the new one.
        if best.is_empty() {
            let _ = write!(best, "M{px:.1} {py:.1}");
        } else {
            let _ = write!(best, "H{px:.1}V{py:.1}");
        }
    }
    if !best.is_empty() {
        let _ = write!(out, "<path class=\"best\" d=\"{best}\"/>");
    }
    for p in points {
        let px = x.px(p.seq as f64);
        let value = p.objective.filter(|v| !y.log || *v > 0.0);
        let d = match value {
            Some(v) => {
                let py = y.px(v);
                format!("M{:.1} {py:.1}a3 3 0 1 0 6 0a3 3 0 1 0-6 0", px - 3.0)
            }
            None => {
                let py = HEIGHT - BOTTOM;
                format!("M{:.1} {:.1}l6 6m0-6l-6 6", px - 3.0, py - 3.0)
            }
        };
        let value_text = p.objective.map_or_else(|| "no objective".to_owned(), num);
        let _ = write!(
            out,
            "<a href=\"{}\"><path class=\"trial {}\" data-trial=\"{}\" d=\"{d}\">\
             <title>#{} {} — {} — {}</title></path></a>",
            escape(&href(&p.name)),
            state_class(p.state),
            escape(&p.name),
            p.seq,
            escape(&p.name),
            p.state.as_str(),
            value_text,
        );
    }
    out.push_str("</svg>");
    out
}

/// A small best-so-far line for the experiments list (empty without values).
#[must_use]
pub fn sparkline(points: &[HistoryPoint]) -> String {
    let values: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| p.best_so_far.map(|b| (p.seq as f64, b)))
        .collect();
    if values.is_empty() {
        return String::new();
    }
    let x = Scale::over(values.iter().map(|v| v.0), false, 1.0, 119.0);
    let y = Scale::over(values.iter().map(|v| v.1), false, 23.0, 1.0);
    let mut d = String::new();
    for (i, (vx, vy)) in values.iter().enumerate() {
        let _ = write!(
            d,
            "{}{:.1} {:.1}",
            if i == 0 { "M" } else { "L" },
            x.px(*vx),
            y.px(*vy)
        );
    }
    format!(
        "<svg class=\"spark\" viewBox=\"0 0 120 24\" width=\"120\" height=\"24\" \
         xmlns=\"http://www.w3.org/2000/svg\" aria-label=\"best so far\"><path d=\"{d}\"/></svg>"
    )
}

/// One trial's curve of one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// The trial's name.
    pub name: String,
    /// Its state: early-stopped curves are drawn cut (dashed, with an end mark).
    pub state: TrialState,
    /// (step, value) in step order.
    pub points: Vec<(i64, f64)>,
}

/// Learning curves: the metric against step, one path per trial that
/// reported a number.
#[must_use]
pub fn curves(series: &[Curve], metric: &str) -> String {
    let all = || series.iter().flat_map(|c| c.points.iter());
    let x = Scale::over(
        all().map(|p| p.0 as f64),
        false,
        LEFT + 4.0,
        WIDTH - RIGHT - 4.0,
    );
    let y = Scale::over(all().map(|p| p.1), false, HEIGHT - BOTTOM - 4.0, TOP + 4.0);
    let mut out = open("curves", &format!("{metric} by step"));
    axes(&mut out, &x, &y, "step", metric);
    for c in series.iter().filter(|c| !c.points.is_empty()) {
        let mut d = String::new();
        for (i, (s, v)) in c.points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1} {:.1}",
                if i == 0 { "M" } else { "L" },
                x.px(*s as f64),
                y.px(*v)
            );
        }
        if c.state == TrialState::EarlyStopped
            && let Some((s, v)) = c.points.last()
        {
            // A bar across the line's end: this curve was cut here.
            let (px, py) = (x.px(*s as f64), y.px(*v));
            let _ = write!(d, "M{px:.1} {:.1}V{:.1}", py - 5.0, py + 5.0);
        }
        let _ = write!(
            out,
            "<path class=\"curve {}\" data-trial=\"{}\" d=\"{d}\"><title>{} — {}</title></path>",
            state_class(c.state),
            escape(&c.name),
            escape(&c.name),
            c.state.as_str(),
        );
    }
    out.push_str("</svg>");
    out
}

/// Parallel coordinates: one vertical axis per parameter (log axes for
/// log-distributed ones; categories spread evenly) and the objective last;
/// one polyline per trial with an objective.
#[must_use]
pub fn parallel(
    trials: &[TrialRow],
    parameters: &[String],
    log_parameters: &[String],
    metric: &str,
) -> String {
    let rows: Vec<&TrialRow> = trials
        .iter()
        .filter(|t| t.objective.is_some_and(f64::is_finite))
        .collect();
    let axes_count = parameters.len() + 1;
    let gap = (WIDTH - LEFT - RIGHT) / (axes_count.max(2) - 1) as f64;
    let (top, bottom) = (TOP + 14.0, HEIGHT - BOTTOM);
    // Per axis: how to place one row's value.
    let mut placers: Vec<Placer> = Vec::new();
    let mut out = open("parallel", "parameters and objective, one line per trial");
    for (i, p) in parameters.iter().enumerate() {
        let axis = Axis {
            name: p,
            x: LEFT + gap * i as f64,
            top,
            bottom,
        };
        let values: Vec<&str> = rows.iter().filter_map(|t| t.parameter(p)).collect();
        let numbers: Option<Vec<f64>> = values.iter().map(|v| v.parse::<f64>().ok()).collect();
        placers.push(match numbers {
            Some(ns) if !ns.is_empty() => {
                numeric_axis(&mut out, &axis, ns, log_parameters.contains(p))
            }
            _ => categorical_axis(&mut out, &axis, values),
        });
    }
    let axis = Axis {
        name: metric,
        x: LEFT + gap * parameters.len() as f64,
        top,
        bottom,
    };
    placers.push(objective_axis(&mut out, &axis, &rows));
    for t in rows {
        let mut d = String::new();
        for (i, place) in placers.iter().enumerate() {
            if let Some(py) = place(t) {
                let _ = write!(
                    d,
                    "{}{:.1} {py:.1}",
                    if d.is_empty() { "M" } else { "L" },
                    LEFT + gap * i as f64
                );
            }
        }
        let _ = write!(
            out,
            "<path class=\"line {}\" data-trial=\"{}\" d=\"{d}\"><title>{}</title></path>",
            state_class(t.state),
            escape(&t.name),
            escape(&t.name)
        );
    }
    out.push_str("</svg>");
    out
}

/// One vertical axis of the parallel coordinates: what it shows, where it
/// stands and the pixel range its values span.
struct Axis<'a> {
    name: &'a str,
    x: f64,
    top: f64,
    bottom: f64,
}

/// Draws a numeric parameter's axis (linear or log) with its end values.
fn numeric_axis(out: &mut String, axis: &Axis<'_>, numbers: Vec<f64>, log: bool) -> Placer {
    let Axis {
        name,
        x: ax,
        top,
        bottom,
    } = *axis;
    let s = Scale::over(numbers.into_iter(), log, bottom, top);
    let (lo, hi) = s.ends();
    let _ = write!(
        out,
        "<g class=\"axis\" data-x=\"{ax:.1}\" data-param=\"{}\" {}><path d=\"M{ax:.1} {top}V{bottom}\"/><text x=\"{ax:.1}\" y=\"{}\" text-anchor=\"middle\">{}{}</text>\
         <text x=\"{ax:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text><text x=\"{ax:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
        escape(name),
        s.data_attributes(),
        TOP + 2.0,
        escape(name),
        if s.log { " (log)" } else { "" },
        top - 2.0,
        num(hi),
        bottom + 12.0,
        num(lo),
    );
    let name = name.to_owned();
    Box::new(move |t| {
        t.parameter(&name)
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| s.px(v))
    })
}

/// Draws a categorical parameter's axis: its values, sorted, evenly spaced.
fn categorical_axis(out: &mut String, axis: &Axis<'_>, mut values: Vec<&str>) -> Placer {
    let Axis {
        name,
        x: ax,
        top,
        bottom,
    } = *axis;
    values.sort_unstable();
    values.dedup();
    let cats: Vec<String> = values.into_iter().map(str::to_owned).collect();
    let n = cats.len().max(2) - 1;
    let _ = write!(
        out,
        "<g class=\"axis\" data-x=\"{ax:.1}\" data-param=\"{}\" data-from=\"{bottom}\" data-to=\"{top}\" data-cats=\"{}\"><path d=\"M{ax:.1} {top}V{bottom}\"/><text x=\"{ax:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        escape(name),
        escape(&serde_json::Value::from(cats.clone()).to_string()),
        TOP + 2.0,
        escape(name)
    );
    for (k, c) in cats.iter().enumerate() {
        let py = bottom - (bottom - top) * k as f64 / n as f64;
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{py:.1}\">{}</text>",
            ax + 3.0,
            escape(c)
        );
    }
    out.push_str("</g>");
    let name = name.to_owned();
    Box::new(move |t| {
        let v = t.parameter(&name)?;
        let k = cats.iter().position(|c| c == v)?;
        Some(bottom - (bottom - top) * k as f64 / n as f64)
    })
}

/// Draws the objective's axis, the last one, labelled on its left.
fn objective_axis(out: &mut String, axis: &Axis<'_>, rows: &[&TrialRow]) -> Placer {
    let Axis {
        name,
        x: ax,
        top,
        bottom,
    } = *axis;
    let s = Scale::over(rows.iter().filter_map(|t| t.objective), false, bottom, top);
    let (lo, hi) = s.ends();
    let _ = write!(
        out,
        "<g class=\"axis objective\" data-x=\"{ax:.1}\" data-objective=\"1\" {}><path d=\"M{ax:.1} {top}V{bottom}\"/><text x=\"{ax:.1}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{ax:.1}\" y=\"{top}\" text-anchor=\"end\">{}</text><text x=\"{ax:.1}\" y=\"{}\" text-anchor=\"end\">{}</text></g>",
        s.data_attributes(),
        TOP + 2.0,
        escape(name),
        num(hi),
        bottom + 12.0,
        num(lo)
    );
    Box::new(move |t| t.objective.map(|v| s.px(v)))
}

/// Where one trial's line crosses one axis (pixels), if it has a value there.
type Placer = Box<dyn Fn(&TrialRow) -> Option<f64>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn point(seq: i64, state: TrialState, objective: Option<f64>) -> HistoryPoint {
        HistoryPoint {
            seq,
            name: format!("t<{seq}>"),
            state,
            objective,
            best_so_far: objective,
        }
    }

    #[test]
    fn the_history_draws_one_path_per_trial_and_escapes_names() {
        let points = [
            point(1, TrialState::Succeeded, Some(1.0)),
            point(2, TrialState::Failed, None),
            point(3, TrialState::Succeeded, Some(0.5)),
        ];
        let svg = history(&points, "loss", false, &|n| format!("/t/{n}"));
        assert_eq!(svg.matches("<path class=\"trial ").count(), 3);
        assert_eq!(svg.matches("class=\"best\"").count(), 1);
        assert!(svg.contains("t&lt;2&gt;"));
        assert!(!svg.contains("t<2>"));
        assert!(svg.contains("class=\"trial failed\""));
    }

    #[test]
    fn the_best_so_far_line_is_a_step_line() {
        let points = [
            point(1, TrialState::Succeeded, Some(2.0)),
            point(2, TrialState::Succeeded, Some(1.0)),
            point(3, TrialState::Succeeded, Some(0.5)),
        ];
        let svg = history(&points, "loss", false, &|n| n.to_owned());
        let d = svg
            .split("class=\"best\" d=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default();
        // M x y, then exactly one number after each H and each V.
        let letters = d.chars().filter(char::is_ascii_alphabetic);
        let args = d.split(|c: char| c.is_ascii_alphabetic()).skip(1);
        let commands: Vec<(char, usize)> = letters
            .zip(args)
            .map(|(c, a)| (c, a.split_whitespace().count()))
            .collect();
        assert_eq!(
            commands,
            [('M', 2), ('H', 1), ('V', 1), ('H', 1), ('V', 1)],
            "{d}"
        );
    }

    #[test]
    fn a_log_scale_falls_back_to_linear_with_non_positive_values() {
        let points = [
            point(1, TrialState::Succeeded, Some(-1.0)),
            point(2, TrialState::Succeeded, Some(10.0)),
        ];
        assert!(!history(&points, "m", true, &|n| n.to_owned()).contains("(log)"));
        let positive = [
            point(1, TrialState::Succeeded, Some(0.01)),
            point(2, TrialState::Succeeded, Some(10.0)),
        ];
        assert!(history(&positive, "m", true, &|n| n.to_owned()).contains("(log)"));
    }

    #[test]
    fn early_stopped_curves_are_marked_cut() {
        let svg = curves(
            &[Curve {
                name: "a".into(),
                state: TrialState::EarlyStopped,
                points: vec![(1, 1.0), (2, 0.5)],
            }],
            "loss",
        );
        assert!(svg.contains("class=\"curve early-stopped\""));
    }
}
