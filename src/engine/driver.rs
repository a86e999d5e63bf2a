//! `ktune run`'s loop: the [`Engine`] over the local runner (trials as
//! process groups under `<trials_root>/<experiment>/`) and the local
//! collectors, stepping whenever a trial process exits (SIGCHLD) and at
//! least every [`TICK`] to read metrics, until the experiment completes or
//! `shutdown` resolves.
//!
//! One driver per experiment: the run holds the experiment's lease in the
//! store (see [`crate::store::Leases`]) from before it reads the experiment
//! until it exits, renews it every third of its time to live, and writes
//! nothing while a renewal is overdue. A run that finds the lease taken by
//! another stops its trials and writes nothing more.
//!
//! A store that becomes unreachable (a PostgreSQL restart, a locked SQLite
//! file) stops nothing: trials keep running, their reports wait in memory
//! or in their log files, and the run goes on where it was once the store
//! answers and the lease is confirmed still its own. Only after
//! [`RunOptions::outage_limit`] does it give up: trials are stopped, and
//! the rerun resumes them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::{Engine, EngineError, EngineOptions, Event, RunSummary};
use crate::api::load::ConfigMaps;
use crate::api::{Experiment, PreparedExperiment};
use crate::metrics::collector::{Collector, CollectorError};
use crate::metrics::kinds::{self, Backend};
use crate::runner::Runner;
use crate::runner::host::LocalRunner;
use crate::store::{Lease, LeaseHolder, Leases, Store, StoreError};

/// How often running trials' metrics are read when nothing else happens.
const TICK: Duration = Duration::from_millis(100);

/// How long a run's lease lives without a heartbeat, by default: a run on
/// another machine waits this long after a holder died without releasing.
pub const LEASE_TTL: Duration = Duration::from_secs(20);

/// How long trials keep running while the store cannot be reached, by default.
pub const OUTAGE_LIMIT: Duration = Duration::from_secs(600);

/// How long the loop waits between tries while the store fails.
const RETRY: Duration = Duration::from_secs(1);

/// How a local run behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where trial folders go (`<root>/<experiment>/<trial>/`).
    pub trials_root: PathBuf,
    /// The working directory of every trial process.
    pub working_dir: PathBuf,
    /// Wall-clock limit per trial.
    pub trial_timeout: Option<Duration>,
    /// Most bytes of output per trial.
    pub log_limit: Option<u64>,
    /// Time between SIGTERM and SIGKILL when stopping a trial.
    pub stop_grace: Duration,
    /// Seed for the suggester (its `random_state` setting overrides it).
    pub seed: u64,
    /// GPU ids to share out: each running trial gets one of them as
    /// `CUDA_VISIBLE_DEVICES`, and trials wait while all are busy. Empty:
    /// trials see whatever GPUs the machine has.
    pub gpus: Vec<String>,
    /// How long the experiment's lease lives without a heartbeat
    /// ([`LEASE_TTL`]); it is renewed every third of it.
    pub lease_ttl: Duration,
    /// How long trials keep running while the store cannot be reached
    /// ([`OUTAGE_LIMIT`]) before they are stopped and the run gives up.
    pub outage_limit: Duration,
    /// The run's store, for Katib's gRPC DBManager API of a Push
    /// experiment (`GetObservationLog` reads it): served on 127.0.0.1 when
    /// set, not at all when `None`.
    pub db_manager_store: Option<crate::store::SqlStore>,
}

/// Why a local run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The engine stopped.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The metrics collector cannot be set up.
    #[error(transparent)]
    Collector(#[from] CollectorError),
    /// The store failed outside the engine (taking the lease).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another run holds the experiment.
    #[error(
        "experiment {experiment:?} is being run by another ktune ({}); wait for it to finish or stop it (the lease of a run that died expires by itself)",
        lease.describe()
    )]
    Held {
        /// The experiment.
        experiment: String,
        /// Its lease.
        lease: Box<Lease>,
    },
    /// Another run took the experiment over while this one could not renew its lease.
    #[error(
        "experiment {experiment:?} was taken over by another ktune while this run could not renew its lease; this run's trials were stopped"
    )]
    LeaseLost {
        /// The experiment.
        experiment: String,
    },
    /// The store stayed unreachable past the outage limit.
    #[error(
        "the database was unreachable for {} s, so the running trials were stopped; run the same command again to resume (nothing stored is lost): {source}",
        seconds
    )]
    Unreachable {
        /// How long it was unreachable.
        seconds: u64,
        /// The last failure.
        #[source]
        source: StoreError,
    },
}

/// Runs (or resumes) an experiment to completion, or until `shutdown`
/// resolves (running trials are then stopped and sent back to Pending, to
/// run again on resume), holding the experiment's lease throughout and
/// releasing it at the end.
///
/// # Errors
/// [`DriverError::Held`] when another run holds the experiment;
/// [`DriverError`] when the experiment cannot be planned or run.
// Every log line of the run names its experiment (a field of the span, in
// JSON logs). ERROR level so that the span is enabled whatever level
// `KTUNE_LOG` lets through (a span's level only gates the span).
#[tracing::instrument(level = "error", name = "experiment", skip_all, fields(experiment = %prepared.name()))]
pub async fn run<S: Store + Leases>(
    prepared: &PreparedExperiment,
    configmaps: &ConfigMaps,
    store: &S,
    options: &RunOptions,
    on_event: &mut (dyn FnMut(Event) + Send),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<RunSummary, DriverError> {
    let name = prepared.name();
    let me = LeaseHolder::this_process();
    if let Some(lease) = store.acquire_lease(name, &me, options.lease_ttl).await? {
        return Err(DriverError::Held {
            experiment: name.to_owned(),
            lease: Box::new(lease),
        });
    }
    let heartbeat = Heartbeat::new(name, &me.token, options.lease_ttl);
    let result = drive(
        prepared, configmaps, store, options, heartbeat, on_event, shutdown,
    )
    .await;
    // Conditional on the token: a lease another run took stays its own.
    // Not tried when the database is down (it would only wait): the lease
    // expires by itself, and a rerun on this machine takes it at once.
    let down = matches!(result, Err(DriverError::Unreachable { .. }));
    if !down && let Err(e) = store.release_lease(name, &me.token).await {
        tracing::warn!("could not release the experiment's lease (it expires by itself): {e}");
    }
    result
}

/// The run under the lease: open the engine, then step it until the
/// experiment completes.
async fn drive<S: Store + Leases>(
    prepared: &PreparedExperiment,
    configmaps: &ConfigMaps,
    store: &S,
    options: &RunOptions,
    mut heartbeat: Heartbeat<'_>,
    on_event: &mut (dyn FnMut(Event) + Send),
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<RunSummary, DriverError> {
    let experiment = &prepared.experiment;
    let runner = local_runner(prepared, options);
    let mut collector = kinds::start(&experiment.spec, Backend::Local).await?;
    if let Some(store) = &options.db_manager_store {
        collector
            .serve_db_manager(prepared.name(), store.clone())
            .await?;
    }
    let mut images = ImagesIgnored::of(experiment);
    let on_event = &mut |event: Event| {
        images.warn_at(&event);
        on_event(event);
    };
    let engine_options = EngineOptions {
        seed: options.seed,
        gpus: options.gpus.clone(),
        store_key: None,
    };
    // Opening reads every stored trial's reports: the lease is kept alive
    // meanwhile, however many there are.
    let opening = Engine::open(
        prepared,
        configmaps,
        store,
        &runner,
        &collector,
        engine_options,
    );
    let mut engine = beating(&mut heartbeat, store, opening).await?;
    let run = Loop {
        store,
        heartbeat,
        outage: Outage::new(options.outage_limit),
    };
    run.until_done(&mut engine, on_event, shutdown).await
}

/// The loop around an open engine: keeps the lease alive and rides out
/// store outages.
struct Loop<'a, S> {
    store: &'a S,
    heartbeat: Heartbeat<'a>,
    outage: Outage,
}

impl<S: Store + Leases> Loop<'_, S> {
    /// Steps the engine until the experiment completes, or `shutdown`
    /// resolves (the running trials are then interrupted).
    async fn until_done<R: Runner, C: Collector>(
        mut self,
        engine: &mut Engine<'_, S, R, C>,
        on_event: &mut (dyn FnMut(Event) + Send),
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<RunSummary, DriverError> {
        // Woken as soon as a trial process exits, so a short trial costs no
        // polling delay; without the signal (never expected) the tick still works.
        let mut exits = signal(SignalKind::child()).ok();
        tokio::pin!(shutdown);
        loop {
            let pause = match round(engine, self.store, &mut self.heartbeat, on_event).await {
                Round::Done(summary) => {
                    self.outage.end();
                    return Ok(summary);
                }
                Round::Fatal(e) => {
                    engine.abandon().await;
                    return Err(e);
                }
                Round::Stepped => {
                    self.outage.end();
                    if engine.needs_step() {
                        continue;
                    }
                    TICK
                }
                Round::Failed(e) => {
                    if let Some(seconds) = self.outage.note(&e) {
                        engine.abandon().await;
                        return Err(DriverError::Unreachable { seconds, source: e });
                    }
                    RETRY
                }
            };
            tokio::select! {
                () = &mut shutdown => {
                    let interrupting = engine.interrupt(on_event);
                    return Ok(beating(&mut self.heartbeat, self.store, interrupting).await?);
                }
                () = child_exited(exits.as_mut()) => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// The warning that `ktune run` ignores the template's container images:
/// said once, as the first trial starts (a run that starts nothing — a
/// finished experiment run again — has nothing to warn about).
struct ImagesIgnored(Option<Vec<String>>);

impl ImagesIgnored {
    fn of(experiment: &Experiment) -> Self {
        Self(Some(container_images(experiment)).filter(|i| !i.is_empty()))
    }

    fn warn_at(&mut self, event: &Event) {
        if matches!(event, Event::Started { .. })
            && let Some(images) = self.0.take()
        {
            tracing::warn!(
                "container images are ignored by `ktune run` ({}): each trial runs its container's command on this machine",
                images.join(", ")
            );
        }
    }
}

/// The runner for the experiment's trials: processes under
/// `<trials_root>/<experiment>/`.
fn local_runner(prepared: &PreparedExperiment, options: &RunOptions) -> LocalRunner {
    LocalRunner {
        trials_dir: options.trials_root.join(prepared.name()),
        working_dir: options.working_dir.clone(),
        primary: prepared
            .experiment
            .spec
            .trial_template
            .as_ref()
            .and_then(|t| t.primary_container_name.clone())
            .unwrap_or_default(),
        timeout: options.trial_timeout,
        log_limit: options.log_limit,
        stop_grace: options.stop_grace,
    }
}

/// How one round of the loop went.
enum Round {
    /// The experiment completed.
    Done(RunSummary),
    /// The engine stepped; the experiment goes on.
    Stepped,
    /// The store failed in a way that may pass: try again later.
    Failed(StoreError),
    /// The run cannot go on: stop the trials and exit with this.
    Fatal(DriverError),
}

/// One round: renew the lease when due, then step the engine unless the
/// lease is unconfirmed for too long (writing then could overwrite the
/// rows of a run that took it over), renewing it alongside a long step.
async fn round<S: Store + Leases, R: Runner, C: Collector>(
    engine: &mut Engine<'_, S, R, C>,
    store: &S,
    heartbeat: &mut Heartbeat<'_>,
    on_event: &mut (dyn FnMut(Event) + Send),
) -> Round {
    let beat = heartbeat.keep(store).await;
    let lost = || {
        Round::Fatal(DriverError::LeaseLost {
            experiment: heartbeat.experiment.to_owned(),
        })
    };
    if heartbeat.lost {
        return lost();
    }
    let stepped = match beat {
        Err(e) if heartbeat.overdue() => return sort_failure(e),
        _ => beating(heartbeat, store, engine.step(on_event)).await,
    };
    if heartbeat.lost {
        return lost();
    }
    match stepped {
        Ok(Some(summary)) => Round::Done(summary),
        Ok(None) => Round::Stepped,
        Err(EngineError::Store(e)) => sort_failure(e),
        Err(e) => Round::Fatal(e.into()),
    }
}

/// A store failure that may pass is retried; any other ends the run.
fn sort_failure(e: StoreError) -> Round {
    if e.is_transient() {
        Round::Failed(e)
    } else {
        Round::Fatal(DriverError::Store(e))
    }
}

/// The lease as this run keeps it.
#[derive(Debug)]
struct Heartbeat<'a> {
    experiment: &'a str,
    token: &'a str,
    ttl: Duration,
    /// When the last renewal that succeeded was sent.
    renewed: Instant,
    /// A renewal found the lease taken by another run.
    lost: bool,
}

impl<'a> Heartbeat<'a> {
    /// A lease taken just now.
    fn new(experiment: &'a str, token: &'a str, ttl: Duration) -> Self {
        Self {
            experiment,
            token,
            ttl,
            renewed: Instant::now(),
            lost: false,
        }
    }

    /// How long until the next renewal is due (a third of the lease's life).
    fn until_due(&self) -> Duration {
        (self.ttl / 3).saturating_sub(self.renewed.elapsed())
    }

    /// Whether the lease has gone unconfirmed for half its life: it may
    /// expire soon, so nothing is written until a renewal succeeds.
    fn overdue(&self) -> bool {
        self.renewed.elapsed() >= self.ttl / 2
    }

    /// Renews the lease when due; marks it lost when another run holds it.
    async fn keep<L: Leases>(&mut self, store: &L) -> Result<(), StoreError> {
        if self.lost || !self.until_due().is_zero() {
            return Ok(());
        }
        // Timed from before the call: the database's expiry is no earlier.
        let sent = Instant::now();
        if store
            .renew_lease(self.experiment, self.token, self.ttl)
            .await?
        {
            self.renewed = sent;
        } else {
            tracing::error!("another ktune took this experiment's lease over; stopping");
            self.lost = true;
        }
        Ok(())
    }
}

/// Runs `work` while renewing the lease alongside it, so a long step (a
/// slow algorithm, stopping many trials with their grace time) does not
/// let the lease expire. Renewal failures are left to the next round.
async fn beating<L: Leases, T>(
    heartbeat: &mut Heartbeat<'_>,
    store: &L,
    work: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(work);
    let beat = async {
        while !heartbeat.lost {
            tokio::time::sleep(heartbeat.until_due().max(TICK)).await;
            if heartbeat.keep(store).await.is_err() {
                tokio::time::sleep(RETRY).await;
            }
        }
    };
    tokio::select! {
        out = &mut work => out,
        () = beat => work.await,
    }
}

/// How long the store has been failing, and when to give up.
#[derive(Debug)]
struct Outage {
    limit: Duration,
    since: Option<Instant>,
}

impl Outage {
    fn new(limit: Duration) -> Self {
        Self { limit, since: None }
    }

    /// Notes a failure; returns the outage's length in seconds once it
    /// passed the limit.
    fn note(&mut self, e: &StoreError) -> Option<u64> {
        let since = *self.since.get_or_insert_with(|| {
            tracing::warn!(
                "the database cannot be reached ({e}); the trials keep running and their reports wait, retrying for up to {} s",
                self.limit.as_secs()
            );
            Instant::now()
        });
        let lasted = since.elapsed();
        (lasted > self.limit).then_some(lasted.as_secs())
    }

    /// The store answers again.
    fn end(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::warn!(
                "the database answers again after {} s; the run goes on",
                since.elapsed().as_secs()
            );
        }
    }
}

async fn child_exited(exits: Option<&mut Signal>) {
    match exits {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// The distinct `image`s of the trial template's containers.
fn container_images(experiment: &Experiment) -> Vec<String> {
    fn walk(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(image)) = map.get("image")
                    && !found.contains(image)
                {
                    found.push(image.clone());
                }
                map.values().for_each(|v| walk(v, found));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    if let Some(spec) = experiment
        .spec
        .trial_template
        .as_ref()
        .and_then(|t| t.trial_spec.as_ref())
    {
        walk(spec, &mut found);
    }
    found
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A lease store whose renewals answer as scripted, counting calls.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<Vec<Result<bool, ()>>>,
        calls: Mutex<u32>,
    }

    impl Leases for Scripted {
        async fn acquire_lease(
            &self,
            _: &str,
            _: &LeaseHolder,
            _: Duration,
        ) -> Result<Option<Lease>, StoreError> {
            Ok(None)
        }

        async fn renew_lease(&self, _: &str, _: &str, _: Duration) -> Result<bool, StoreError> {
            *self.calls.lock().unwrap() += 1;
            match self.answers.lock().unwrap().remove(0) {
                Ok(kept) => Ok(kept),
                Err(()) => Err(StoreError::Database(sqlx::Error::PoolTimedOut)),
            }
        }

        async fn release_lease(&self, _: &str, _: &str) -> Result<bool, StoreError> {
            Ok(true)
        }
    }

    #[tokio::test]
    async fn the_heartbeat_renews_when_due_holds_back_when_unconfirmed_and_notices_a_takeover() {
        let store = Scripted {
            answers: Mutex::new(vec![Err(()), Ok(true), Ok(false)]),
            ..Scripted::default()
        };
        let ttl = Duration::from_millis(300);
        let mut beat = Heartbeat::new("e", "me", ttl);
        // Not due yet: no call.
        beat.keep(&store).await.unwrap();
        assert_eq!(*store.calls.lock().unwrap(), 0);
        // Due, and the database fails: unconfirmed, soon overdue.
        tokio::time::sleep(ttl / 2).await;
        assert!(beat.keep(&store).await.is_err());
        assert!(beat.overdue() && !beat.lost);
        // Renewed: confirmed again.
        beat.keep(&store).await.unwrap();
        assert!(!beat.overdue() && !beat.lost);
        // Another run holds it now.
        tokio::time::sleep(ttl / 2).await;
        beat.keep(&store).await.unwrap();
        assert!(beat.lost);
        beat.keep(&store).await.unwrap();
        assert_eq!(*store.calls.lock().unwrap(), 3, "no renewal once lost");
    }

    #[tokio::test]
    async fn a_long_step_keeps_the_lease_alive() {
        let store = Scripted {
            answers: Mutex::new(vec![Ok(true); 20]),
            ..Scripted::default()
        };
        let mut beat = Heartbeat::new("e", "me", Duration::from_millis(300));
        let out = beating(&mut beat, &store, async {
            tokio::time::sleep(Duration::from_millis(700)).await;
            7
        })
        .await;
        assert_eq!(out, 7);
        assert!(*store.calls.lock().unwrap() >= 3, "renewed while it ran");
        assert!(!beat.overdue());
    }

    #[test]
    fn an_outage_is_given_up_only_past_its_limit() {
        let failure = StoreError::Database(sqlx::Error::PoolTimedOut);
        let mut outage = Outage::new(Duration::from_millis(50));
        assert_eq!(outage.note(&failure), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(outage.note(&failure), Some(0));
        outage.end();
        assert_eq!(outage.note(&failure), None, "a new outage starts afresh");
    }
}
