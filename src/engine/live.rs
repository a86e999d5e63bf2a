//! What the engine holds of a running trial: its run, its metrics source,
//! what has been read of it, and what of that the store does not know yet.

use std::collections::BTreeMap;

use ktune_algorithms::history::Observation;

use crate::metrics::MetricLog;
use crate::metrics::collector::TrialMetrics;
use crate::runner::{Exit, TrialRun};
use crate::store::{ObservationRow, TrialRow};

/// A running trial and what has been read of it.
#[derive(Debug)]
pub(super) struct Live<T, M> {
    pub(super) row: TrialRow,
    pub(super) run: T,
    pub(super) metrics: M,
    /// This attempt's reports, for the metric strategy.
    pub(super) logs: Vec<MetricLog>,
    /// The last stored step per metric (a restarted trial continues after
    /// its earlier attempt's steps, so nothing stored is shadowed).
    pub(super) steps: BTreeMap<String, i64>,
    /// This attempt's objective reports, as the stopping rule reads them.
    pub(super) series: Vec<Observation>,
    /// Reports per metric to drop because they were stored before: an
    /// adopted trial's metrics source replays them.
    pub(super) replayed: BTreeMap<String, i64>,
    /// How many of `series` the stopping rule has judged.
    pub(super) judged: usize,
    /// The GPU it was given.
    pub(super) gpu: Option<String>,
    /// What is read but not yet stored.
    pub(super) pending: Unstored,
}

/// What the engine knows of a running trial that the store does not yet
/// (it failed when written): kept with the trial and written in a later
/// round, so a store outage stops no trial and loses no report.
#[derive(Debug, Default)]
pub(super) struct Unstored {
    /// Reports read but not stored.
    pub(super) reports: Vec<ObservationRow>,
    /// Its metrics source was read to the end (it ended).
    pub(super) drained: bool,
    /// How it ended (and why it was stopped early), until that is stored.
    pub(super) ended: Option<(Exit, Option<String>)>,
    /// It was stopped because the run was interrupted: it goes back to
    /// Pending, to run again on resume.
    pub(super) interrupted: bool,
}

/// What an earlier attempt of a trial stored (it ran before, and is started
/// again or adopted): the new attempt's reports are numbered after these.
#[derive(Debug, Default)]
pub(super) struct Earlier {
    /// The last stored step per metric.
    steps: BTreeMap<String, i64>,
    /// How many reports of each metric are stored.
    counts: BTreeMap<String, i64>,
    /// The stored reports, for the metric strategy of an adopted trial.
    logs: Vec<MetricLog>,
}

impl Earlier {
    /// What these stored reports leave to the next attempt.
    pub(super) fn of(stored: Vec<ObservationRow>) -> Self {
        let mut earlier = Self::default();
        for o in stored {
            *earlier.counts.entry(o.metric.clone()).or_insert(0) += 1;
            earlier.logs.push(MetricLog {
                name: o.metric.clone(),
                value: o.value,
                time: o
                    .time
                    .and_then(|t| jiff::Timestamp::from_millisecond(t).ok()),
            });
            let last = earlier.steps.entry(o.metric).or_insert(0);
            *last = o.step.max(*last);
        }
        earlier
    }
}

impl<T: TrialRun, M: TrialMetrics> Live<T, M> {
    /// A trial just started (or adopted) with what its earlier attempts
    /// stored. An adopted trial (still running after a restart) ends with
    /// all its reports counted, those stored before too; a source that
    /// delivers them again (a log read from its start) has that many of
    /// each metric skipped.
    pub(super) fn new(
        row: TrialRow,
        run: T,
        metrics: M,
        gpu: Option<String>,
        earlier: Earlier,
    ) -> Self {
        let adopted = run.adopted();
        let replayed = if adopted && metrics.replays() {
            earlier.counts
        } else {
            BTreeMap::new()
        };
        let logs = if adopted { earlier.logs } else { Vec::new() };
        Self {
            row,
            run,
            metrics,
            logs,
            steps: earlier.steps,
            series: Vec::new(),
            replayed,
            judged: 0,
            gpu,
            pending: Unstored::default(),
        }
    }

    /// Drops the reports its metrics source delivers again (see
    /// [`Self::new`]), and numbers the others after the stored ones.
    pub(super) fn number(
        &mut self,
        mut logs: Vec<MetricLog>,
    ) -> (Vec<MetricLog>, Vec<ObservationRow>) {
        if !self.replayed.is_empty() {
            logs.retain(|log| match self.replayed.get_mut(&log.name) {
                Some(left) if *left > 0 => {
                    *left -= 1;
                    false
                }
                _ => true,
            });
        }
        let rows = logs
            .iter()
            .map(|log| {
                let step = self.steps.entry(log.name.clone()).or_insert(0);
                *step += 1;
                ObservationRow {
                    metric: log.name.clone(),
                    step: *step,
                    value: log.value.clone(),
                    number: log.number(),
                    time: log.time.map(|t| t.as_millisecond()),
                }
            })
            .collect();
        (logs, rows)
    }
}
