//! Watches: the events a watch sees (its namespace, its selectors,
//! selector transitions as ADDED/DELETED), bookmarks, `410 Gone` when the
//! history no longer reaches back, as JSON lines or Table rows.

use super::{App, Query, list_opts, stream, truthy};
use crate::resource::ResourceType;
use crate::select::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Event, EventType, ns_name, with_type};
use crate::table;
use axum::body::Bytes;
use axum::response::Response;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

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
        let (ons, _) = ns_name(&ev.object);
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

/// A watch: the replay, then each change the filter lets through, with
/// bookmarks when asked, until `timeoutSeconds` or the client leaves.
pub(super) fn watch(
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
    Ok(stream(rx, "application/json"))
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
