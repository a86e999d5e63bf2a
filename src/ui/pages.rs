//! The dashboard's pages as server-rendered HTML: complete without
//! JavaScript (the script only refreshes them live). Inputs are the view
//! data the handlers gathered; every stored text is escaped here.

use std::fmt::Write as _;

use ktune_algorithms::history::{Objective, TrialState};

use super::data::{
    HistoryPoint, IMPORTANCE_METHOD, Importance, TableParams, age, page_count, time_text,
    url_encode,
};
use super::html::escape;
use super::ped_anova;
use super::svg;
use crate::engine::decide::Counts;
use crate::store::{ExperimentRecord, ObservationRow, TrialPage, TrialRow};

/// Wraps a page body in the document: title, stylesheet, script. `live`
/// names what the script listens for (`*` every experiment).
#[must_use]
pub fn layout(base: &str, title: &str, live: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · ktune</title><link rel=\"stylesheet\" href=\"{base}/assets/style.css\">\
         <link rel=\"icon\" type=\"image/svg+xml\" href=\"{base}/assets/favicon.svg\">\
         <script src=\"{base}/assets/app.js\" defer></script></head>\
         <body data-base=\"{base}\" data-live=\"{}\"><header><a href=\"{base}/\">ktune</a> \
         <span id=\"live\" class=\"live\"></span></header><main id=\"main\">{body}</main></body></html>",
        escape(title),
        escape(live),
    )
}

/// One row of the experiments page.
#[derive(Debug, Clone)]
pub struct ExperimentSummary {
    /// The stored experiment.
    pub record: ExperimentRecord,
    /// Its objective.
    pub objective: Objective,
    /// Its algorithm's name.
    pub algorithm: String,
    /// Trials by state.
    pub counts: Counts,
    /// The best trial, if any.
    pub best: Option<TrialRow>,
    /// Its history (for the sparkline).
    pub history: Vec<HistoryPoint>,
}

fn counts_text(c: &Counts) -> String {
    format!(
        "<span class=\"counts\"><b>{}</b> trials · {} pending · {} running · {} succeeded · {} failed · {} killed · {} early-stopped · {} without metrics</span>",
        c.total(),
        c.pending,
        c.running,
        c.succeeded,
        c.failed,
        c.killed,
        c.early_stopped,
        c.metrics_unavailable
    )
}

fn experiment_href(base: &str, name: &str) -> String {
    format!("{base}/experiments/{}", super::paths::experiment_path(name))
}

/// The link to a trial's page.
#[must_use]
pub fn trial_href(base: &str, experiment: &str, trial: &str) -> String {
    format!(
        "{base}/experiments/{}/trials/{}",
        super::paths::experiment_path(experiment),
        url_encode(trial)
    )
}

/// The experiments page.
#[must_use]
pub fn experiments(base: &str, rows: &[ExperimentSummary]) -> String {
    let mut body = String::from("<h1>Experiments</h1>");
    if rows.is_empty() {
        body.push_str(
            "<p class=\"empty\">No experiments in this store yet: start one with \
             <code>ktune run experiment.yaml</code> against the same <code>--db</code>.</p>",
        );
        return layout(base, "Experiments", "*", &body);
    }
    body.push_str(
        "<table class=\"experiments\"><thead><tr><th>name</th><th>algorithm</th><th>status</th>\
         <th>best</th><th>trials</th><th>started</th><th>finished</th><th>best so far</th></tr></thead><tbody>",
    );
    for r in rows {
        let e = &r.record;
        let (label, path) = super::paths::listed(&e.name);
        let best = r.best.as_ref().map_or_else(
            || "<span class=\"empty\">none yet</span>".to_owned(),
            |b| {
                format!(
                    "{}={} <a href=\"{}\">{}</a>",
                    escape(&r.objective.metric),
                    b.objective.map(|v| v.to_string()).unwrap_or_default(),
                    escape(&trial_href(base, &e.name, &b.name)),
                    escape(&b.name)
                )
            },
        );
        let _ = write!(
            body,
            "<tr data-experiment=\"{}\"><td><a href=\"{}\">{}</a></td><td>{}</td><td class=\"state\">{} {}</td>\
             <td class=\"best\">{best}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&e.name),
            escape(&format!("{base}/experiments/{path}")),
            escape(&label),
            escape(&r.algorithm),
            e.state.as_str(),
            escape(&e.reason),
            counts_text(&r.counts),
            time_text(Some(e.created_at)),
            time_text(e.completed_at),
            svg::sparkline(&r.history),
        );
    }
    body.push_str("</tbody></table>");
    layout(base, "Experiments", "*", &body)
}

/// Everything the experiment page shows.
#[derive(Debug, Clone)]
pub struct ExperimentView<'a> {
    /// The summary (record, counts, best, history).
    pub summary: &'a ExperimentSummary,
    /// The trials drawn in the parallel coordinates (finite objectives).
    pub lines: &'a [TrialRow],
    /// How many trials have a finite objective in all.
    pub lines_total: usize,
    /// The objective's curves drawn, one per trial.
    pub curves: &'a [svg::Curve],
    /// How many trials reported the objective metric in all.
    pub curves_total: usize,
    /// Parameter names in spec order.
    pub parameters: &'a [String],
    /// Log-distributed parameters.
    pub log_parameters: &'a [String],
    /// Parameter importance (η²).
    pub importance: &'a [Importance],
    /// What sets the top trials apart (PED-ANOVA shares, spec order).
    pub top_shares: &'a [(String, f64)],
    /// The table's page.
    pub page: &'a TrialPage,
    /// The table's query.
    pub params: &'a TableParams,
    /// The spec as YAML.
    pub spec_yaml: &'a str,
    /// Now (Unix ms), for ages.
    pub now: i64,
}

/// The experiment page: a header, then one section per chart, the trial
/// table and the spec. A new chart is one section function below and one
/// entry in this list.
#[must_use]
pub fn experiment(base: &str, v: &ExperimentView<'_>) -> String {
    let e = &v.summary.record;
    let here = experiment_href(base, &e.name);
    let table = table(
        base,
        &here,
        &TableView {
            experiment: &e.name,
            metric: &v.summary.objective.metric,
            parameters: v.parameters,
            page: v.page,
            params: v.params,
        },
    );
    let body = [
        experiment_header(base, v),
        history_section(base, &here, v),
        curves_section(v),
        parameters_section(v),
        table,
        format!(
            "<section id=\"spec\"><h2>Spec</h2><p><a href=\"{}/spec.yaml\">spec.yaml</a></p><pre>{}</pre></section>",
            escape(&here),
            escape(v.spec_yaml)
        ),
    ]
    .concat();
    layout(base, &e.name, &e.name, &body)
}

/// The name, state, counts and best trial.
fn experiment_header(base: &str, v: &ExperimentView<'_>) -> String {
    let s = v.summary;
    let e = &s.record;
    let metric = &s.objective.metric;
    let mut body = format!(
        "<h1>{}</h1><p class=\"meta\">{} · <span class=\"state\">{} {}</span> · started {} · finished {}</p><p id=\"counts\">{}</p>",
        escape(&e.name),
        escape(&s.algorithm),
        e.state.as_str(),
        escape(&e.reason),
        time_text(Some(e.created_at)),
        time_text(e.completed_at),
        counts_text(&s.counts)
    );
    match &s.best {
        Some(b) => {
            let _ = write!(
                body,
                "<p id=\"best\">best: <a href=\"{}\">{}</a> {}={} · {}</p>",
                escape(&trial_href(base, &e.name, &b.name)),
                escape(&b.name),
                escape(metric),
                b.objective.map(|v| v.to_string()).unwrap_or_default(),
                escape(&params_text(b))
            );
        }
        None => body.push_str(
            "<p id=\"best\" class=\"empty\">No succeeded trial with an objective yet.</p>",
        ),
    }

    body
}

/// Optimisation history: every trial's objective and the best so far.
fn history_section(base: &str, here: &str, v: &ExperimentView<'_>) -> String {
    let s = v.summary;
    let e = &s.record;
    let metric = &s.objective.metric;
    let mut body = String::new();
    let log = v.params.log_scale();
    let _ = write!(
        body,
        "<section id=\"history\"><h2>Optimisation history</h2><p><a href=\"{}{}\">{}</a></p>",
        escape(here),
        escape(
            &v.params
                .with(&[("log", if log { None } else { Some("1".into()) })])
        ),
        if log { "linear scale" } else { "log scale" }
    );
    if s.history.is_empty() {
        let _ = write!(
            body,
            "<p class=\"empty\">No trials yet — the experiment was stored {} ago.</p>",
            age(v.now, e.created_at)
        );
    } else {
        let href = |name: &str| trial_href(base, &e.name, name);
        body.push_str(&svg::history(&s.history, metric, log, &href));
        body.push_str(
            "<p class=\"legend\"><span class=\"k succeeded\">●</span> succeeded \
             <span class=\"k failed\">●</span> failed <span class=\"k early-stopped\">●</span> early-stopped \
             <span class=\"k best\">—</span> best so far; × on the axis: no objective</p>",
        );
    }
    body.push_str("</section>");

    body
}

/// Learning curves: the objective metric over each trial's steps.
fn curves_section(v: &ExperimentView<'_>) -> String {
    let e = &v.summary.record;
    let metric = &v.summary.objective.metric;
    let mut body = String::from("<section id=\"curves\"><h2>Learning curves</h2>");
    if v.curves.iter().all(|c| c.points.is_empty()) {
        let _ = write!(
            body,
            "<p class=\"empty\">No {} observations yet — the experiment was stored {} ago.</p>",
            escape(metric),
            age(v.now, e.created_at)
        );
    } else {
        body.push_str(&svg::curves(v.curves, metric));
        body.push_str("<p class=\"legend\">Early-stopped curves end with a bar where they were cut; running ones are drawn as far as they got.</p>");
        if v.curves.len() < v.curves_total {
            let _ = write!(
                body,
                "<p class=\"legend\">Showing {} of {} curves: every running trial, then the best by {}.</p>",
                v.curves.len(),
                v.curves_total,
                escape(metric)
            );
        }
    }
    body.push_str("</section>");

    body
}

/// Parallel coordinates over the parameters, and their importance.
fn parameters_section(v: &ExperimentView<'_>) -> String {
    let metric = &v.summary.objective.metric;
    let mut body = String::from("<section id=\"parallel\"><h2>Parameters</h2>");
    if !v.lines.is_empty() && !v.parameters.is_empty() {
        body.push_str(&svg::parallel(
            v.lines,
            v.parameters,
            v.log_parameters,
            metric,
        ));
        body.push_str(
            "<p class=\"legend\">Drag along an axis to keep only the lines crossing it there \
             (with JavaScript); click an axis to clear its range.</p>",
        );
        if v.lines.len() < v.lines_total {
            let _ = write!(
                body,
                "<p class=\"legend\">Showing {} of {} trials with an objective: the best by {}.</p>",
                v.lines.len(),
                v.lines_total,
                escape(metric)
            );
        }
    } else {
        body.push_str("<p class=\"empty\">No trial with an objective yet.</p>");
    }
    body.push_str("<h3>Importance</h3>");
    if v.importance.is_empty() {
        body.push_str(
            "<p class=\"empty\">Needs at least 4 succeeded trials whose objectives differ.</p>",
        );
    } else {
        let _ = write!(
            body,
            "<table class=\"importance\"><thead><tr><th>parameter</th><th title=\"{}\">variance explained (η²)</th>\
             <th>bins</th><th title=\"{}\">sets the top 10 % apart (PED-ANOVA)</th></tr></thead><tbody>",
            escape(IMPORTANCE_METHOD),
            escape(ped_anova::METHOD)
        );
        for i in v.importance {
            let share = v
                .top_shares
                .iter()
                .find(|(name, _)| *name == i.parameter)
                .map(|(_, share)| *share);
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{} {:.3}</td><td>{}</td><td>{}</td></tr>",
                escape(&i.parameter),
                bar("bar", i.score),
                i.score,
                i.bins,
                share.map_or_else(
                    || "–".to_owned(),
                    |s| format!("{} {s:.3}", bar("bar top", s))
                )
            );
        }
        let _ = write!(
            body,
            "</tbody></table><p class=\"method\">Methods: {}. {}{}.</p>",
            escape(IMPORTANCE_METHOD),
            escape(ped_anova::METHOD),
            if v.top_shares.is_empty() {
                " (needs at least 20 succeeded trials)"
            } else {
                ""
            }
        );
    }
    body.push_str("</section>");

    body
}

/// A horizontal bar 200 px long at `share` 1, as SVG: its width is an
/// attribute, not an inline style, which the dashboard's
/// Content-Security-Policy would block.
fn bar(class: &str, share: f64) -> String {
    let width = if share.is_finite() {
        (share * 200.0).clamp(0.0, 200.0)
    } else {
        0.0
    };
    format!(
        "<svg class=\"{class}\" width=\"{width:.0}\" height=\"8\" aria-hidden=\"true\">\
         <rect width=\"{width:.0}\" height=\"8\"/></svg>"
    )
}

fn params_text(t: &TrialRow) -> String {
    t.assignment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the trial table shows.
#[derive(Debug, Clone, Copy)]
pub struct TableView<'a> {
    /// The experiment's name.
    pub experiment: &'a str,
    /// The objective metric's name (a column).
    pub metric: &'a str,
    /// Parameter names, one column each.
    pub parameters: &'a [String],
    /// The page's rows and the matching total.
    pub page: &'a TrialPage,
    /// The query the page answers.
    pub params: &'a TableParams,
}

/// The trials page: the table alone, cheap at any number of trials (one
/// page of rows from the store; no charts). The experiment page's script
/// reloads its table from here when the brushing selection changes.
#[must_use]
pub fn trials(base: &str, v: &TableView<'_>) -> String {
    let href = experiment_href(base, v.experiment);
    let body = format!(
        "<h1><a href=\"{}\">{}</a> · trials</h1>{}",
        escape(&href),
        escape(v.experiment),
        table(base, &format!("{href}/trials"), v)
    );
    layout(
        base,
        &format!("{} · trials", v.experiment),
        v.experiment,
        &body,
    )
}

/// The trial table: a filter form, sortable headers, pager and exports,
/// all plain links and GET forms so it works without JavaScript.
fn table(base: &str, here: &str, v: &TableView<'_>) -> String {
    let mut out = table_filters(here, v);
    if v.page.rows.is_empty() {
        out.push_str("<p class=\"empty\">No trials match.</p></section>");
    } else {
        out.push_str(&table_rows(base, here, v));
        out.push_str(&pager(here, v));
    }
    out
}

/// The section's start: the filter form, the exports and the brushed
/// selection.
fn table_filters(here: &str, v: &TableView<'_>) -> String {
    let p = v.params;
    let mut out = format!(
        "<section id=\"trials\"><h2>Trials</h2><form method=\"get\" action=\"{}\">\
         <input name=\"q\" placeholder=\"name contains\" value=\"{}\"> <select name=\"state\"><option value=\"\">any state</option>",
        escape(here),
        escape(p.q.as_deref().unwrap_or_default())
    );
    for s in TrialState::ALL.map(TrialState::as_str) {
        let selected = if p.state.as_deref() == Some(s) {
            " selected"
        } else {
            ""
        };
        let _ = write!(out, "<option{selected}>{s}</option>");
    }
    for (k, val) in [
        ("sort", &p.sort),
        ("dir", &p.dir),
        ("per", &p.per),
        ("brush", &p.brush),
    ] {
        if let Some(val) = val {
            let _ = write!(
                out,
                "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                escape(val)
            );
        }
    }
    let export = p.with(&[("page", None), ("per", None)]);
    let _ = write!(
        out,
        "</select> <button>filter</button></form><p class=\"exports\">{} matching · export \
         <a href=\"{h}/trials.csv{x}\">CSV</a> <a href=\"{h}/trials.json{x}\">JSON</a></p>",
        v.page.total,
        h = escape(here),
        x = escape(&export),
    );
    if let Some(brush) = p.brush() {
        let _ = write!(
            out,
            "<p class=\"selection\">Selected in the parallel coordinates: {} · <a id=\"clear-brush\" href=\"{}{}\">clear</a></p>",
            escape(&brush.describe(v.metric)),
            escape(here),
            escape(&p.with(&[("brush", None), ("page", None)]))
        );
    }
    out
}

/// The table itself: sortable headers, one row per trial.
fn table_rows(base: &str, here: &str, v: &TableView<'_>) -> String {
    let p = v.params;
    let mut out = String::new();
    out.push_str("<table class=\"trials\"><thead><tr>");
    let current = p.sort.as_deref().unwrap_or("seq");
    let desc = p.dir.as_deref() == Some("desc");
    let header = |key: &str, label: &str, out: &mut String| {
        let (dir, mark) = if current == key {
            if desc {
                (None, " ↓")
            } else {
                (Some("desc".to_owned()), " ↑")
            }
        } else {
            (None, "")
        };
        let link = p.with(&[("sort", Some(key.to_owned())), ("dir", dir), ("page", None)]);
        let _ = write!(
            out,
            "<th><a href=\"{}{}\">{label}{mark}</a></th>",
            escape(here),
            escape(&link)
        );
    };
    header("seq", "#", &mut out);
    header("name", "name", &mut out);
    header("state", "state", &mut out);
    header("objective", &escape(v.metric), &mut out);
    header("completed", "completed", &mut out);
    for name in v.parameters {
        let _ = write!(out, "<th>{}</th>", escape(name));
    }
    out.push_str("</tr></thead><tbody>");
    for t in &v.page.rows {
        let _ = write!(
            out,
            "<tr data-trial=\"{}\"><td>{}</td><td><a href=\"{}\">{}</a></td><td class=\"{}\">{}</td><td>{}</td><td>{}</td>",
            escape(&t.name),
            t.seq,
            escape(&trial_href(base, v.experiment, &t.name)),
            escape(&t.name),
            svg::state_class(t.state),
            t.state.as_str(),
            t.objective.map(|v| v.to_string()).unwrap_or_default(),
            time_text(t.completed_at)
        );
        for name in v.parameters {
            let value = t.parameter(name).unwrap_or_default();
            let _ = write!(out, "<td>{}</td>", escape(value));
        }
        out.push_str("</tr>");
    }
    out
}

/// Previous and next links, and the section's end.
fn pager(here: &str, v: &TableView<'_>) -> String {
    let p = v.params;
    let pages = page_count(v.page.total, p.per());
    let page = p.page().min(pages);
    let mut out = String::new();
    let _ = write!(
        out,
        "</tbody></table><nav class=\"pager\">page {page} of {pages} "
    );
    if page > 1 {
        let _ = write!(
            out,
            "<a rel=\"prev\" href=\"{}{}\">previous</a> ",
            escape(here),
            escape(&p.with(&[("page", Some((page - 1).to_string()))]))
        );
    }
    if page < pages {
        let _ = write!(
            out,
            "<a rel=\"next\" href=\"{}{}\">next</a>",
            escape(here),
            escape(&p.with(&[("page", Some((page + 1).to_string()))]))
        );
    }
    out.push_str("</nav></section>");
    out
}

/// Everything the trial page shows.
#[derive(Debug, Clone)]
pub struct TrialView<'a> {
    /// The experiment's name.
    pub experiment: &'a str,
    /// The trial.
    pub trial: &'a TrialRow,
    /// Its observations, by metric then step.
    pub observations: &'a [ObservationRow],
    /// The end of its stdout.log, if the file exists.
    pub log: Option<&'a str>,
    /// The log file's size in bytes (where following it goes on from).
    pub log_size: u64,
    /// Where the log was looked for.
    pub log_path: &'a str,
    /// Now (Unix ms).
    pub now: i64,
}

/// The trial page.
#[must_use]
pub fn trial(base: &str, v: &TrialView<'_>) -> String {
    let t = v.trial;
    // A failure's message goes on over further lines (the end of its
    // stderr): the first stays beside the state, the rest keeps its lines.
    let (headline, more) = t.message.split_once('\n').unwrap_or((&t.message, ""));
    let mut body = format!(
        "<p><a href=\"{}\">{}</a></p><h1>{}</h1><p class=\"state {}\">{} {} {}</p><p class=\"meta\">#{} · created {} · started {} · completed {}</p>",
        escape(&experiment_href(base, v.experiment)),
        escape(v.experiment),
        escape(&t.name),
        svg::state_class(t.state),
        t.state.as_str(),
        escape(&t.reason),
        escape(headline),
        t.seq,
        time_text(Some(t.created_at)),
        time_text(t.started_at),
        time_text(t.completed_at),
    );
    if !more.is_empty() {
        let _ = write!(body, "<pre id=\"why\">{}</pre>", escape(more));
    }
    if let Some(o) = t.objective {
        let _ = write!(body, "<p id=\"objective\">objective: {o}</p>");
    }
    body.push_str("<h2>Parameters</h2><table class=\"params\"><tbody>");
    for (k, val) in &t.assignment {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(k),
            escape(val)
        );
    }
    body.push_str("</tbody></table>");
    body.push_str(&metrics_section(v));
    body.push_str(&output_section(base, v));
    layout(base, &t.name, v.experiment, &body)
}

/// One chart per metric the trial reported (or its last value when none
/// was a number).
fn metrics_section(v: &TrialView<'_>) -> String {
    let t = v.trial;
    let mut body = String::from("<section id=\"metrics\"><h2>Metrics</h2>");
    if v.observations.is_empty() {
        let since = t.started_at.unwrap_or(t.created_at);
        let what = if t.started_at.is_some() {
            "started"
        } else {
            "was created"
        };
        let _ = write!(
            body,
            "<p class=\"empty\">No observations yet — the trial {what} {} ago.</p>",
            age(v.now, since)
        );
    } else {
        let mut metrics: Vec<&str> = v.observations.iter().map(|o| o.metric.as_str()).collect();
        metrics.dedup();
        for m in metrics {
            let rows: Vec<&ObservationRow> =
                v.observations.iter().filter(|o| o.metric == m).collect();
            let points: Vec<(i64, f64)> = rows
                .iter()
                .filter_map(|o| o.number.filter(|n| n.is_finite()).map(|n| (o.step, n)))
                .collect();
            let _ = write!(body, "<h3>{}</h3>", escape(m));
            if points.is_empty() {
                let last = rows.last().map(|o| o.value.as_str()).unwrap_or_default();
                let _ = write!(
                    body,
                    "<p>{} reports, none numeric; last: {}</p>",
                    rows.len(),
                    escape(last)
                );
            } else {
                body.push_str(&svg::curves(
                    &[svg::Curve {
                        name: t.name.clone(),
                        state: t.state,
                        points,
                    }],
                    m,
                ));
            }
        }
    }
    body.push_str("</section>");
    body
}

/// The end of the trial's output, followed live while it runs.
fn output_section(base: &str, v: &TrialView<'_>) -> String {
    let t = v.trial;
    let mut body = String::from("<section id=\"logs\"><h2>Output</h2>");
    match v.log {
        Some(log) => {
            // A trial that has not finished is followed by the script from
            // the log's end (`…/log?offset=`).
            let follow = if t.state.is_terminal() {
                String::new()
            } else {
                format!(
                    " data-follow=\"{}/log\" data-offset=\"{}\"",
                    escape(&trial_href(base, v.experiment, &t.name)),
                    v.log_size
                )
            };
            if log.is_empty() {
                body.push_str("<p class=\"empty\">The trial has written no output yet.</p>");
            }
            let _ = write!(
                body,
                "<pre class=\"log\" id=\"log\"{follow}>{}</pre>",
                escape(log)
            );
        }
        None if v.log_path.is_empty() => body.push_str(
            "<p class=\"empty\">The trial's output is not kept here: in a cluster, it is the log of \
             the trial's primary pod (<code>kubectl logs</code>).</p>",
        ),
        None => {
            let _ = write!(
                body,
                "<p class=\"empty\">No log at <code>{}</code> (give <code>--trials-dir</code> as for <code>ktune run</code>).</p>",
                escape(v.log_path)
            );
        }
    }
    body.push_str("</section>");
    body
}

/// A page saying what was not found, with a way back.
#[must_use]
pub fn not_found(base: &str, what: &str) -> String {
    layout(
        base,
        "Not found",
        "",
        &format!(
            "<h1>Not found</h1><p>{}</p><p><a href=\"{base}/\">All experiments</a></p>",
            escape(what)
        ),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_trial_page_shows_the_end_of_its_stderr_line_by_line() {
        let row = TrialRow {
            name: "t-2".into(),
            reason: "TrialFailed".into(),
            message: "ExitCode2\nstderr: can't open <train.py>\n(all of its stderr: ktune logs t-2 --stderr)".into(),
            ..TrialRow::example(2, TrialState::Failed)
        };
        let view = TrialView {
            experiment: "e",
            trial: &row,
            observations: &[],
            log: None,
            log_size: 0,
            log_path: "stdout.log",
            now: 0,
        };
        let page = trial("", &view);
        assert!(page.contains("TrialFailed ExitCode2</p>"), "{page}");
        assert!(
            page.contains("<pre id=\"why\">stderr: can&#39;t open &lt;train.py&gt;\n(all of its stderr: ktune logs t-2 --stderr)</pre>"),
            "{page}"
        );
    }
}
