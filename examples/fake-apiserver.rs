//! A fake Kubernetes API server with a Job executor, for trying the ktune
//! controller with kubectl and no cluster.
//!
//! ```text
//! cargo run --release --example fake-apiserver -- --port 8001 --kubeconfig /tmp/fake.kubeconfig
//! export KUBECONFIG=/tmp/fake.kubeconfig
//! kubectl apply -f crds/
//! ```
//!
//! Workloads' containers run as local processes in `--workdir` (images are
//! ignored); `kubectl logs` shows their output. `--workload-crds` also
//! installs the CRDs of every other kind of the trial-kind table (the
//! Kubeflow jobs with MPIJob v1, Trainer's TrainJob, JobSet, Argo's
//! Workflow, Tekton's PipelineRun …), which the executor runs too.
//! Kubeflow Trainer's TrainJob status server is emulated unless
//! `--no-trainer-status`: TrainJob pods report their progress to this
//! server and it lands in `status.trainerStatus`.
//! State lives in memory and is gone when the server stops.

use clap::Parser;
use ktune_fake_apiserver::{ExecutorConfig, FakeApiServer};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(about = "Serve a fake Kubernetes API on 127.0.0.1 (with a Job executor) until killed")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8001)]
    port: u16,
    /// Working directory for Jobs' processes (default: the current directory).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Write a kubeconfig pointing at the server here.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Do not run Jobs.
    #[arg(long)]
    no_executor: bool,
    /// Install the CRDs of the other trial kinds (Kubeflow jobs with the
    /// v1 MPIJob, TrainJob, JobSet, Argo Workflow, Tekton PipelineRun …).
    #[arg(long)]
    workload_crds: bool,
    /// Turn off the emulation of Kubeflow Trainer's `TrainJobStatus` gate
    /// (on by default): TrainJob pods then get no
    /// `KUBEFLOW_TRAINER_SERVER_*` variables and the server accepts no
    /// `POST …/trainjobs/NAME/status` progress reports.
    #[arg(long)]
    no_trainer_status: bool,
    /// Run each pod in a folder of its own, `WORKDIR/NAMESPACE/POD`, as
    /// each pod has its own filesystem on a cluster (default: all pods run
    /// in the working directory itself).
    #[arg(long)]
    workdir_per_pod: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let server = FakeApiServer::with_config(ktune_fake_apiserver::Config {
        trainer_status: !args.no_trainer_status,
        ..Default::default()
    });
    if args.workload_crds {
        server.install_workload_crds()?;
    }
    let (addr, _handle) = server
        .serve(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)))
        .await?;
    let _executor = (!args.no_executor).then(|| {
        let mut config = ExecutorConfig::default();
        if let Some(dir) = &args.workdir {
            config.workdir = dir.clone();
        }
        config.workdir_per_pod = args.workdir_per_pod;
        server.start_executor(config)
    });
    let url = format!("http://{addr}");
    match &args.kubeconfig {
        Some(path) => {
            ktune_fake_apiserver::kubeconfig(path, &url)?;
            println!(
                "fake API server on {url}\n  export KUBECONFIG={}\n  kubectl apply -f crds/",
                path.display()
            );
        }
        None => println!(
            "fake API server on {url}\n  kubectl --server {url} apply -f crds/\n  (or pass --kubeconfig PATH to get a kubeconfig to export as KUBECONFIG)"
        ),
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
