//! `ktune ui`: a read-only web dashboard over the store `ktune run` writes,
//! served from the same binary. Pages are server-rendered HTML with SVG
//! charts (they read without JavaScript); a small embedded script refreshes
//! them from server-sent events. Nothing here writes to the store.
//!
//! Routes, under an optional base path: `/` (experiments),
//! `/experiments/{name}` (history, curves, parameters, importance, trial
//! table, spec), `/experiments/{name}/trials.csv|trials.json` (exports with
//! the table's filter and order), `/experiments/{name}/spec.yaml`,
//! `/experiments/{name}/trials` (the table alone),
//! `/experiments/{name}/trials/{trial}` (parameters, metrics, output),
//! `/experiments/{name}/trials/{trial}/log?offset=` (following the output),
//! `/events` (server-sent events), `/assets/…`.

mod assets;
pub mod brush;
mod cache;
pub mod data;
mod html;
mod live;
pub mod pages;
pub mod paths;
pub mod ped_anova;
pub mod svg;

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio::sync::broadcast;

pub use html::escape;

use crate::engine::decide::Counts;
use crate::store::{ExperimentRecord, SqlStore, Store as _, StoreError, TrialPage, TrialRow};
use data::TableParams;
use pages::ExperimentSummary;

/// How often the store is polled for live updates unless told otherwise:
/// one cheap query per poll ([`SqlStore::change_marks`]) while a page
/// listens, none otherwise.
pub const DEFAULT_POLL: Duration = Duration::from_millis(100);

/// How much of a trial's output the trial page shows (its end).
const LOG_TAIL_BYTES: u64 = 64 * 1024;

/// How the dashboard is served.
#[derive(Debug, Clone)]
pub struct Config {
    /// Prefix of every route (`""` or `/something`, no trailing slash), for
    /// serving behind a reverse proxy.
    pub base_path: String,
    /// The folder `ktune run` kept trials in (for their output); `None`
    /// where trials' output is not on this machine (the controller: it is
    /// in the pods' logs).
    pub trials_dir: Option<PathBuf>,
    /// How often the store is polled for live updates.
    pub poll: Duration,
}

/// Why a page could not be served.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such experiment or trial.
    #[error("{0}")]
    NotFound(String),
    /// The spec could not be written as YAML.
    #[error("writing the spec as YAML: {0}")]
    Yaml(#[from] serde_saphyr::SerializeError),
    /// JSON export failed.
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// What every handler shares.
#[derive(Debug)]
struct AppState {
    store: SqlStore,
    cache: cache::TrialCache,
    config: Config,
    changes: broadcast::Sender<String>,
}

type Shared = State<Arc<AppState>>;

/// An error response that still reads as a page.
struct PageError {
    base: String,
    error: UiError,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self.error {
            UiError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                Html(pages::not_found(&self.base, &what)),
            )
                .into_response(),
            error => {
                tracing::error!(%error, "ui: page failed");
                let body = pages::layout(
                    &self.base,
                    "Error",
                    "",
                    &format!("<h1>Error</h1><pre>{}</pre>", escape(&error.to_string())),
                );
                (StatusCode::INTERNAL_SERVER_ERROR, Html(body)).into_response()
            }
        }
    }
}

type PageResult<T> = Result<T, PageError>;

impl AppState {
    fn fail(&self, error: impl Into<UiError>) -> PageError {
        PageError {
            base: self.config.base_path.clone(),
            error: error.into(),
        }
    }

    async fn experiment(&self, name: &str) -> PageResult<ExperimentRecord> {
        self.store
            .experiment(name)
            .await
            .map_err(|e| self.fail(e))?
            .ok_or_else(|| self.fail(UiError::NotFound(format!("No experiment named {name:?}."))))
    }

    /// The experiment `name` and its trial `trial`, or a 404 naming which.
    async fn trial(&self, name: &str, trial: &str) -> PageResult<(ExperimentRecord, TrialRow)> {
        let record = self.experiment(name).await?;
        let row = self
            .store
            .trial_named(record.id, trial)
            .await
            .map_err(|e| self.fail(e))?
            .ok_or_else(|| {
                self.fail(UiError::NotFound(format!(
                    "No trial named {trial:?} in experiment {name:?}."
                )))
            })?;
        Ok((record, row))
    }

    /// The trial table's rows (with `all`, every matching row): filtered,
    /// ordered and paged in SQL; a parallel-coordinates selection, which
    /// portable SQL cannot express over the stored assignment JSON, is
    /// applied here to the rows the SQL filter matched.
    async fn table_page(
        &self,
        experiment_id: i64,
        params: &TableParams,
        all: bool,
    ) -> PageResult<TrialPage> {
        let Some(brush) = params.brush() else {
            return self
                .store
                .trial_page(experiment_id, &params.query(all))
                .await
                .map_err(|e| self.fail(e));
        };
        let mut page = self
            .store
            .trial_page(experiment_id, &params.query(true))
            .await
            .map_err(|e| self.fail(e))?;
        page.rows.retain(|t| brush.keeps(t));
        page.total = i64::try_from(page.rows.len()).unwrap_or(i64::MAX);
        if !all {
            let q = params.query(false);
            let skip = usize::try_from(q.offset).unwrap_or(usize::MAX);
            let take = usize::try_from(q.limit).unwrap_or(usize::MAX);
            page.rows = page.rows.into_iter().skip(skip).take(take).collect();
        }
        Ok(page)
    }
}

/// The dashboard's routes over `store`; spawns the live-update poller, so
/// it must be called inside a tokio runtime.
pub fn router(store: SqlStore, config: Config) -> Router {
    let changes = live::spawn(store.clone(), config.poll);
    let base = config.base_path.trim_end_matches('/').to_owned();
    let state = Arc::new(AppState {
        store,
        cache: cache::TrialCache::default(),
        config: Config {
            base_path: base.clone(),
            ..config
        },
        changes,
    });
    let mut router = Router::new()
        .route(&format!("{base}/"), get(experiments_page))
        .route(
            &format!("{base}/experiments/{{name}}"),
            get(experiment_page),
        )
        .route(
            &format!("{base}/experiments/{{name}}/trials"),
            get(trials_page),
        )
        .route(
            &format!("{base}/experiments/{{name}}/trials.csv"),
            get(export_csv),
        )
        .route(
            &format!("{base}/experiments/{{name}}/trials.json"),
            get(export_json),
        )
        .route(
            &format!("{base}/experiments/{{name}}/spec.yaml"),
            get(spec_yaml),
        )
        .route(
            &format!("{base}/experiments/{{name}}/trials/{{trial}}"),
            get(trial_page),
        )
        .route(
            &format!("{base}/experiments/{{name}}/trials/{{trial}}/log"),
            get(trial_log),
        )
        .route(&format!("{base}/events"), get(events))
        .route(&format!("{base}/assets/style.css"), get(style_css))
        .route(&format!("{base}/assets/app.js"), get(app_js))
        .route(&format!("{base}/assets/favicon.svg"), get(favicon_svg));
    if !base.is_empty() {
        router = router.route(&base, get(experiments_page));
    }
    // Rewritten before routing: `/experiments/NAMESPACE/NAME` (see `paths`).
    let rewrite = axum::middleware::from_fn_with_state(Arc::clone(&state), namespaced);
    let routes = router
        .with_state(state)
        .layer(axum::middleware::map_response(with_policy));
    Router::new().fallback_service(tower::Layer::layer(&rewrite, routes))
}

/// Serves the controller's experiments at `/experiments/NAMESPACE/NAME`
/// (their stored keys are `namespace/name/uid`): rewrites such a request
/// to the key's own address, and tells the link builders which keys are
/// superseded (see [`paths`]). A `ktune run` store passes through.
async fn namespaced(
    State(app): Shared,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let base = &app.config.base_path;
    let path = request.uri().path();
    if path.starts_with(&format!("{base}/assets/")) || path == format!("{base}/events") {
        return next.run(request).await;
    }
    let Ok(keys) = app.store.experiment_keys().await else {
        return next.run(request).await;
    };
    let prefix = format!("{base}/experiments/");
    if let Some(rest) = path.strip_prefix(&prefix)
        && let Some(to) = paths::resolve(rest, request.uri().query(), &keys)
        && let Ok(uri) = format!("{prefix}{to}").parse()
    {
        *request.uri_mut() = uri;
    }
    paths::scope(paths::superseded(&keys), next.run(request)).await
}

/// The dashboard's Content-Security-Policy: its own script, stylesheet,
/// icon and event stream, nothing inline, nothing from elsewhere, no
/// framing. The pages have no inline script or style (the importance bars
/// are SVG), so nothing else is needed.
pub const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// Puts [`DASHBOARD_CSP`] on a response (the server adds `nosniff`).
async fn with_policy(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(DASHBOARD_CSP),
    );
    response
}

/// Serves the dashboard on `listener` until the future is dropped or
/// `shutdown` completes, with [`crate::serve`]'s connection cap, deadlines
/// and security headers.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: SqlStore,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limits = crate::serve::Limits::default();
    crate::serve::serve(listener, router(store, config), limits, shutdown).await;
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The summary shown for an experiment in the list and on its page.
fn summarize(record: ExperimentRecord, trials: &[TrialRow]) -> ExperimentSummary {
    let objective = record.objective();
    ExperimentSummary {
        algorithm: data::algorithm_of(&record).to_owned(),
        counts: Counts::from_states(trials.iter().map(|t| t.state)),
        best: crate::store::best_trial(trials, &objective).cloned(),
        history: data::history(trials, &objective),
        objective,
        record,
    }
}

async fn experiments_page(State(app): Shared) -> PageResult<Html<String>> {
    let records = app.store.experiments().await.map_err(|e| app.fail(e))?;
    let mut rows = Vec::with_capacity(records.len());
    for record in records {
        let trials = app
            .cache
            .trials(&app.store, record.id)
            .await
            .map_err(|e| app.fail(e))?;
        rows.push(summarize(record, &trials));
    }
    Ok(Html(pages::experiments(&app.config.base_path, &rows)))
}

/// Parameter names in the spec's order, else in the first trial's.
fn parameter_names(e: &ExperimentRecord, trials: &[TrialRow]) -> Vec<String> {
    let from_spec: Vec<String> = e
        .spec
        .pointer("/spec/parameters")
        .and_then(serde_json::Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.get("name").and_then(serde_json::Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if !from_spec.is_empty() {
        return from_spec;
    }
    trials
        .first()
        .map(|t| t.assignment.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default()
}

async fn experiment_page(
    State(app): Shared,
    Path(name): Path<String>,
    Query(params): Query<TableParams>,
) -> PageResult<Html<String>> {
    let record = app.experiment(&name).await?;
    let trials = app
        .cache
        .trials(&app.store, record.id)
        .await
        .map_err(|e| app.fail(e))?;
    let page = app.table_page(record.id, &params, false).await?;
    let objective = record.objective();
    let reported: std::collections::BTreeSet<i64> = app
        .store
        .trials_reporting(record.id, &objective.metric)
        .await
        .map_err(|e| app.fail(e))?
        .into_iter()
        .collect();
    let by_id: BTreeMap<i64, &TrialRow> = trials.iter().map(|t| (t.id, t)).collect();
    let reporting = trials.iter().filter(|t| reported.contains(&t.id));
    let drawn = data::shown_trials(reporting, &objective, data::MAX_CURVES);
    let drawn: Vec<i64> = drawn.into_iter().collect();
    let rows = app
        .store
        .metric_curves(&drawn, &objective.metric)
        .await
        .map_err(|e| app.fail(e))?;
    let mut curves: Vec<svg::Curve> = Vec::new();
    for (trial_id, step, number) in rows {
        let Some(t) = by_id.get(&trial_id) else {
            continue;
        };
        let Some(n) = number.filter(|n| n.is_finite()) else {
            continue;
        };
        match curves.last_mut() {
            Some(c) if c.name == t.name => c.points.push((step, n)),
            _ => curves.push(svg::Curve {
                name: t.name.clone(),
                state: t.state,
                points: vec![(step, n)],
            }),
        }
    }
    let with_objective: Vec<&TrialRow> = trials
        .iter()
        .filter(|t| t.objective.is_some_and(f64::is_finite))
        .collect();
    let lined = data::shown_trials(with_objective.iter().copied(), &objective, data::MAX_LINES);
    let lines: Vec<TrialRow> = with_objective
        .iter()
        .filter(|t| lined.contains(&t.id))
        .map(|t| (*t).clone())
        .collect();
    let parameters = parameter_names(&record, &trials);
    let log_parameters = data::log_parameters(&record);
    let importance = data::importance(&trials);
    let top_shares = ped_anova::shares(&trials, &objective, &parameters, &log_parameters);
    let spec_yaml = serde_saphyr::to_string(&record.spec).map_err(|e| app.fail(e))?;
    let summary = summarize(record, &trials);
    let view = pages::ExperimentView {
        summary: &summary,
        lines: &lines,
        lines_total: with_objective.len(),
        curves: &curves,
        curves_total: reported.len(),
        parameters: &parameters,
        log_parameters: &log_parameters,
        importance: &importance,
        top_shares: &top_shares,
        page: &page,
        params: &params,
        spec_yaml: &spec_yaml,
        now: now_ms(),
    };
    Ok(Html(pages::experiment(&app.config.base_path, &view)))
}

async fn trials_page(
    State(app): Shared,
    Path(name): Path<String>,
    Query(params): Query<TableParams>,
) -> PageResult<Html<String>> {
    let record = app.experiment(&name).await?;
    let page = app.table_page(record.id, &params, false).await?;
    let parameters = parameter_names(&record, &page.rows);
    let metric = record.objective().metric;
    let view = pages::TableView {
        experiment: &record.name,
        metric: &metric,
        parameters: &parameters,
        page: &page,
        params: &params,
    };
    Ok(Html(pages::trials(&app.config.base_path, &view)))
}

/// Every trial matching the table's filter, in its order, for exports.
async fn export_rows(
    app: &AppState,
    name: &str,
    params: &TableParams,
) -> PageResult<(Vec<String>, Vec<TrialRow>)> {
    let record = app.experiment(name).await?;
    let page = app.table_page(record.id, params, true).await?;
    let parameters = parameter_names(&record, &page.rows);
    Ok((parameters, page.rows))
}

/// Where a spreadsheet may start a new cell inside one of ours: at `;`
/// (the list separator of many locales, so their spreadsheets split CSV
/// lines there, quotes or not), at a tab, and at a line break.
const CELL_BREAKS: [char; 4] = [';', '\t', '\n', '\r'];

/// One CSV cell: quoted when needed, and every piece of it that a
/// spreadsheet could read as a cell of its own (see [`CELL_BREAKS`]) and
/// run as a formula — `=`, `+`, `-` or `@` as its first character after
/// any spaces, and not a number — prefixed with `'`. Trial names and
/// parameter values come from users and programs, and the export is
/// opened in spreadsheets.
fn csv_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for piece in s.split_inclusive(CELL_BREAKS) {
        if formula_like(piece.trim_end_matches(CELL_BREAKS)) {
            out.push('\'');
        }
        out.push_str(piece);
    }
    if out.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", out.replace('"', "\"\""))
    } else {
        out
    }
}

/// Whether a spreadsheet would run `piece` as a formula: its first
/// character after any white space starts one and it is not a number.
fn formula_like(piece: &str) -> bool {
    let text = piece.trim_start();
    text.starts_with(['=', '+', '-', '@']) && text.trim_end().parse::<f64>().is_err()
}

async fn export_csv(
    State(app): Shared,
    Path(name): Path<String>,
    Query(params): Query<TableParams>,
) -> PageResult<Response> {
    let (parameters, rows) = export_rows(&app, &name, &params).await?;
    let mut out =
        String::from("seq,name,state,reason,objective,created_at,started_at,completed_at");
    for p in &parameters {
        out.push(',');
        out.push_str(&csv_cell(p));
    }
    out.push('\n');
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    for t in &rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}",
            t.seq,
            csv_cell(&t.name),
            t.state.as_str(),
            csv_cell(&t.reason),
            t.objective.map(|v| v.to_string()).unwrap_or_default(),
            t.created_at,
            opt(t.started_at),
            opt(t.completed_at)
        ));
        for p in &parameters {
            out.push(',');
            out.push_str(&csv_cell(t.parameter(p).unwrap_or_default()));
        }
        out.push('\n');
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{}-trials.csv\"",
                    data::url_encode(&name)
                ),
            ),
        ],
        out,
    )
        .into_response())
}

async fn export_json(
    State(app): Shared,
    Path(name): Path<String>,
    Query(params): Query<TableParams>,
) -> PageResult<Response> {
    let (_, rows) = export_rows(&app, &name, &params).await?;
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|t| {
            serde_json::json!({
                "seq": t.seq, "name": t.name, "state": t.state.as_str(), "reason": t.reason,
                "message": t.message, "objective": t.objective,
                "parameters": t.assignment.iter().cloned().collect::<BTreeMap<_, _>>(),
                "labels": t.labels, "createdAt": t.created_at, "startedAt": t.started_at,
                "completedAt": t.completed_at,
            })
        })
        .collect();
    let body = serde_json::to_string_pretty(&rows).map_err(|e| app.fail(e))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn spec_yaml(State(app): Shared, Path(name): Path<String>) -> PageResult<Response> {
    let record = app.experiment(&name).await?;
    let yaml = serde_saphyr::to_string(&record.spec).map_err(|e| app.fail(e))?;
    Ok(([(header::CONTENT_TYPE, "text/yaml; charset=utf-8")], yaml).into_response())
}

/// Whether a stored name is one safe path component (the store accepts any
/// text; a name like `..` must not reach outside the trials folder).
fn safe_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Up to [`LOG_TAIL_BYTES`] of a log file from byte `from` (its end when
/// `from` is `None`), and the file's size: `None` when it does not exist.
async fn log_bytes(path: &FsPath, from: Option<u64>) -> Option<(Vec<u8>, u64, u64)> {
    let mut file = tokio::fs::File::open(path).await.ok()?;
    let len = file.metadata().await.ok()?.len();
    let start = match from {
        // A file shorter than the offset was replaced: from its start.
        Some(offset) if offset <= len => offset,
        Some(_) => 0,
        None => len.saturating_sub(LOG_TAIL_BYTES),
    };
    file.seek(std::io::SeekFrom::Start(start)).await.ok()?;
    let mut buf = Vec::new();
    (&mut file)
        .take(LOG_TAIL_BYTES)
        .read_to_end(&mut buf)
        .await
        .ok()?;
    Some((buf, start, len))
}

/// The end of a log file and its size: `None` when it does not exist.
async fn log_tail(path: &FsPath) -> Option<(String, u64)> {
    let (buf, start, len) = log_bytes(path, None).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let text = if start > 0 {
        format!("… (the first {start} bytes are left out)\n{text}")
    } else {
        text
    };
    Some((text, len))
}

/// A trial's `stdout.log` path, when both names are safe path components.
fn log_path(config: &Config, experiment: &str, trial: &str) -> Option<PathBuf> {
    let dir = config.trials_dir.as_ref()?;
    (safe_component(experiment) && safe_component(trial))
        .then(|| dir.join(experiment).join(trial).join("stdout.log"))
}

/// Where following a log goes on from.
#[derive(Debug, serde::Deserialize)]
struct LogQuery {
    offset: Option<u64>,
}

/// `…/log?offset=N`: the log's bytes from `N` (at most 64 KiB), with the
/// offset to ask for next in `X-Log-Offset`; a trial page's script polls
/// it while the trial runs. 404 unless the store has the experiment and
/// the trial.
async fn trial_log(
    State(app): Shared,
    Path((name, trial)): Path<(String, String)>,
    Query(query): Query<LogQuery>,
) -> PageResult<Response> {
    let missing = || {
        app.fail(UiError::NotFound(format!(
            "No log for trial {trial:?} of experiment {name:?}."
        )))
    };
    // No trials folder (the controller's dashboard): nothing to look up.
    let path = log_path(&app.config, &name, &trial).ok_or_else(missing)?;
    // Only the output of a trial the store knows: a folder left in the
    // trials directory by another store (or by anyone) is not served.
    app.trial(&name, &trial).await?;
    let (buf, start, _) = log_bytes(&path, Some(query.offset.unwrap_or(0)))
        .await
        .ok_or_else(missing)?;
    let next = start + buf.len() as u64;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (
                header::HeaderName::from_static("x-log-offset"),
                next.to_string(),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        String::from_utf8_lossy(&buf).into_owned(),
    )
        .into_response())
}

async fn trial_page(
    State(app): Shared,
    Path((name, trial)): Path<(String, String)>,
) -> PageResult<Html<String>> {
    let (record, row) = app.trial(&name, &trial).await?;
    let observations = app
        .store
        .observations(row.id)
        .await
        .map_err(|e| app.fail(e))?;
    let path = log_path(&app.config, &record.name, &row.name);
    let log = match &path {
        Some(path) => log_tail(path).await,
        None => None,
    };
    let log_path = path.map(|p| p.display().to_string()).unwrap_or_default();
    let view = pages::TrialView {
        experiment: &record.name,
        trial: &row,
        observations: &observations,
        log: log.as_ref().map(|(text, _)| text.as_str()),
        log_size: log.as_ref().map_or(0, |(_, size)| *size),
        log_path: &log_path,
        now: now_ms(),
    };
    Ok(Html(pages::trial(&app.config.base_path, &view)))
}

async fn events(State(app): Shared) -> impl IntoResponse {
    live::stream(&app.changes)
}

async fn style_css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        assets::STYLE_CSS,
    )
}

async fn favicon_svg() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        assets::FAVICON_SVG,
    )
}

async fn app_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        assets::APP_JS,
    )
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn csv_cells_quote_and_defuse_formulas_but_keep_numbers() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("+cmd"), "'+cmd");
        assert_eq!(csv_cell("-0.25"), "-0.25");
        assert_eq!(csv_cell("-1e-3"), "-1e-3");
        assert_eq!(csv_cell("-x"), "'-x");
    }

    #[test]
    fn csv_cells_defuse_formulas_behind_spaces_and_at_every_cell_break() {
        for (cell, written) in [
            // After leading spaces (spreadsheets skip them).
            (" =1+1", "' =1+1"),
            ("\u{a0}\u{a0}@SUM(A1)", "'\u{a0}\u{a0}@SUM(A1)"),
            (" -2", " -2"),
            // After `;`, a tab or a line break: a cell of its own where a
            // spreadsheet splits there.
            (";=cmd", ";'=cmd"),
            ("a; =1+1;b", "a;' =1+1;b"),
            ("a;b;-3", "a;b;-3"),
            ("\t@x", "\t'@x"),
            ("a\n+x", "\"a\n'+x\""),
            ("x;=HYPERLINK(\"u\")", "\"x;'=HYPERLINK(\"\"u\"\")\""),
            (";;", ";;"),
            ("", ""),
        ] {
            assert_eq!(csv_cell(cell), written, "{cell:?}");
        }
    }
}
