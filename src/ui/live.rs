//! Live updates: one task per server polls the store's cheap change
//! counters ([`SqlStore::change_marks`]: each experiment's revision and its
//! running trials' observation count) and broadcasts only the experiments
//! whose counters moved; every open page's event stream subscribes to that one task, so
//! watchers add no queries.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt as _};
use tokio::sync::broadcast;

use crate::store::{ChangeMark, SqlStore};

/// How many changes a slow page may fall behind before it is told to
/// reload everything.
const BACKLOG: usize = 256;

/// Starts the poller; returns the sender pages subscribe to. The task polls
/// only while someone listens and ends when every sender is dropped.
#[must_use]
pub fn spawn(store: SqlStore, every: Duration) -> broadcast::Sender<String> {
    let (tx, _) = broadcast::channel(BACKLOG);
    let weak = tx.downgrade();
    tokio::spawn(async move {
        let mut seen: BTreeMap<i64, ChangeMark> = BTreeMap::new();
        let mut first = true;
        loop {
            let Some(tx) = weak.upgrade() else { return };
            if tx.receiver_count() > 0 || first {
                match store.change_marks().await {
                    Ok(marks) => {
                        for mark in marks {
                            if seen.get(&mark.experiment_id) != Some(&mark) {
                                if !first {
                                    // No receiver between the check and now is fine.
                                    let _ = tx.send(change_json(&mark));
                                }
                                seen.insert(mark.experiment_id, mark);
                            }
                        }
                        first = false;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "ui: polling the store for changes failed")
                    }
                }
            }
            drop(tx);
            tokio::time::sleep(every).await;
        }
    });
    tx
}

/// The event's data: which experiment changed and its counters.
fn change_json(m: &ChangeMark) -> String {
    serde_json::json!({
        "experiment": m.experiment,
        "status": m.status,
        "revision": m.revision,
        "runningObservations": m.running_observations,
    })
    .to_string()
}

/// An event stream for one page: `ready` at once, then one `change` per
/// changed experiment (`{"experiment":"*"}` after falling behind).
pub fn stream(
    changes: &broadcast::Sender<String>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    let rx = changes.subscribe();
    let ready = futures::stream::once(async { Ok(Event::default().event("ready").data("{}")) });
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        let data = match rx.recv().await {
            Ok(data) => data,
            Err(broadcast::error::RecvError::Lagged(_)) => "{\"experiment\":\"*\"}".to_owned(),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(Event::default().event("change").data(data)), rx))
    });
    Sse::new(ready.chain(rest)).keep_alive(KeepAlive::default())
}
