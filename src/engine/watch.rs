//! Following the running trials: their new reports are read and stored,
//! the early-stopping rule judges them, and those that ended (or are to
//! stop) are recorded.

use std::collections::BTreeMap;

use ktune_algorithms::history::{TrialRecord, TrialState};
use ktune_algorithms::stopping::StopDecision;

use super::core::{Engine, EngineError};
use super::events::Event;
use super::history::objective_series;
use super::live::Live;
use crate::metrics::collector::{Collector, TrialMetrics};
use crate::runner::{Exit, Runner, TrialRun};
use crate::store::Store;

impl<S: Store, R: Runner, C: Collector> Engine<'_, S, R, C> {
    /// Reads the running trials' new reports, stops those the rule says
    /// to stop, and records the trials that ended.
    ///
    /// A store failure stops no trial and loses nothing: what could not be
    /// written stays with its trial (reports, how it ended) for a later
    /// round. Every trial is still read and polled; no more writes are
    /// tried this round, and the first failure is returned.
    pub(super) async fn watch(
        &mut self,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(), EngineError> {
        let mut failure = self.record_launches().await.err();
        let mut grew = Vec::with_capacity(self.live.len());
        let mut live = std::mem::take(&mut self.live);
        for l in &mut live {
            grew.push(self.read_reports(l, false, on_event).await);
            if failure.is_none()
                && let Err(e) = self.store_reports(l).await
            {
                failure = Some(e);
            }
        }
        self.live = live;
        // The history the stopping rule compares against: built at most
        // once a round, and only when some trial reported new objective values.
        let peers = (self.setup.plan.early_stopping.is_some() && grew.contains(&true))
            .then(|| self.history());
        let mut still = Vec::with_capacity(self.live.len());
        for (mut l, grew) in std::mem::take(&mut self.live).into_iter().zip(grew) {
            if l.pending.ended.is_none() {
                l.pending.ended = self.poll_end(&mut l, grew, peers.as_deref()).await;
            }
            if l.pending.ended.is_none() || failure.is_some() {
                still.push(l);
                continue;
            }
            if let Err(e) = self.record_end(&mut l, on_event).await {
                failure = Some(e);
                still.push(l);
            }
        }
        self.live.extend(still);
        failure.map_or(Ok(()), Err)
    }

    /// Whether a running trial ended, or is to be stopped now because the
    /// early-stopping rule says so (it is then stopped): how, and why.
    async fn poll_end(
        &self,
        l: &mut Live<R::Trial, C::Trial>,
        grew: bool,
        peers: Option<&[TrialRecord]>,
    ) -> Option<(Exit, Option<String>)> {
        let exit = l.run.poll().await;
        if exit.is_none()
            && grew
            && let Some(history) = peers
            && let Some(reason) = self.judge(l, history)
        {
            l.run.stop().await;
            return Some((Exit::Stopped, Some(reason)));
        }
        exit.map(|e| (e, None))
    }

    /// Judges a trial's objective reports not judged yet one at a time, as
    /// Katib's collector does line by line: the first after which the
    /// stopping rule says stop gives the reason. Judging each report, not
    /// each batch that one poll happened to read, makes the decision
    /// independent of how often reports are read (every 100 ms from a local
    /// pipe, every controller tick from a pod's log) and of whether the
    /// trial ended between two polls: both backends decide alike.
    pub(super) fn judge(
        &self,
        l: &mut Live<R::Trial, C::Trial>,
        history: &[TrialRecord],
    ) -> Option<String> {
        let rule = self.setup.plan.early_stopping.as_ref()?;
        let mut me = history.iter().find(|t| t.name == l.row.name)?.clone();
        me.state = TrialState::Running;
        me.observations = l.series.iter().take(l.judged).copied().collect();
        while let Some(next) = l.series.get(l.judged) {
            me.observations.push(*next);
            l.judged += 1;
            if let StopDecision::Stop { reason } =
                rule.evaluate(&me, history, &self.setup.plan.objective)
            {
                return Some(reason);
            }
        }
        None
    }

    /// Reads a running trial's new reports (its last ones when `last`),
    /// numbers them and keeps them to be stored; returns whether the
    /// objective got new values.
    pub(super) async fn read_reports(
        &self,
        l: &mut Live<R::Trial, C::Trial>,
        last: bool,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> bool {
        if l.pending.drained {
            return false;
        }
        let logs = if last {
            l.pending.drained = true;
            l.metrics.finish().await
        } else {
            l.metrics.poll().await
        };
        let (logs, rows) = l.number(logs);
        if logs.is_empty() {
            return false;
        }
        let latest: BTreeMap<&str, &str> = logs
            .iter()
            .map(|log| (log.name.as_str(), log.value.as_str()))
            .collect();
        on_event(Event::Reported {
            trial: l.row.name.clone(),
            latest: latest
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        });
        l.logs.extend(logs);
        let before = l.series.len();
        l.series
            .extend(objective_series(&rows, &self.setup.plan.objective.metric));
        l.pending.reports.extend(rows);
        l.series.len() > before
    }

    /// Stores a trial's reports not stored yet. Storing is idempotent (a
    /// (metric, step) stored before is kept), so a write that failed after
    /// the database committed it is simply written again.
    pub(super) async fn store_reports(
        &self,
        l: &mut Live<R::Trial, C::Trial>,
    ) -> Result<(), EngineError> {
        if !l.pending.reports.is_empty() {
            self.store
                .append_observations(l.row.id, &l.pending.reports)
                .await?;
            l.pending.reports.clear();
        }
        Ok(())
    }
}
