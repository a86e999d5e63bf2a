//! The HTTP face: routes Kubernetes API paths onto the store.

use crate::discovery;
use crate::logs::Logs;
use crate::patch::{self, PatchType};
use crate::resource::ResourceType;
use crate::select::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{DeleteOpts, Event, EventType, ListOpts, Store, Sub, with_type};
use crate::table;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

/// What the handlers share.
#[derive(Debug, Clone)]
pub(crate) struct App {
    pub store: Arc<Store>,
    pub logs: Arc<Logs>,
    pub bookmark_interval: Duration,
    /// Requests answered so far (see [`crate::FakeApiServer::requests`]).
    pub requests: Arc<AtomicU64>,
}

/// The router: every path goes through one dispatcher.
pub(crate) fn router(app: App) -> Router {
    Router::new().fallback(handle).with_state(app)
}

/// A JSON response.
pub(crate) fn json_response(code: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn ok(v: &Value) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, v))
}

async fn handle(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    tracing::debug!(%method, %uri, "request");
    app.requests.fetch_add(1, Ordering::Relaxed);
    match route(&app, &method, &uri, &headers, body).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%method, %uri, code = e.code, reason = e.reason, message = %e.message, "request failed");
            e.into_response()
        }
    }
}

type Query = HashMap<String, String>;

fn query(uri: &Uri) -> Query {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn truthy(q: &Query, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

async fn route(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let path = uri.path();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let q = query(uri);
    let types = || app.store.types();
    let get_only = |r: Option<Value>| -> Result<Response, ApiError> {
        if method != Method::GET {
            return Err(ApiError::method_not_allowed(format!(
                "{method} is not allowed on {path}"
            )));
        }
        r.map_or_else(|| Err(ApiError::no_route(path)), |v| ok(&v))
    };
    match segs.as_slice() {
        ["version"] => get_only(Some(discovery::version())),
        ["healthz" | "readyz" | "livez"] => Ok((StatusCode::OK, "ok").into_response()),
        ["api"] => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1");
            get_only(Some(discovery::core_versions(host)))
        }
        ["apis"] => get_only(Some(discovery::groups(&types()))),
        ["openapi", "v3"] => get_only(Some(discovery::openapi_index(&types()))),
        ["openapi", "v3", rest @ ..] => get_only(discovery::openapi_gv(&types(), &rest.join("/"))),
        ["api", v] => get_only(discovery::resource_list(&types(), "", v)),
        ["apis", g] => get_only(discovery::group(&types(), g)),
        ["apis", g, v] => get_only(discovery::resource_list(&types(), g, v)),
        ["api", v, rest @ ..] => resource(app, method, uri, headers, body, &q, "", v, rest).await,
        ["apis", g, v, rest @ ..] => {
            resource(app, method, uri, headers, body, &q, g, v, rest).await
        }
        _ => Err(ApiError::no_route(path)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    q: &Query,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    let store = &app.store;
    let (ns, rest) = match rest {
        ["namespaces", ns, plural, ..] if store.find_type(group, version, plural).is_some() => {
            (Some(*ns), &rest[2..])
        }
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, s] => (*p, Some(*n), Some(*s)),
        _ => return Err(ApiError::no_route(uri.path())),
    };
    let rt = store
        .find_type(group, version, plural)
        .ok_or_else(|| ApiError::no_route(uri.path()))?;
    if ns.is_some() && !rt.namespaced {
        return Err(ApiError::no_route(uri.path()));
    }
    if rt.namespaced && ns.is_none() && (name.is_some() || *method != Method::GET) {
        return Err(ApiError::no_route(uri.path()));
    }
    let as_table = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"));
    let dry_run = q.get("dryRun").is_some_and(|d| d == "All");
    let sub = match sub {
        None => Sub::Main,
        Some("status") if rt.status_subresource => Sub::Status,
        Some("log") if rt.group.is_empty() && rt.plural == "pods" && *method == Method::GET => {
            return pod_log(
                app,
                &rt,
                ns.unwrap_or_default(),
                name.unwrap_or_default(),
                q,
            )
            .await;
        }
        Some(_) => return Err(ApiError::no_route(uri.path())),
    };
    let Some(name) = name else {
        return match *method {
            Method::GET if truthy(q, "watch") => watch(app, &rt, ns, q, as_table),
            Method::GET => {
                let list = store.list(&rt, ns, &list_opts(q)?)?;
                if as_table {
                    let items = list
                        .get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    ok(&table::table(
                        &rt,
                        &items,
                        list.get("metadata").cloned().unwrap_or(json!({})),
                        true,
                    ))
                } else {
                    ok(&list)
                }
            }
            Method::POST => {
                let obj = patch::parse_body(&body)?;
                let created = store.create(&rt, ns, obj, dry_run)?;
                Ok(json_response(StatusCode::CREATED, &created))
            }
            Method::DELETE => {
                let opts = delete_opts(q, &body)?;
                let list = store.list(&rt, ns, &list_opts(q)?)?;
                let mut deleted = Vec::new();
                for item in list
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let (ins, iname) = crate::store::ns_name(item);
                    let ins = if rt.namespaced {
                        Some(ins.as_str())
                    } else {
                        None
                    };
                    match store.delete(&rt, ins, &iname, &opts, dry_run) {
                        Ok(o) => deleted.push(o),
                        Err(e) if e.code == 404 => {}
                        Err(e) => return Err(e),
                    }
                }
                ok(
                    &json!({"apiVersion": rt.api_version(), "kind": format!("{}List", rt.kind), "metadata": {"resourceVersion": store.resource_version().to_string()}, "items": deleted}),
                )
            }
            _ => Err(ApiError::method_not_allowed(format!(
                "{method} is not allowed on a collection"
            ))),
        };
    };
    match *method {
        Method::GET => {
            let obj = store.get(&rt, ns, name)?;
            if as_table {
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(json!(""));
                ok(&table::table(
                    &rt,
                    &[obj],
                    json!({"resourceVersion": rv}),
                    true,
                ))
            } else {
                ok(&obj)
            }
        }
        Method::PUT => {
            let obj = patch::parse_body(&body)?;
            ok(&store.update(&rt, ns, name, obj, sub, dry_run)?)
        }
        Method::PATCH => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|c| c.to_str().ok())
                .unwrap_or_default();
            let pt = PatchType::from_content_type(ct)?;
            let (obj, created) = store.patch(&rt, ns, name, pt, &body, sub, dry_run)?;
            Ok(json_response(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                &obj,
            ))
        }
        Method::DELETE if sub == Sub::Main => {
            let opts = delete_opts(q, &body)?;
            ok(&store.delete(&rt, ns, name, &opts, dry_run)?)
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{method} is not allowed on {}",
            uri.path()
        ))),
    }
}

fn list_opts(q: &Query) -> Result<ListOpts, ApiError> {
    Ok(ListOpts {
        labels: LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))
            .map_err(ApiError::bad_request)?,
        fields: FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))
            .map_err(ApiError::bad_request)?,
        limit: match q.get("limit").filter(|l| !l.is_empty()) {
            Some(l) => l
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
            None => 0,
        },
        continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
    })
}

fn delete_opts(q: &Query, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        patch::parse_body(body)?
    };
    let policy = q
        .get("propagationPolicy")
        .map(String::as_str)
        .or_else(|| b.get("propagationPolicy").and_then(Value::as_str));
    let orphan = policy == Some("Orphan")
        || b.get("orphanDependents").and_then(Value::as_bool) == Some(true);
    let pre = |k: &str| {
        b.pointer(&format!("/preconditions/{k}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok(DeleteOpts {
        orphan,
        uid: pre("uid"),
        resource_version: pre("resourceVersion"),
    })
}

fn line(v: &Value) -> Result<Bytes, Infallible> {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Ok(Bytes::from(b))
}

struct WatchFilter {
    rt: ResourceType,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    as_table: bool,
}

impl WatchFilter {
    fn matches(&self, o: &Value) -> bool {
        self.labels.matches(o) && self.fields.matches(o)
    }

    /// The wire event for a stored one, if this watch sees it.
    fn render(&self, ev: &Event, headers: &mut bool) -> Option<Value> {
        if ev.key != self.rt.key() {
            return None;
        }
        let (ons, _) = crate::store::ns_name(&ev.object);
        if self.ns.as_deref().is_some_and(|n| n != ons) {
            return None;
        }
        let new_m = self.matches(&ev.object);
        let ty = match ev.kind {
            EventType::Added | EventType::Deleted => new_m.then_some(ev.kind),
            EventType::Modified => {
                match (ev.old.as_ref().is_some_and(|o| self.matches(o)), new_m) {
                    (true, true) => Some(EventType::Modified),
                    (false, true) => Some(EventType::Added),
                    (true, false) => Some(EventType::Deleted),
                    (false, false) => None,
                }
            }
        }?;
        let obj = with_type(ev.object.clone(), &self.rt);
        let obj = if self.as_table {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(json!(""));
            let t = table::table(&self.rt, &[obj], json!({"resourceVersion": rv}), *headers);
            *headers = false;
            t
        } else {
            obj
        };
        Some(json!({"type": ty.as_str(), "object": obj}))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"type": "BOOKMARK", "object": {"apiVersion": self.rt.api_version(), "kind": self.rt.kind, "metadata": meta}})
    }
}

fn watch_response(rx: mpsc::Receiver<Result<Bytes, Infallible>>) -> Response {
    let mut r = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn watch(
    app: &App,
    rt: &ResourceType,
    ns: Option<&str>,
    q: &Query,
    as_table: bool,
) -> Result<Response, ApiError> {
    let opts = list_opts(q)?;
    let send_initial = truthy(q, "sendInitialEvents");
    let rv = match q.get("resourceVersion").filter(|r| !r.is_empty()) {
        _ if send_initial => None,
        Some(r) => Some(
            r.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {r:?}")))?,
        ),
        None => None,
    };
    let bookmarks = truthy(q, "allowWatchBookmarks");
    // timeoutSeconds=0 means the server's default (here: no timeout).
    let timeout = match q.get("timeoutSeconds").filter(|t| !t.is_empty()) {
        Some(t) => Some(Duration::from_secs(t.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid timeoutSeconds {t:?}"))
        })?))
        .filter(|d| !d.is_zero()),
        None => None,
    };
    let filter = WatchFilter {
        rt: rt.clone(),
        ns: ns.map(str::to_string),
        labels: opts.labels,
        fields: opts.fields,
        as_table,
    };
    let (tx, rx) = mpsc::channel(256);
    match app.store.watch(rt, ns, rv) {
        Err(e) => {
            let ev = json!({"type": "ERROR", "object": e.to_status()});
            tokio::spawn(async move {
                let _ = tx.send(line(&ev)).await;
            });
        }
        Ok((replay, events, start_rv)) => {
            let interval = app.bookmark_interval;
            tokio::spawn(run_watch(
                tx,
                filter,
                replay,
                events,
                start_rv,
                bookmarks,
                send_initial,
                timeout,
                interval,
            ));
        }
    }
    Ok(watch_response(rx))
}

#[allow(clippy::too_many_arguments)]
async fn run_watch(
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    filter: WatchFilter,
    replay: Vec<Arc<Event>>,
    mut events: broadcast::Receiver<Arc<Event>>,
    start_rv: u64,
    bookmarks: bool,
    send_initial: bool,
    timeout: Option<Duration>,
    interval: Duration,
) {
    let mut headers = true;
    for ev in &replay {
        if let Some(v) = filter.render(ev, &mut headers)
            && tx.send(line(&v)).await.is_err()
        {
            return;
        }
    }
    let mut last_rv = start_rv;
    if send_initial
        && bookmarks
        && tx
            .send(line(&filter.bookmark(last_rv, true)))
            .await
            .is_err()
    {
        return;
    }
    let deadline = tokio::time::sleep(timeout.unwrap_or(Duration::from_secs(365 * 24 * 3600)));
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            r = events.recv() => match r {
                Ok(ev) => {
                    // The replay covered everything up to start_rv; two
                    // events may share an rv (mirrored Events).
                    if ev.rv <= start_rv {
                        continue;
                    }
                    last_rv = last_rv.max(ev.rv);
                    if let Some(v) = filter.render(&ev, &mut headers)
                        && tx.send(line(&v)).await.is_err() {
                            return;
                        }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let e = ApiError::gone("the watch fell behind; relist");
                    let _ = tx.send(line(&json!({"type": "ERROR", "object": e.to_status()}))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick(), if bookmarks => {
                if tx.send(line(&filter.bookmark(last_rv, false))).await.is_err() {
                    return;
                }
            }
            () = &mut deadline => return,
            () = tx.closed() => return,
        }
    }
}

async fn pod_log(
    app: &App,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    q: &Query,
) -> Result<Response, ApiError> {
    let pod = app.store.get(rt, Some(ns), name)?;
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let default = pod
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
        .and_then(Value::as_str);
    let container = match (q.get("container").filter(|c| !c.is_empty()), default) {
        (Some(c), _) => c.clone(),
        (None, Some(d)) => d.to_string(),
        (None, None) if containers.len() == 1 => containers[0].clone(),
        (None, None) => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )));
        }
    };
    // Init containers (native sidecars too) have logs as well.
    let init = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.get("name").and_then(Value::as_str) == Some(&container))
        });
    if !containers.contains(&container) && !init {
        return Err(ApiError::bad_request(format!(
            "container {container} is not valid for pod {name}"
        )));
    }
    let Some(buf) = app.logs.get(ns, name, &container) else {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    };
    let text = |b: Vec<u8>| {
        let mut r = Response::new(Body::from(b));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain"),
        );
        r
    };
    let tail: Option<usize> = q.get("tailLines").and_then(|t| t.parse().ok());
    let limit: Option<usize> = q.get("limitBytes").and_then(|t| t.parse().ok());
    let (data, _) = buf.read_from(0);
    let start = match tail {
        Some(n) => {
            let lines: Vec<usize> = data
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1)
                .collect();
            let complete = if data.last() == Some(&b'\n') {
                lines.len()
            } else {
                lines.len() + 1
            };
            if n >= complete {
                0
            } else {
                lines.get(complete - n - 1).copied().unwrap_or(0)
            }
        }
        None => 0,
    };
    if !truthy(q, "follow") {
        let mut out = data[start..].to_vec();
        if let Some(l) = limit {
            out.truncate(l);
        }
        return Ok(text(out));
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(async move {
        let mut offset = start;
        loop {
            let mut changed = buf.subscribe();
            let (chunk, done) = buf.read_from(offset);
            offset += chunk.len();
            if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
            if done {
                return;
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                () = tx.closed() => return,
            }
        }
    });
    let mut r = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    Ok(r)
}
