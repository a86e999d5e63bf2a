//! Starting trials: each pending trial (new, or one an interrupted run sent
//! back) is rendered from the template and handed to the runner while slots
//! and GPUs last. A trial that cannot be rendered or started fails alone;
//! the experiment goes on.

use ktune_algorithms::history::TrialState;
use ktune_algorithms::suggest::pbt;

use super::core::{Engine, EngineError, now_ms};
use super::events::Event;
use super::live::{Earlier, Live};
use crate::metrics::collector::Collector;
use crate::runner::{Checkpoint, LaunchRequest, Runner};
use crate::store::{Store, TrialOutcome, TrialRow};

impl<S: Store, R: Runner, C: Collector> Engine<'_, S, R, C> {
    /// Launches the pending trials (new ones, and those of an interrupted
    /// run) while slots and GPUs last.
    pub(super) async fn launch_pending(
        &mut self,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(), EngineError> {
        let pending: Vec<TrialRow> = self
            .rows
            .iter()
            .filter(|r| r.state == TrialState::Pending)
            .filter(|r| !self.live.iter().any(|l| l.row.id == r.id))
            .cloned()
            .collect();
        for row in pending {
            let gpu = self.free_gpu();
            if !self.options.gpus.is_empty() && gpu.is_none() {
                break; // every GPU is busy: the trial waits, pending
            }
            self.launch(row, gpu, on_event).await?;
        }
        Ok(())
    }

    /// A GPU no running trial holds, if GPUs are shared out.
    fn free_gpu(&self) -> Option<String> {
        self.options
            .gpus
            .iter()
            .find(|g| !self.live.iter().any(|l| l.gpu.as_ref() == Some(*g)))
            .cloned()
    }

    /// Renders and starts one pending trial; one that cannot start is
    /// recorded as Failed.
    async fn launch(
        &mut self,
        row: TrialRow,
        gpu: Option<String>,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(), EngineError> {
        // A trial whose template cannot be rendered (a value the template
        // cannot take) fails alone; the experiment goes on.
        let workload = match self.setup.template.render(&row.name, &row.assignment) {
            Ok(workload) => workload,
            Err(e) => {
                let message = format!("trial template: {e}");
                return self
                    .fail_to_start(row, "TemplateRenderFailed", message, on_event)
                    .await;
            }
        };
        // A restarted trial's reports continue after those already stored.
        let earlier = if row.started_at.is_some() {
            Earlier::of(self.store.observations(row.id).await?)
        } else {
            Earlier::default()
        };
        let reporting = self.collector.prepare(&row.name);
        let checkpoint = self
            .setup
            .plan
            .checkpoint_dir
            .as_deref()
            .map(|path| Checkpoint {
                path,
                parent: row.labels.get(pbt::LABEL_PARENT).map(String::as_str),
            });
        let request = LaunchRequest {
            experiment: &self.setup.name,
            trial: &row.name,
            workload: &workload,
            parameters: &row.assignment,
            gpu: gpu.as_deref(),
            reporting: &reporting,
            labels: &row.labels,
            checkpoint,
        };
        match self.runner.launch(&request).await {
            Ok(run) => {
                on_event(Event::Started {
                    trial: row.name.clone(),
                    parameters: row.assignment.clone(),
                });
                let metrics = self.collector.attach(&row.name, &run);
                let id = row.id;
                self.live.push(Live::new(row, run, metrics, gpu, earlier));
                // What callers read between decisions (the controller's
                // status) must show it running now.
                self.store_running(id).await
            }
            Err(e) => {
                self.collector.detach(&row.name);
                self.fail_to_start(row, "LaunchFailed", e.to_string(), on_event)
                    .await
            }
        }
    }

    /// Records a pending trial that could not be started as Failed.
    async fn fail_to_start(
        &mut self,
        row: TrialRow,
        reason: &str,
        message: String,
        on_event: &mut (dyn FnMut(Event) + Send),
    ) -> Result<(), EngineError> {
        on_event(Event::Finished {
            trial: row.name.clone(),
            state: TrialState::Failed,
            objective: None,
            reason: format!("could not start: {message}"),
        });
        let outcome = TrialOutcome {
            state: TrialState::Failed,
            reason: reason.into(),
            message,
            objective: None,
            at: now_ms(),
        };
        self.store
            .transition(row.id, &[TrialState::Pending], &outcome)
            .await?;
        self.changed = true;
        Ok(())
    }

    /// Stores Running for launched trials whose start could not be stored
    /// (the store failed just after the launch): their rows still say Pending.
    pub(super) async fn record_launches(&mut self) -> Result<(), EngineError> {
        let unrecorded: Vec<i64> = self
            .live
            .iter()
            .map(|l| l.row.id)
            .filter(|id| {
                self.rows
                    .iter()
                    .any(|r| r.id == *id && r.state == TrialState::Pending)
            })
            .collect();
        for id in unrecorded {
            self.store_running(id).await?;
        }
        Ok(())
    }

    /// Stores that a launched trial runs, and shows it so in `rows`.
    async fn store_running(&mut self, id: i64) -> Result<(), EngineError> {
        let running = TrialOutcome {
            state: TrialState::Running,
            reason: "TrialRunning".into(),
            message: String::new(),
            objective: None,
            at: now_ms(),
        };
        self.store
            .transition(id, &[TrialState::Pending], &running)
            .await?;
        if let Some(r) = self.rows.iter_mut().find(|r| r.id == id) {
            r.state = TrialState::Running;
            r.started_at.get_or_insert(running.at);
        }
        Ok(())
    }
}
