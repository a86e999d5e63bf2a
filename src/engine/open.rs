//! Opening an experiment: storing it if new, or resuming it — checking
//! that its search did not change, loading what its ended trials reported
//! and sending the trials an earlier run left running back to Pending.

use std::collections::BTreeMap;

use ktune_algorithms::history::TrialState;

use super::core::{Engine, EngineError, EngineOptions, Setup, now_ms};
use super::decide::Budget;
use super::resume::{SpecChange, compare_specs};
use crate::api::PreparedExperiment;
use crate::api::enums::{MetricStrategyType, ResumePolicy};
use crate::api::experiment::ObjectiveSpec;
use crate::api::load::ConfigMaps;
use crate::api::plan::ExperimentPlan;
use crate::api::template::ResolvedTemplate;
use crate::metrics::collector::Collector;
use crate::runner::Runner;
use crate::store::{ExperimentRecord, ExperimentState, Store, TrialOutcome};

impl<'a, S: Store, R: Runner, C: Collector> Engine<'a, S, R, C> {
    /// Opens an experiment: stores it if new, or resumes it — trials that
    /// were running when an earlier run died are stopped (what is left of
    /// them) and will run again; a finished experiment runs on only if its
    /// `resumePolicy` allows (LongRunning or FromVolume) and its budget was
    /// raised.
    ///
    /// # Errors
    /// [`EngineError`] when the experiment cannot be planned, changed its
    /// search since it was stored, or the store fails.
    pub async fn open(
        prepared: &PreparedExperiment,
        configmaps: &ConfigMaps,
        store: &'a S,
        runner: &'a R,
        collector: &'a C,
        options: EngineOptions,
    ) -> Result<Self, EngineError> {
        let experiment = &prepared.experiment;
        let plan = ExperimentPlan::new(experiment, &prepared.report)?;
        let namespace = experiment
            .metadata
            .namespace
            .as_deref()
            .unwrap_or("default");
        let template = experiment.spec.trial_template.clone().unwrap_or_default();
        let template = ResolvedTemplate::new(&template, namespace, configmaps)?;
        let key = options
            .store_key
            .clone()
            .unwrap_or_else(|| prepared.name().to_owned());
        let (record, created) = store_experiment(store, &key, prepared).await?;
        let setup = Setup::new(prepared, plan, template, record.id);
        let mut engine = Self {
            store,
            runner,
            collector,
            options,
            setup,
            rows: Vec::new(),
            live: Vec::new(),
            finished: BTreeMap::new(),
            algorithm_state: record.algorithm_state.clone(),
            state_version: record.algorithm_state_version,
            exhausted: false,
            done: None,
            closed: None,
            changed: true,
            suggest_seconds: Vec::new(),
            resumed: None,
            interrupted: 0,
        };
        let policy = experiment.spec.resume_policy.clone();
        if stays_closed(&record, policy.unwrap_or(ResumePolicy::Never)) {
            engine.closed = Some((record.state, record.reason.clone()));
            return Ok(engine);
        }
        engine.resume(&record, created).await?;
        Ok(engine)
    }

    /// Readies the stored trials to go on (see [`Self::resume_trials`]) and
    /// marks the experiment Running.
    async fn resume(
        &mut self,
        record: &ExperimentRecord,
        created: bool,
    ) -> Result<(), EngineError> {
        let (done, rerun) = self.resume_trials().await?;
        if !created && done + rerun > 0 {
            self.resumed = Some((done, rerun));
        }
        if record.state != ExperimentState::Running {
            self.store
                .set_experiment_state(
                    record.id,
                    ExperimentState::Running,
                    "ExperimentRunning",
                    None,
                )
                .await?;
        }
        Ok(())
    }

    /// Loads the reports of ended trials, and sends the trials an earlier
    /// run left running back to Pending. Returns how many had ended and
    /// how many are to run (again).
    async fn resume_trials(&mut self) -> Result<(usize, usize), EngineError> {
        let (mut done, mut rerun) = (0, 0);
        for row in self.store.trials(self.setup.experiment_id).await? {
            if row.state.is_terminal() {
                done += 1;
                self.load_finished(&row).await?;
                continue;
            }
            rerun += 1;
            self.runner.reap(&row.name);
            if row.state == TrialState::Running {
                let outcome = TrialOutcome {
                    state: TrialState::Pending,
                    reason: "Restarted".into(),
                    message: "ktune was interrupted while the trial ran; it runs again".into(),
                    objective: None,
                    at: now_ms(),
                };
                self.store
                    .transition(row.id, &[TrialState::Running], &outcome)
                    .await?;
            }
        }
        Ok((done, rerun))
    }
}

impl Setup {
    /// What the engine keeps of a planned experiment stored under `experiment_id`.
    fn new(
        prepared: &PreparedExperiment,
        plan: ExperimentPlan,
        template: ResolvedTemplate,
        experiment_id: i64,
    ) -> Self {
        let objective = prepared.experiment.spec.objective.as_ref();
        Self {
            budget: Budget {
                parallel_trial_count: plan.parallel_trial_count,
                max_trial_count: plan.max_trial_count,
                max_failed_trial_count: plan.max_failed_trial_count,
            },
            plan,
            name: prepared.name().to_owned(),
            template,
            strategy: objective.map_or(
                MetricStrategyType::Latest,
                ObjectiveSpec::objective_strategy,
            ),
            experiment_id,
        }
    }
}

/// Stores the experiment under `key` unless it is stored already; returns
/// its record and whether it is new. A stored one may differ only where
/// Katib lets a resumed experiment change (its budget); that change is
/// stored.
async fn store_experiment<S: Store>(
    store: &S,
    key: &str,
    prepared: &PreparedExperiment,
) -> Result<(ExperimentRecord, bool), EngineError> {
    let spec = serde_json::to_value(&prepared.experiment).unwrap_or_default();
    let (record, created) = store.create_experiment(key, &spec, now_ms()).await?;
    if !created {
        match compare_specs(&record.spec, &spec) {
            SpecChange::Same => {}
            SpecChange::Allowed => store.set_experiment_spec(record.id, &spec).await?,
            SpecChange::Forbidden(fields) => {
                return Err(EngineError::SpecChanged {
                    name: prepared.name().to_owned(),
                    fields,
                });
            }
        }
    }
    Ok((record, created))
}

/// Whether a stored experiment stays as it ended: it finished, and its
/// resumePolicy (Never) forbids running it again.
fn stays_closed(record: &ExperimentRecord, policy: ResumePolicy) -> bool {
    let finished = matches!(
        record.state,
        ExperimentState::Succeeded | ExperimentState::Failed
    );
    finished && policy == ResumePolicy::Never
}
