//! `ktune controller`: runs the Kubernetes controller against the cluster
//! of the current kubeconfig (or in-cluster config), state in `--db`.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::api::ApiGroup;
use crate::controller::{self, ControllerOptions};
use crate::store::{SqlStore, without_password};

/// Arguments of `ktune controller`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The API group of the Experiments and Trials to reconcile:
    /// `ktune.dev`, or `kubeflow.org` to replace Katib (its YAML, SDK and
    /// kubectl habits work unchanged; never beside a Katib controller).
    #[arg(long, env = "KTUNE_API_GROUP", default_value = "ktune.dev", value_parser = parse_group)]
    api_group: ApiGroup,
    /// Where observations and algorithm state are kept: `sqlite:PATH` or `postgres://…`.
    #[arg(long, env = "KTUNE_DB", default_value = "sqlite:ktune-controller.db")]
    db: String,
    /// Watch only this namespace (all namespaces by default).
    #[arg(long, short)]
    namespace: Option<String>,
    /// Milliseconds between two readings of a running experiment's metrics
    /// (log streams, pushes); changes of Trials and workloads wake it at once.
    #[arg(long, default_value_t = 500)]
    tick_ms: u64,
    /// Seed of the searches (an algorithm's `random_state` overrides it).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where `/healthz`, `/readyz` and `/metrics` are served (`off`: nowhere).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    listen: Listen,
    /// Run the controllers only while holding the `ktune-controller` Lease,
    /// so that several replicas can run (on in deploy/).
    #[arg(long)]
    leader_elect: bool,
    /// This replica's identity in the lease (hostname-pid by default).
    #[arg(long, env = "KTUNE_IDENTITY")]
    identity: Option<String>,
    /// The lease's namespace (the pod's own in a cluster, else `default`).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Seconds a lease not renewed stays held; it is renewed every third.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..))]
    lease_duration_seconds: u64,
    /// The workload kinds trials may use, as `Kind.version.group` (Katib's
    /// `trialResources`), comma-separated; an experiment of another kind
    /// fails. Grant the same kinds in the RBAC rules (deploy/rbac.yaml
    /// grants the default: every kind ktune runs).
    #[arg(
        long,
        value_delimiter = ',',
        default_values_t = controller::kinds::default_trial_resources(),
        value_parser = parse_trial_resource,
    )]
    trial_resources: Vec<controller::kinds::TrialResource>,
    /// Also reconcile Kubeflow Trainer's OptimizationJobs
    /// (`trainer.kubeflow.org/v1alpha1`): trials as TrainJobs, metrics by
    /// Trainer's progress protocol. Off by default, so that ktune never
    /// fights Trainer's own controller for them.
    #[arg(long, env = "KTUNE_OPTIMIZATION_JOBS")]
    optimization_jobs: bool,
    /// Serve the Push metrics endpoint here (`HOST:PORT`); experiments with
    /// the Push or File collector need it (File sidecars stream to it).
    #[arg(long)]
    push_listen: Option<std::net::SocketAddr>,
    /// The push endpoint's URL as trials reach it (default: the bound
    /// address; in a cluster, the Service's, e.g.
    /// `http://ktune-controller.ktune-system:8081`).
    #[arg(long)]
    push_url: Option<String>,
    /// Serve Katib's gRPC metrics API (`api.v1.beta1.DBManager`, what
    /// `katib.report_metrics` calls) here, `HOST:PORT` or `off`. Default:
    /// Katib's `0.0.0.0:6789` with `--api-group kubeflow.org` (a warning if
    /// that port is taken), else off (docs/katib-metrics-grpc.md).
    #[arg(long, value_parser = parse_listen)]
    db_manager_listen: Option<Listen>,
    /// Who may report for a trial there: `trial-pods` (its pods' own
    /// addresses), `trial-hosts` (also their nodes', for SNAT networks) or
    /// `any` (Katib's behaviour: anyone).
    #[arg(long, value_enum, default_value_t = controller::dbmanager::CallerRule::TrialPods)]
    db_manager_callers: controller::dbmanager::CallerRule,
    /// The image of the File collector's sidecar (it runs `ktune collect-file`).
    #[arg(long, default_value = controller::DEFAULT_COLLECTOR_IMAGE)]
    collector_image: String,
    /// The `ktune` binary in that image.
    #[arg(long, default_value = controller::DEFAULT_COLLECTOR_COMMAND)]
    collector_command: String,
    /// The storage class of PBT's checkpoint volumes (`<experiment>-pbt`,
    /// ReadWriteMany); the cluster's default class when not given.
    #[arg(long, env = "KTUNE_CHECKPOINT_STORAGE_CLASS")]
    checkpoint_storage_class: Option<String>,
}

/// `--api-group`: `ktune.dev` or `kubeflow.org`.
pub(super) fn parse_group(text: &str) -> Result<ApiGroup, String> {
    text.parse()
        .map_err(|e: crate::api::group::UnknownGroup| e.to_string())
}

fn parse_trial_resource(text: &str) -> Result<controller::kinds::TrialResource, String> {
    text.parse()
        .map_err(|e: controller::kinds::BadTrialResource| e.to_string())
}

/// The service account's namespace when running in a pod.
const IN_CLUSTER_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// `--listen`: an address, or `off`.
#[derive(Debug, Clone, Copy)]
struct Listen(Option<std::net::SocketAddr>);

fn parse_listen(text: &str) -> Result<Listen, String> {
    if text == "off" {
        return Ok(Listen(None));
    }
    text.parse()
        .map(|addr| Listen(Some(addr)))
        .map_err(|e| format!("{e}: expected HOST:PORT or `off`"))
}

/// Where Katib's DBManager API listens, whether that address was only the
/// default (then a port already taken is a warning, not an error: a
/// laptop's 6789 may be in use), and where the push endpoint whose queues
/// it feeds listens: `--push-listen`, or — when only the gRPC API needs
/// it — loopback on a free port (trials report through gRPC then; the
/// HTTP push URL is not reachable from pods).
fn metrics_endpoints(
    args: &Args,
) -> (
    Option<std::net::SocketAddr>,
    bool,
    Option<std::net::SocketAddr>,
) {
    let (db_manager, defaulted) = match args.db_manager_listen {
        Some(Listen(addr)) => (addr, false),
        None if args.api_group.is_katib() => (
            Some(std::net::SocketAddr::from((
                [0, 0, 0, 0],
                controller::dbmanager::DEFAULT_PORT,
            ))),
            true,
        ),
        None => (None, false),
    };
    let push = args
        .push_listen
        .or_else(|| db_manager.map(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0))));
    (db_manager, defaulted, push)
}

/// The trial kinds watched: `--trial-resources`, and TrainJob with
/// `--optimization-jobs` (an OptimizationJob's trials are TrainJobs).
fn trial_resources(args: &Args) -> Vec<controller::kinds::TrialResource> {
    let mut kinds = args.trial_resources.clone();
    let train_job = controller::kinds::TrialResource::train_job();
    if args.optimization_jobs && !kinds.contains(&train_job) {
        kinds.push(train_job);
    }
    kinds
}

pub(super) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (db_manager_listen, db_manager_defaulted, push_listen) = metrics_endpoints(args);
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let store = SqlStore::connect(&args.db)
            .await
            .with_context(|| format!("opening {}", without_password(&args.db)))?;
        let client = kube::Client::try_default()
            .await
            .context("connecting to Kubernetes (KUBECONFIG, or the in-cluster config)")?;
        let options = ControllerOptions {
            group: args.api_group,
            namespace: args.namespace.clone(),
            tick: std::time::Duration::from_millis(args.tick_ms.max(10)),
            seed: args.seed,
            listen: args.listen.0,
            trial_resources: trial_resources(args),
            optimization_jobs: args.optimization_jobs,
            push_listen,
            push_url: args.push_url.clone(),
            db_manager_listen,
            db_manager_defaulted,
            db_manager_callers: args.db_manager_callers,
            collector_image: args.collector_image.clone(),
            collector_command: args.collector_command.clone(),
            checkpoint_storage_class: args.checkpoint_storage_class.clone(),
            store: without_password(&args.db),
            leader: args.leader_elect.then(|| {
                let namespace = args.lease_namespace.clone().unwrap_or_else(|| {
                    std::fs::read_to_string(IN_CLUSTER_NAMESPACE)
                        .map(|ns| ns.trim().to_owned())
                        .unwrap_or_else(|_| "default".to_owned())
                });
                let identity = args
                    .identity
                    .clone()
                    .unwrap_or_else(controller::leader::default_identity);
                let mut lease = controller::leader::LeaseConfig::new(&namespace, &identity);
                lease.duration = std::time::Duration::from_secs(args.lease_duration_seconds);
                lease.renew = lease.duration / 3;
                lease
            }),
        };
        // Kubernetes stops a pod with SIGTERM: shut down as on Ctrl-C, so
        // the lease is released and a standby takes over at once.
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("listening for SIGTERM")?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        };
        controller::run(client, store, options, shutdown).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: Args,
    }

    fn endpoints(
        line: &[&str],
    ) -> (
        Option<std::net::SocketAddr>,
        bool,
        Option<std::net::SocketAddr>,
    ) {
        let command =
            Command::try_parse_from(std::iter::once("controller").chain(line.iter().copied()));
        metrics_endpoints(&command.unwrap().args)
    }

    /// Katib mode serves Katib's metrics API on its port by default (a
    /// default whose port is taken only warns), feeding a loopback push
    /// endpoint when none is given; ktune's mode serves none unless asked.
    #[test]
    fn katib_mode_serves_the_metrics_api_by_default() {
        let loopback = Some("127.0.0.1:0".parse().unwrap());
        assert_eq!(
            endpoints(&["--api-group", "kubeflow.org"]),
            (Some("0.0.0.0:6789".parse().unwrap()), true, loopback)
        );
        let push = Some("0.0.0.0:8081".parse().unwrap());
        assert_eq!(
            endpoints(&[
                "--api-group",
                "kubeflow.org",
                "--push-listen",
                "0.0.0.0:8081"
            ]),
            (Some("0.0.0.0:6789".parse().unwrap()), true, push)
        );
        assert_eq!(
            endpoints(&["--api-group", "kubeflow.org", "--db-manager-listen", "off"]),
            (None, false, None)
        );
        assert_eq!(endpoints(&[]), (None, false, None));
        assert_eq!(
            endpoints(&["--db-manager-listen", "127.0.0.1:7000"]),
            (Some("127.0.0.1:7000".parse().unwrap()), false, loopback)
        );
    }
}
