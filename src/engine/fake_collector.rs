//! An in-memory stand-in for the engine's [`Collector`]: a test queues a
//! trial's reports ([`FakeCollector::report`]) and the engine reads them at
//! its next poll. Kept apart from the other fakes so that it follows the
//! collector trait alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::metrics::MetricLog;
use crate::metrics::collector::{Collector, TrialMetrics};
use crate::metrics::push::PushCredentials;
use crate::runner::Reporting;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reports queued per trial; what the trials were handed and which are
/// attached.
#[derive(Debug, Default)]
struct Queues {
    reports: BTreeMap<String, Vec<MetricLog>>,
    attached: BTreeSet<String>,
    detached: Vec<String>,
}

/// A collector whose reports the test queues.
#[derive(Debug, Clone, Default)]
pub(super) struct FakeCollector {
    queues: Arc<Mutex<Queues>>,
    /// Whether an adopted trial's source delivers again what was stored
    /// (as a log read from its start does).
    replays: bool,
}

impl FakeCollector {
    /// A collector whose sources replay an adopted trial's reports.
    pub(super) fn replaying() -> Self {
        Self {
            replays: true,
            ..Self::default()
        }
    }

    /// Queues a report of `metric` for `trial`, read at its next poll.
    pub(super) fn report(&self, trial: &str, metric: &str, value: &str) {
        lock(&self.queues)
            .reports
            .entry(trial.to_owned())
            .or_default()
            .push(MetricLog {
                name: metric.to_owned(),
                value: value.to_owned(),
                time: None,
            });
    }

    /// Whether `trial` is attached now.
    pub(super) fn attached(&self, trial: &str) -> bool {
        lock(&self.queues).attached.contains(trial)
    }

    /// The trials detached, in order.
    pub(super) fn detached(&self) -> Vec<String> {
        lock(&self.queues).detached.clone()
    }
}

impl Collector for FakeCollector {
    type Trial = FakeMetrics;

    /// Hands each trial a push token named after it, so tests can see the
    /// runner receive what the collector prepared.
    fn prepare(&self, trial: &str) -> Reporting {
        Reporting {
            push: Some(PushCredentials {
                url: format!("http://push.test/{trial}"),
                token: format!("token-{trial}"),
            }),
            metrics_port: None,
        }
    }

    fn attach(&self, trial: &str, _stdout: Option<&Path>) -> FakeMetrics {
        lock(&self.queues).attached.insert(trial.to_owned());
        FakeMetrics {
            trial: trial.to_owned(),
            queues: Arc::clone(&self.queues),
            replays: self.replays,
        }
    }

    fn detach(&self, trial: &str) {
        let mut queues = lock(&self.queues);
        queues.attached.remove(trial);
        queues.detached.push(trial.to_owned());
    }
}

/// One trial's queued reports.
#[derive(Debug)]
pub(super) struct FakeMetrics {
    trial: String,
    queues: Arc<Mutex<Queues>>,
    replays: bool,
}

impl TrialMetrics for FakeMetrics {
    async fn poll(&mut self) -> Vec<MetricLog> {
        lock(&self.queues)
            .reports
            .remove(&self.trial)
            .unwrap_or_default()
    }

    fn replays(&self) -> bool {
        self.replays
    }
}
