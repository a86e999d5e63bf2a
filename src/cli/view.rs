//! What `ktune run` shows: on a terminal, a progress bar and a table of the
//! running and recently finished trials, refreshed in place; elsewhere (a
//! pipe, CI) one plain line per trial started and ended; with `-o json`, one
//! JSON object per event; and at the end, the result.
//!
//! What to show is decided by pure functions of the events seen so far
//! ([`Board`], [`plain_line`], [`event_json`], [`summary_lines`],
//! [`summary_json`]); the indicatif glue ([`Live`]) only puts their strings
//! on the screen.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use ktune_algorithms::history::TrialState;
use serde_json::{Value, json};

use crate::engine::decide::Counts;
use crate::engine::{Event, RunSummary};

/// How `ktune run` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// For people: a live view on a terminal, plain lines elsewhere.
    Text,
    /// One JSON object per line per event, then a summary object.
    Json,
}

/// What is printed while the experiment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The progress bar and the table of trials (a terminal).
    Live,
    /// One line per trial started and ended.
    Plain,
    /// Nothing until the result.
    Quiet,
    /// JSON lines (only the summary with `--quiet`).
    Json {
        /// Only the summary.
        quiet: bool,
    },
}

impl Mode {
    /// The mode for the command line's choices and whether stdout is a terminal.
    #[must_use]
    pub fn choose(output: Output, quiet: bool, terminal: bool) -> Self {
        match (output, quiet, terminal) {
            (Output::Json, quiet, _) => Self::Json { quiet },
            (Output::Text, true, _) => Self::Quiet,
            (Output::Text, false, true) => Self::Live,
            (Output::Text, false, false) => Self::Plain,
        }
    }
}

/// Finished trials the table keeps below the running ones.
const RECENT: usize = 5;
/// Most running trials the table lists (the others are counted).
const MAX_RUNNING_ROWS: usize = 16;
/// Widest the parameters column is padded to.
const PARAMETERS_WIDTH: usize = 48;

/// `k=v k=v …`.
fn pairs(list: &[(String, String)]) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A duration as a clock: `0:41`, `12:05`, `1:02:03`.
#[must_use]
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// One line of text: control characters (a reason's newlines) become spaces.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The lowercase state word of the plain lines and the table.
fn state_word(state: TrialState) -> String {
    format!("{state:?}").to_lowercase()
}

/// A reason on one line: its first line, and for a failure that quotes
/// its stderr, the last line quoted (`ExitCode2 — stderr: No such file`).
fn brief_reason(reason: &str) -> String {
    let mut lines = reason.lines();
    let first = lines.next().unwrap_or_default();
    match lines.rev().find(|l| l.starts_with("stderr: ")) {
        Some(last) => one_line(&format!("{first} — {last}")),
        None => one_line(reason),
    }
}

/// `objective=V` (or `objective=`), then `  (reason)` unless it succeeded.
fn outcome(state: TrialState, objective: Option<f64>, reason: &str) -> String {
    let value = objective
        .map(|v| format!("objective={v}"))
        .unwrap_or_default();
    if state == TrialState::Succeeded {
        value
    } else if value.is_empty() {
        format!("({})", brief_reason(reason))
    } else {
        format!("{value}  ({})", brief_reason(reason))
    }
}

/// The line saying what an earlier run left of a resumed experiment.
fn resumed_line(experiment: &str, done: usize, rerun: usize) -> String {
    format!("resuming experiment {experiment}: {done} done, {rerun} to rerun")
}

/// The plain line for an event (`started   NAME  k=v …`,
/// `succeeded NAME  objective=…`, `failed    NAME  objective=  (reason)`),
/// or `None` for events plain output leaves out.
#[must_use]
pub fn plain_line(event: &Event) -> Option<String> {
    match event {
        Event::Started { trial, parameters } => {
            Some(format!("started   {trial}  {}", pairs(parameters)))
        }
        Event::Progress { .. } | Event::Reported { .. } => None,
        Event::Resumed {
            experiment,
            done,
            rerun,
        } => Some(resumed_line(experiment, *done, *rerun)),
        Event::Interrupted { trial } => Some(format!(
            "stopped   {trial}  (interrupted: it runs again on resume)"
        )),
        Event::Finished {
            trial,
            state,
            objective,
            reason,
        } => {
            let value = objective
                .map(|v| format!("objective={v}"))
                .unwrap_or_default();
            // A failure's further lines (the end of its stderr) follow,
            // indented under the trial.
            let mut lines = reason.lines();
            let why = match lines.next() {
                Some(first) if *state != TrialState::Succeeded => format!("  ({first})"),
                _ => String::new(),
            };
            let mut text = format!("{:<9} {trial}  {value}{why}", state_word(*state));
            if *state != TrialState::Succeeded {
                for more in lines {
                    let _ = write!(text, "\n          {more}");
                }
            }
            Some(text)
        }
    }
}

/// Strings as a JSON object, in the given order's keys.
fn object(list: &[(String, String)]) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Trials by state as JSON.
#[must_use]
pub fn counts_json(c: &Counts) -> Value {
    json!({
        "pending": c.pending,
        "running": c.running,
        "succeeded": c.succeeded,
        "failed": c.failed,
        "killed": c.killed,
        "earlyStopped": c.early_stopped,
        "metricsUnavailable": c.metrics_unavailable,
    })
}

/// The JSON line for an event.
#[must_use]
pub fn event_json(event: &Event) -> Value {
    match event {
        Event::Progress { counts } => json!({
            "event": "progress",
            "counts": counts_json(counts),
            "completed": counts.completed(),
            "total": counts.total(),
        }),
        Event::Started { trial, parameters } => json!({
            "event": "started",
            "trial": trial,
            "parameters": object(parameters),
        }),
        Event::Reported { trial, latest } => json!({
            "event": "reported",
            "trial": trial,
            "metrics": object(latest),
        }),
        Event::Resumed {
            experiment,
            done,
            rerun,
        } => json!({
            "event": "resumed",
            "experiment": experiment,
            "done": done,
            "rerun": rerun,
        }),
        Event::Interrupted { trial } => json!({
            "event": "interrupted",
            "trial": trial,
        }),
        Event::Finished {
            trial,
            state,
            objective,
            reason,
        } => json!({
            "event": "finished",
            "trial": trial,
            "state": state.as_str(),
            "objective": objective.filter(|v| v.is_finite()),
            "reason": reason,
        }),
    }
}

/// The final JSON line.
#[must_use]
pub fn summary_json(experiment: &str, summary: &RunSummary, metrics: &[(String, String)]) -> Value {
    let best = summary.best.as_ref().map(|b| {
        json!({
            "trial": b.name,
            "objective": Some(b.objective).filter(|v| v.is_finite()),
            "parameters": object(&b.parameters),
            "metrics": object(metrics),
        })
    });
    json!({
        "event": "summary",
        "experiment": experiment,
        "state": summary.state.as_str(),
        "reason": summary.reason,
        "closed": summary.closed,
        "counts": counts_json(&summary.counts),
        "best": best,
        "failures": summary
            .failures
            .iter()
            .map(|(trial, message)| json!({"trial": trial, "message": message}))
            .collect::<Vec<_>>(),
        "interrupted": summary.interrupted,
    })
}

/// The result for people: the counts by state, the best trial with its
/// parameters and metrics, and what to do next when interrupted.
#[must_use]
pub fn summary_lines(
    experiment: &str,
    summary: &RunSummary,
    metrics: &[(String, String)],
) -> Vec<String> {
    let mut lines = Vec::new();
    if summary.closed {
        lines.push(
            "experiment already finished; its resumePolicy (Never) keeps it closed. \
             To run more trials, set `resumePolicy: LongRunning` and raise maxTrialCount."
                .to_owned(),
        );
    }
    let c = &summary.counts;
    lines.push(String::new());
    lines.push(format!(
        "experiment {experiment}: {:?} {}",
        summary.state, summary.reason
    ));
    lines.push(format!(
        "trials: {} succeeded, {} failed, {} early-stopped, {} metrics-unavailable, {} killed",
        c.succeeded, c.failed, c.early_stopped, c.metrics_unavailable, c.killed
    ));
    if let Some(best) = &summary.best {
        // A text objective (DARTS's `Best-Genotype=Genotype(…)`) is best
        // by default; its value is among the metrics, not a number.
        let objective = if best.objective.is_finite() {
            best.objective.to_string()
        } else {
            "(text: see the metrics below)".to_owned()
        };
        lines.push(format!(
            "best trial: {}  objective={objective}  {}",
            best.name,
            pairs(&best.parameters)
        ));
        if !metrics.is_empty() {
            lines.push(format!(
                "  last reported metrics of {}: {}",
                best.name,
                pairs(metrics)
            ));
        }
    }
    failure_lines(&summary.failures, &mut lines);
    if !matches!(
        summary.state,
        crate::store::ExperimentState::Succeeded | crate::store::ExperimentState::Failed
    ) {
        let mut line = "interrupted: run the same command again to resume".to_owned();
        if summary.interrupted > 0 {
            let _ = write!(
                line,
                " ({} stopped trial(s) run again, in their own folders)",
                summary.interrupted
            );
        }
        lines.push(line);
    }
    lines
}

/// The last failed trials and why (their messages quote their stderr).
fn failure_lines(failures: &[(String, String)], lines: &mut Vec<String>) {
    if failures.is_empty() {
        return;
    }
    lines.push("last failed trials:".to_owned());
    for (trial, message) in failures {
        let mut message_lines = message.lines();
        lines.push(format!(
            "  {trial}: {}",
            message_lines.next().unwrap_or_default()
        ));
        lines.extend(message_lines.map(|l| format!("    {l}")));
    }
}

/// The latest value of each metric of each trial seen reporting, merged
/// over its reports.
#[derive(Debug, Default)]
pub struct Metrics(HashMap<String, BTreeMap<String, String>>);

impl Metrics {
    /// Remembers a `Reported` event's values.
    pub fn record(&mut self, event: &Event) {
        if let Event::Reported { trial, latest } = event {
            let seen = self.0.entry(trial.clone()).or_default();
            for (k, v) in latest {
                seen.insert(k.clone(), v.clone());
            }
        }
    }

    /// A trial's latest metrics, by name; `None` when it never reported here.
    #[must_use]
    pub fn of(&self, trial: &str) -> Option<Vec<(String, String)>> {
        self.0
            .get(trial)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

#[derive(Debug, Clone)]
struct Running {
    name: String,
    parameters: Vec<(String, String)>,
    metrics: Vec<(String, String)>,
    since: Instant,
}

#[derive(Debug, Clone)]
struct Done {
    name: String,
    parameters: Vec<(String, String)>,
    state: TrialState,
    objective: Option<f64>,
    reason: String,
    took: Option<Duration>,
}

/// What the live view shows: the counts, the running trials in the order
/// they started, and the last few finished ones, newest first.
#[derive(Debug, Default)]
pub struct Board {
    counts: Counts,
    running: Vec<Running>,
    recent: VecDeque<Done>,
}

impl Board {
    /// Takes an event in, at `now`.
    pub fn apply(&mut self, event: &Event, now: Instant) {
        match event {
            Event::Progress { counts } => self.counts = *counts,
            Event::Resumed { .. } => {}
            Event::Interrupted { trial } => self.running.retain(|r| &r.name != trial),
            Event::Started { trial, parameters } => {
                self.running.retain(|r| &r.name != trial);
                self.running.push(Running {
                    name: trial.clone(),
                    parameters: parameters.clone(),
                    metrics: Vec::new(),
                    since: now,
                });
            }
            Event::Reported { trial, latest } => {
                if let Some(r) = self.running.iter_mut().find(|r| &r.name == trial) {
                    for (k, v) in latest {
                        match r.metrics.iter_mut().find(|(name, _)| name == k) {
                            Some(slot) => slot.1.clone_from(v),
                            None => r.metrics.push((k.clone(), v.clone())),
                        }
                    }
                }
            }
            Event::Finished {
                trial,
                state,
                objective,
                reason,
            } => {
                let started = self.running.iter().position(|r| &r.name == trial);
                let run = started.map(|i| self.running.remove(i));
                self.recent.push_front(Done {
                    name: trial.clone(),
                    parameters: run
                        .as_ref()
                        .map(|r| r.parameters.clone())
                        .unwrap_or_default(),
                    state: *state,
                    objective: *objective,
                    reason: reason.clone(),
                    took: run.map(|r| now.saturating_duration_since(r.since)),
                });
                self.recent.truncate(RECENT);
            }
        }
    }

    /// The trials by state, as last reported.
    #[must_use]
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The table's rows at `now`: running trials (name, elapsed, parameters,
    /// latest metrics), then the recent finished ones (state, time taken,
    /// parameters, objective). Columns are aligned; the caller truncates
    /// each row to the terminal's width.
    #[must_use]
    pub fn rows(&self, now: Instant) -> Vec<String> {
        struct Row {
            state: String,
            name: String,
            time: String,
            parameters: String,
            result: String,
        }
        let shown = self.running.len().min(MAX_RUNNING_ROWS);
        let mut rows: Vec<Row> = self.running[..shown]
            .iter()
            .map(|r| Row {
                state: "running".to_owned(),
                name: r.name.clone(),
                time: clock(now.saturating_duration_since(r.since)),
                parameters: pairs(&r.parameters),
                result: pairs(&r.metrics),
            })
            .collect();
        rows.extend(self.recent.iter().map(|d| Row {
            state: state_word(d.state),
            name: d.name.clone(),
            time: d.took.map(clock).unwrap_or_default(),
            parameters: pairs(&d.parameters),
            result: outcome(d.state, d.objective, &d.reason),
        }));
        let width =
            |f: fn(&Row) -> &String| rows.iter().map(|r| f(r).chars().count()).max().unwrap_or(0);
        let state_w = width(|r| &r.state);
        let name_w = width(|r| &r.name);
        let time_w = width(|r| &r.time);
        let parameters_w = width(|r| &r.parameters).min(PARAMETERS_WIDTH);
        let mut lines: Vec<String> = rows
            .iter()
            .map(|r| {
                // Columns empty in every row take no room.
                let mut line = format!("{:<state_w$} {:<name_w$}", r.state, r.name);
                if time_w > 0 {
                    let _ = write!(line, " {:>time_w$}", r.time);
                }
                if parameters_w > 0 {
                    let _ = write!(line, "  {:<parameters_w$}", r.parameters);
                }
                let _ = write!(line, "  {}", r.result);
                one_line(line.trim_end())
            })
            .collect();
        let hidden = self.running.len() - shown;
        if hidden > 0 {
            lines.insert(shown, format!("… and {hidden} more running"));
        }
        lines
    }
}

/// `2 running, 5 succeeded, 1 failed`: the states with trials in them.
#[must_use]
pub fn counts_brief(c: &Counts) -> String {
    [
        (c.pending, "pending"),
        (c.running, "running"),
        (c.succeeded, "succeeded"),
        (c.failed, "failed"),
        (c.early_stopped, "early-stopped"),
        (c.metrics_unavailable, "metrics-unavailable"),
        (c.killed, "killed"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, word)| format!("{n} {word}"))
    .collect::<Vec<_>>()
    .join(", ")
}

/// How fast trials complete in this run, for the ETA.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Trials completed when the view started (a resumed run's earlier ones).
    base: Option<u32>,
    /// When the view started.
    start: Instant,
    /// Trials completed in this run and when the last one did.
    last: Option<(u32, Instant)>,
}

impl Pace {
    /// A pace starting at `start`.
    #[must_use]
    pub fn new(start: Instant) -> Self {
        Self {
            base: None,
            start,
            last: None,
        }
    }

    /// Notes the completed count at `now`.
    pub fn observe(&mut self, completed: u32, now: Instant) {
        let base = *self.base.get_or_insert(completed);
        let done = completed.saturating_sub(base);
        if done > 0 && self.last.is_none_or(|(n, _)| n != done) {
            self.last = Some((done, now));
        }
    }

    /// Time left for `remaining` more trials at `now`: the mean time per
    /// trial completed in this run so far, times those left, less the time
    /// since the last one completed. `None` before any completed.
    #[must_use]
    pub fn eta(&self, remaining: u32, now: Instant) -> Option<Duration> {
        let (done, at) = self.last?;
        if remaining == 0 {
            return Some(Duration::ZERO);
        }
        let per_trial = at.saturating_duration_since(self.start) / done;
        Some(
            per_trial
                .saturating_mul(remaining)
                .saturating_sub(now.saturating_duration_since(at)),
        )
    }
}

/// The bar's template: with a budget, `[0:12] ███░░ 7/20 trials  ETA 0:41`;
/// without, a spinner and the count.
#[must_use]
pub fn bar_template(max: Option<u32>) -> &'static str {
    if max.is_some() {
        "[{clock}] {bar:30.cyan/blue} {pos}/{len} trials  ETA {left}  {wide_msg}"
    } else {
        "[{clock}] {spinner} {pos} trials done  {wide_msg}"
    }
}

/// The live view: a bar and one line per table row in a [`MultiProgress`]
/// on stdout, with the table redrawn every second so elapsed times move.
#[derive(Debug)]
pub struct Live {
    screen: Arc<Mutex<Screen>>,
    pace: Arc<Mutex<Pace>>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug)]
struct Screen {
    multi: MultiProgress,
    bar: ProgressBar,
    rows: Vec<ProgressBar>,
    board: Board,
}

/// A table row: the message, cut to the terminal's width.
fn row_style() -> ProgressStyle {
    ProgressStyle::with_template("  {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Screen {
    /// Puts the board's rows on the screen, adding or removing lines.
    fn draw(&mut self, now: Instant) {
        let lines = self.board.rows(now);
        while self.rows.len() > lines.len() {
            if let Some(row) = self.rows.pop() {
                row.finish_and_clear();
                self.multi.remove(&row);
            }
        }
        while self.rows.len() < lines.len() {
            let row = self
                .multi
                .add(ProgressBar::new_spinner().with_style(row_style()));
            self.rows.push(row);
        }
        for (row, line) in self.rows.iter().zip(lines) {
            row.set_message(line);
        }
        self.bar.set_message(counts_brief(&self.board.counts()));
    }
}

impl Live {
    /// Starts the view on stdout; `max` is the experiment's maxTrialCount.
    /// Must be called within a Tokio runtime (it spawns the redraw task).
    #[must_use]
    pub fn start(max: Option<u32>) -> Self {
        let now = Instant::now();
        let pace = Arc::new(Mutex::new(Pace::new(now)));
        let clock_key = |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&clock(state.elapsed()));
        };
        let eta_pace = Arc::clone(&pace);
        let eta_key = move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let remaining = state
                .len()
                .map(|len| len.saturating_sub(state.pos()))
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            let eta = remaining.and_then(|n| lock(&eta_pace).eta(n, Instant::now()));
            let _ = w.write_str(&eta.map_or_else(|| "-".to_owned(), clock));
        };
        let style = ProgressStyle::with_template(bar_template(max))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key("clock", clock_key)
            .with_key("left", eta_key)
            .progress_chars("█░ ");
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let bar = match max {
            Some(n) => ProgressBar::new(u64::from(n)),
            None => ProgressBar::no_length(),
        };
        let bar = multi.add(bar.with_style(style));
        bar.enable_steady_tick(Duration::from_millis(200));
        let screen = Arc::new(Mutex::new(Screen {
            multi,
            bar,
            rows: Vec::new(),
            board: Board::default(),
        }));
        let redraw = Arc::clone(&screen);
        let ticker = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                lock(&redraw).draw(Instant::now());
            }
        });
        Self {
            screen,
            pace,
            ticker: Some(ticker),
        }
    }

    /// Takes an event in and redraws.
    pub fn event(&mut self, event: &Event) {
        let now = Instant::now();
        let mut screen = lock(&self.screen);
        screen.board.apply(event, now);
        if let Event::Progress { counts } = event {
            lock(&self.pace).observe(counts.completed(), now);
            screen.bar.set_position(u64::from(counts.completed()));
        }
        screen.draw(now);
    }

    /// Stops redrawing: the table goes, the bar stays as it last was.
    pub fn finish(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
        let mut screen = lock(&self.screen);
        for row in std::mem::take(&mut screen.rows) {
            row.finish_and_clear();
            screen.multi.remove(&row);
        }
        screen.bar.disable_steady_tick();
        screen.bar.abandon();
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
    }
}

/// The view `ktune run` prints through: one of the [`Mode`]s, and the
/// latest metrics of every trial it saw report (for the result).
#[derive(Debug)]
pub struct View {
    mode: Mode,
    max_trials: Option<u32>,
    /// Started with the first event about a trial, so that what is logged
    /// while the experiment is set up or before its first trial starts
    /// (the warning that images are ignored) does not cut through the bar.
    live: Option<Live>,
    /// The last progress seen before the live view started.
    early: Option<Event>,
    metrics: Metrics,
}

/// Writes one line to stdout; a closed stdout (`| head`) is not an error
/// worth stopping an experiment for.
fn out_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", super::printable::escape_controls(line));
}

impl View {
    /// A view in `mode`; [`Mode::Live`] needs a Tokio runtime when the
    /// first event comes.
    #[must_use]
    pub fn new(mode: Mode, max_trials: Option<u32>) -> Self {
        Self {
            mode,
            max_trials,
            live: None,
            early: None,
            metrics: Metrics::default(),
        }
    }

    /// Shows an event.
    pub fn event(&mut self, event: &Event) {
        self.metrics.record(event);
        match self.mode {
            Mode::Live => self.live_event(event),
            Mode::Plain => {
                if let Some(line) = plain_line(event) {
                    out_line(&line);
                }
            }
            Mode::Json { quiet: false } => out_line(&event_json(event).to_string()),
            Mode::Quiet | Mode::Json { quiet: true } => {}
        }
    }

    /// Shows an event in the live view, started at the first event about
    /// a trial; what comes before is kept (progress) or printed (resuming).
    fn live_event(&mut self, event: &Event) {
        if self.live.is_none() {
            match event {
                Event::Progress { .. } => {
                    self.early = Some(event.clone());
                    return;
                }
                Event::Resumed { .. } => {
                    if let Some(line) = plain_line(event) {
                        out_line(&line);
                    }
                    return;
                }
                _ => {}
            }
        }
        let max = self.max_trials;
        let early = self.early.take();
        let live = self.live.get_or_insert_with(|| Live::start(max));
        if let Some(progress) = early {
            live.event(&progress);
        }
        live.event(event);
    }

    /// The latest metrics a trial reported during this run.
    #[must_use]
    pub fn metrics_of(&self, trial: &str) -> Option<Vec<(String, String)>> {
        self.metrics.of(trial)
    }

    /// Ends the live view without a result (the run failed).
    pub fn abandon(&mut self) {
        if let Some(live) = &mut self.live {
            live.finish();
        }
    }

    /// Ends the live view and prints the result.
    ///
    /// # Errors
    /// When stdout cannot be written.
    pub fn finish(
        &mut self,
        experiment: &str,
        summary: &RunSummary,
        metrics: &[(String, String)],
    ) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        if let Some(live) = &mut self.live {
            live.finish();
            // The bar stays, without ending its line.
            writeln!(out)?;
        }
        match self.mode {
            Mode::Json { .. } => writeln!(out, "{}", summary_json(experiment, summary, metrics)),
            Mode::Live | Mode::Plain | Mode::Quiet => {
                let mut text = String::new();
                for line in summary_lines(experiment, summary, metrics) {
                    let _ = writeln!(text, "{line}");
                }
                out.write_all(super::printable::escape_controls(&text).as_bytes())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engine::BestTrial;
    use crate::store::ExperimentState;

    fn kv(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn started(name: &str, params: &[(&str, &str)]) -> Event {
        Event::Started {
            trial: name.to_owned(),
            parameters: kv(params),
        }
    }

    fn reported(name: &str, metrics: &[(&str, &str)]) -> Event {
        Event::Reported {
            trial: name.to_owned(),
            latest: kv(metrics),
        }
    }

    fn finished(name: &str, state: TrialState, objective: Option<f64>, reason: &str) -> Event {
        Event::Finished {
            trial: name.to_owned(),
            state,
            objective,
            reason: reason.to_owned(),
        }
    }

    fn summary(best: bool) -> RunSummary {
        RunSummary {
            state: ExperimentState::Succeeded,
            reason: "ExperimentMaxTrialsReached".to_owned(),
            counts: Counts {
                succeeded: 2,
                failed: 1,
                ..Counts::default()
            },
            best: best.then(|| BestTrial {
                name: "exp-0002".to_owned(),
                parameters: kv(&[("lr", "0.1"), ("depth", "3")]),
                objective: 0.25,
            }),
            closed: false,
            failures: Vec::new(),
            interrupted: 0,
        }
    }

    #[test]
    fn modes_follow_the_flags_and_the_terminal() {
        assert_eq!(Mode::choose(Output::Text, false, true), Mode::Live);
        assert_eq!(Mode::choose(Output::Text, false, false), Mode::Plain);
        assert_eq!(Mode::choose(Output::Text, true, true), Mode::Quiet);
        assert_eq!(
            Mode::choose(Output::Json, false, true),
            Mode::Json { quiet: false }
        );
        assert_eq!(
            Mode::choose(Output::Json, true, false),
            Mode::Json { quiet: true }
        );
    }

    #[test]
    fn plain_lines_keep_their_format() {
        assert_eq!(
            plain_line(&started("exp-0001", &[("lr", "0.1"), ("depth", "3")])).unwrap(),
            "started   exp-0001  lr=0.1 depth=3"
        );
        assert_eq!(
            plain_line(&finished("exp-0001", TrialState::Succeeded, Some(0.5), "x")).unwrap(),
            "succeeded exp-0001  objective=0.5"
        );
        assert_eq!(
            plain_line(&finished("exp-0002", TrialState::Failed, None, "exit 1")).unwrap(),
            "failed    exp-0002    (exit 1)"
        );
        assert_eq!(
            plain_line(&finished("c-0001", TrialState::Killed, None, "stopped")).unwrap(),
            "killed    c-0001    (stopped)"
        );
        assert!(plain_line(&reported("exp-0001", &[("loss", "1")])).is_none());
        assert!(
            plain_line(&Event::Progress {
                counts: Counts::default()
            })
            .is_none()
        );
    }

    #[test]
    fn clocks_read_like_clocks() {
        assert_eq!(clock(Duration::from_secs(0)), "0:00");
        assert_eq!(clock(Duration::from_secs(41)), "0:41");
        assert_eq!(clock(Duration::from_secs(725)), "12:05");
        assert_eq!(clock(Duration::from_secs(3723)), "1:02:03");
    }

    #[test]
    fn the_board_lists_running_then_recent_trials() {
        let t0 = Instant::now();
        let mut board = Board::default();
        board.apply(&started("exp-0001", &[("lr", "0.1")]), t0);
        board.apply(&started("exp-0002", &[("lr", "0.25")]), t0);
        board.apply(&reported("exp-0001", &[("loss", "0.9")]), t0);
        board.apply(
            &reported("exp-0001", &[("loss", "0.5"), ("acc", "0.8")]),
            t0,
        );
        board.apply(
            &finished(
                "exp-0002",
                TrialState::Failed,
                None,
                "exit status 1\nstack trace",
            ),
            t0 + Duration::from_secs(3),
        );
        let rows = board.rows(t0 + Duration::from_secs(12));
        assert_eq!(
            rows,
            vec![
                "running exp-0001 0:12  lr=0.1   loss=0.5 acc=0.8",
                "failed  exp-0002 0:03  lr=0.25  (exit status 1 stack trace)",
            ]
        );
        board.apply(
            &finished("exp-0001", TrialState::Succeeded, Some(0.5), ""),
            t0 + Duration::from_secs(20),
        );
        let rows = board.rows(t0 + Duration::from_secs(30));
        assert_eq!(rows[0], "succeeded exp-0001 0:20  lr=0.1   objective=0.5");
        assert!(rows.iter().all(|r| !r.starts_with("running")));
    }

    #[test]
    fn the_board_keeps_a_few_recent_trials_and_counts_hidden_running_ones() {
        let t0 = Instant::now();
        let mut board = Board::default();
        for i in 0..(RECENT + 3) {
            let name = format!("t-{i:04}");
            board.apply(&started(&name, &[]), t0);
            board.apply(&finished(&name, TrialState::Succeeded, Some(1.0), ""), t0);
        }
        let rows = board.rows(t0);
        assert_eq!(rows.len(), RECENT);
        assert!(
            rows[0].contains(&format!("t-{:04}", RECENT + 2)),
            "{rows:?}"
        );
        for i in 0..(MAX_RUNNING_ROWS + 2) {
            board.apply(&started(&format!("r-{i:04}"), &[]), t0);
        }
        let rows = board.rows(t0);
        assert_eq!(rows.len(), MAX_RUNNING_ROWS + 1 + RECENT);
        assert_eq!(rows[MAX_RUNNING_ROWS], "… and 2 more running");
    }

    #[test]
    fn a_finish_never_seen_starting_still_shows() {
        let t0 = Instant::now();
        let mut board = Board::default();
        board.apply(&finished("old", TrialState::Killed, None, "stopped"), t0);
        assert_eq!(board.rows(t0), vec!["killed old  (stopped)"]);
    }

    #[test]
    fn the_pace_gives_an_eta_after_the_first_completion() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0);
        pace.observe(4, t0); // resumed with 4 done: not this run's pace
        assert_eq!(pace.eta(10, t0 + Duration::from_secs(5)), None);
        pace.observe(6, t0 + Duration::from_secs(20));
        // 10 s per trial, 10 left, 4 s since the last one.
        assert_eq!(
            pace.eta(10, t0 + Duration::from_secs(24)),
            Some(Duration::from_secs(96))
        );
        assert_eq!(
            pace.eta(0, t0 + Duration::from_secs(24)),
            Some(Duration::ZERO)
        );
        // Progress events that change nothing keep the last completion time.
        pace.observe(6, t0 + Duration::from_secs(22));
        assert_eq!(
            pace.eta(1, t0 + Duration::from_secs(25)),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn counts_brief_names_only_occupied_states() {
        let c = Counts {
            running: 2,
            succeeded: 5,
            failed: 1,
            ..Counts::default()
        };
        assert_eq!(counts_brief(&c), "2 running, 5 succeeded, 1 failed");
        assert_eq!(counts_brief(&Counts::default()), "");
    }

    #[test]
    fn templates_parse() {
        for max in [Some(10), None] {
            assert!(ProgressStyle::with_template(bar_template(max)).is_ok());
        }
    }

    #[test]
    fn metrics_merge_across_reports() {
        let mut m = Metrics::default();
        m.record(&reported("a", &[("loss", "0.9"), ("acc", "0.1")]));
        m.record(&reported("a", &[("loss", "0.4")]));
        assert_eq!(m.of("a").unwrap(), kv(&[("acc", "0.1"), ("loss", "0.4")]));
        assert_eq!(m.of("b"), None);
    }

    #[test]
    fn event_json_has_stable_fields() {
        let v = event_json(&started("a", &[("lr", "0.1")]));
        assert_eq!(
            v,
            json!({"event": "started", "trial": "a", "parameters": {"lr": "0.1"}})
        );
        let v = event_json(&finished(
            "a",
            TrialState::EarlyStopped,
            Some(f64::NAN),
            "r",
        ));
        assert_eq!(
            v,
            json!({"event": "finished", "trial": "a", "state": "EarlyStopped", "objective": null, "reason": "r"})
        );
        let v = event_json(&reported("a", &[("loss", "0.5")]));
        assert_eq!(v["metrics"]["loss"], "0.5");
        let v = event_json(&Event::Progress {
            counts: Counts {
                running: 1,
                succeeded: 2,
                ..Counts::default()
            },
        });
        assert_eq!(v["counts"]["succeeded"], 2);
        assert_eq!(v["counts"]["earlyStopped"], 0);
        assert_eq!(v["completed"], 2);
        assert_eq!(v["total"], 3);
    }

    const FAILURE: &str = "ExitCode2\nstderr: python3: can't open file 'x.py'\n(all of its stderr: ktune logs exp-0003 --stderr)";

    #[test]
    fn a_failure_shows_the_end_of_its_stderr_everywhere() {
        let event = finished("exp-0003", TrialState::Failed, None, FAILURE);
        assert_eq!(
            plain_line(&event).unwrap(),
            "failed    exp-0003    (ExitCode2)\n          stderr: python3: can't open file 'x.py'\n          (all of its stderr: ktune logs exp-0003 --stderr)"
        );
        let mut board = Board::default();
        let now = Instant::now();
        board.apply(&event, now);
        assert!(
            board.rows(now)[0].ends_with("(ExitCode2 — stderr: python3: can't open file 'x.py')"),
            "{:?}",
            board.rows(now)
        );
        let mut failed = summary(false);
        failed.failures = vec![("exp-0003".to_owned(), FAILURE.to_owned())];
        let lines = summary_lines("exp", &failed, &[]);
        let at = lines
            .iter()
            .position(|l| l == "last failed trials:")
            .unwrap();
        assert_eq!(
            lines[at + 1..at + 4],
            [
                "  exp-0003: ExitCode2",
                "    stderr: python3: can't open file 'x.py'",
                "    (all of its stderr: ktune logs exp-0003 --stderr)",
            ]
        );
        assert_eq!(
            summary_json("exp", &failed, &[])["failures"][0]["message"],
            FAILURE
        );
    }

    #[test]
    fn a_resumed_run_says_what_was_left_and_an_interrupted_trial_reruns() {
        let resumed = Event::Resumed {
            experiment: "exp".to_owned(),
            done: 3,
            rerun: 2,
        };
        assert_eq!(
            plain_line(&resumed).unwrap(),
            "resuming experiment exp: 3 done, 2 to rerun"
        );
        assert_eq!(event_json(&resumed)["rerun"], 2);
        let stopped = Event::Interrupted {
            trial: "exp-0004".to_owned(),
        };
        assert!(
            plain_line(&stopped)
                .unwrap()
                .starts_with("stopped   exp-0004")
        );
        let mut text = summary(true);
        if let Some(best) = text.best.as_mut() {
            best.objective = f64::NAN;
        }
        let lines = summary_lines(
            "exp",
            &text,
            &kv(&[("Best-Genotype", "Genotype(normal=[])")]),
        );
        assert_eq!(
            lines[3],
            "best trial: exp-0002  objective=(text: see the metrics below)  lr=0.1 depth=3"
        );
        let mut interrupted = summary(false);
        interrupted.state = ExperimentState::Running;
        interrupted.interrupted = 2;
        assert_eq!(
            summary_lines("exp", &interrupted, &[]).last().unwrap(),
            "interrupted: run the same command again to resume (2 stopped trial(s) run again, in their own folders)"
        );
    }

    #[test]
    fn the_summary_names_the_best_trial_its_parameters_and_metrics() {
        let metrics = kv(&[("acc", "0.9"), ("loss", "0.25")]);
        let lines = summary_lines("exp", &summary(true), &metrics);
        assert_eq!(
            lines,
            vec![
                "",
                "experiment exp: Succeeded ExperimentMaxTrialsReached",
                "trials: 2 succeeded, 1 failed, 0 early-stopped, 0 metrics-unavailable, 0 killed",
                "best trial: exp-0002  objective=0.25  lr=0.1 depth=3",
                "  last reported metrics of exp-0002: acc=0.9 loss=0.25",
            ]
        );
        let mut interrupted = summary(false);
        interrupted.state = ExperimentState::Running;
        let lines = summary_lines("exp", &interrupted, &[]);
        assert!(!lines.iter().any(|l| l.starts_with("best trial")));
        assert_eq!(
            lines.last().unwrap(),
            "interrupted: run the same command again to resume"
        );
        let json = summary_json("exp", &summary(true), &metrics);
        assert_eq!(json["event"], "summary");
        assert_eq!(json["experiment"], "exp");
        assert_eq!(json["state"], "Succeeded");
        assert_eq!(json["counts"]["failed"], 1);
        assert_eq!(json["best"]["trial"], "exp-0002");
        assert_eq!(json["best"]["objective"], 0.25);
        assert_eq!(json["best"]["parameters"]["depth"], "3");
        assert_eq!(json["best"]["metrics"]["loss"], "0.25");
        assert_eq!(
            summary_json("exp", &summary(false), &[])["best"],
            Value::Null
        );
    }
}
