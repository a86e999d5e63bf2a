//! Reconcile throughput, API cost and controller memory: `ktune
//! controller` (the release binary, its own process) runs 50 experiments
//! of 20 trivial trials each, 4 at a time — 1 000 trials, 200 running at
//! once — against the fake API server, whose executor runs every trial's
//! Job as a local process. Reports trials created and completed per
//! second, the API requests the controller made per trial (counted by the
//! fake server, the benchmark's own requests left out), the CPU time of
//! the controller and of the fake server (this process, its executor
//! included), and the controller's peak and final resident memory; each
//! of `--runs` runs, then the medians.
//!
//! Run: `cargo bench --bench controller` (`-- --experiments N --trials M
//! --parallel P --runs R` to change the load, `--trial-ms T` to have each
//! trial sleep T ms before it reports: a controller that polls pays for
//! each running trial by the tick, one that watches does not).
//! `KTUNE_BENCH_BIN=path/to/ktune` measures another build of the
//! controller (an earlier commit's, say) against the same fake server.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ktune::api::Experiment;
use ktune_fake_apiserver::{ExecutorConfig, FakeApiServer, kubeconfig};
use kube::api::{Api, ListParams};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn experiment(i: usize, load: Load) -> String {
    let Load {
        trials, parallel, ..
    } = load;
    let parallel = trials.min(parallel);
    let sleep = match load.trial_ms {
        0 => String::new(),
        ms => format!("sleep {}.{:03}; ", ms / 1000, ms % 1000),
    };
    format!(
        r#"---
apiVersion: ktune.dev/v1beta1
kind: Experiment
metadata: {{name: bench-{i}, namespace: default}}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm: {{algorithmName: random}}
  parallelTrialCount: {parallel}
  maxTrialCount: {trials}
  parameters:
    - {{name: x, parameterType: double, feasibleSpace: {{min: "0", max: "1"}}}}
  trialTemplate:
    primaryContainerName: main
    trialParameters: [{{name: x, reference: x}}]
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: main
                image: busybox
                command: ["sh", "-c", "{sleep}echo loss=$0", "${{trialParameters.x}}"]
"#
    )
}

/// A process's `VmHWM` and `VmRSS` in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// A process's CPU time (user and system) in seconds, from
/// `/proc/PID/stat` (clock ticks of 1/100 s, as Linux reports them).
#[allow(clippy::cast_precision_loss)]
fn cpu_seconds(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which is in parentheses).
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime: fields 14 and 15, the 12th and 13th after the name.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn finished(experiment: &Experiment) -> bool {
    experiment
        .status
        .as_ref()
        .and_then(|s| s.conditions.last())
        .is_some_and(|c| matches!(c.type_.to_string().as_str(), "Succeeded" | "Failed"))
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
struct Figures {
    seconds: f64,
    succeeded: i64,
    /// API requests from the controller while the experiments ran.
    requests: u64,
    /// The controller's CPU time while they ran.
    controller_cpu: f64,
    /// This process's (the fake API server's and its executor's).
    server_cpu: f64,
    idle_peak_kib: u64,
    peak_kib: u64,
    final_rss_kib: u64,
}

impl Figures {
    #[allow(clippy::cast_precision_loss)]
    fn rate(&self) -> f64 {
        self.succeeded as f64 / self.seconds
    }

    #[allow(clippy::cast_precision_loss)]
    fn requests_per_trial(&self, trials: usize) -> f64 {
        self.requests as f64 / trials as f64
    }
}

/// The load of one run.
#[derive(Debug, Clone, Copy)]
struct Load {
    experiments: usize,
    trials: usize,
    parallel: usize,
    /// How long each trial sleeps before it reports.
    trial_ms: usize,
}

/// A fake API server with the CRDs and an executor, and a client of it.
struct Cluster {
    fake: FakeApiServer,
    _server: ktune_fake_apiserver::ServerHandle,
    _executor: ktune_fake_apiserver::Executor,
    config: std::path::PathBuf,
    api: Api<Experiment>,
}

async fn cluster(dir: &std::path::Path) -> Cluster {
    let fake = FakeApiServer::new();
    let (addr, server) = fake
        .serve("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("fake API server");
    let executor = fake.start_executor(ExecutorConfig {
        workdir: dir.to_path_buf(),
        grace: Duration::from_secs(1),
        ..ExecutorConfig::default()
    });
    let crds = std::fs::read_to_string("crds/experiments.ktune.dev.yaml").expect("crds")
        + "\n---\n"
        + &std::fs::read_to_string("crds/trials.ktune.dev.yaml").expect("crds");
    fake.create_manifest(&crds).expect("CRDs installed");
    let config = dir.join("kubeconfig");
    kubeconfig(&config, &format!("http://{addr}")).expect("kubeconfig");
    let client = {
        let url = format!("http://{addr}").parse().expect("url");
        kube::Client::try_from(kube::Config::new(url)).expect("client")
    };
    Cluster {
        fake,
        _server: server,
        _executor: executor,
        config,
        api: Api::all(client),
    }
}

/// Experiments that have not finished, or finished without a success.
fn report_unfinished(list: &[Experiment]) {
    for e in list.iter().filter(|e| {
        !finished(e)
            || e.status
                .as_ref()
                .and_then(|s| s.trials_succeeded)
                .unwrap_or(0)
                == 0
    }) {
        let last = e.status.as_ref().and_then(|s| s.conditions.last());
        println!(
            "not done: {:?} {:?}",
            e.metadata.name,
            last.map(|c| (c.reason.clone(), c.message.clone()))
        );
    }
}

/// One run: a fresh fake server and controller, the whole load, measured.
async fn run(load: Load) -> Figures {
    let dir = std::env::temp_dir().join(format!("ktune-bench-controller-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let cluster = cluster(&dir).await;
    let binary =
        std::env::var_os("KTUNE_BENCH_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_ktune").into());
    let mut controller = Command::new(binary)
        .args(["controller", "--listen", "off", "--tick-ms", "100", "--db"])
        .arg(format!("sqlite:{}", dir.join("controller.db").display()))
        .env("KUBECONFIG", &cluster.config)
        .env("KTUNE_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ktune controller");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle_peak_kib, _) = memory(controller.id());
    let manifest: String = (0..load.experiments).map(|i| experiment(i, load)).collect();
    let before = cluster.fake.requests();
    let cpu_before = cpu_seconds(controller.id());
    let server_before = cpu_seconds(std::process::id());
    let mut own = 0;
    let start = Instant::now();
    cluster
        .fake
        .create_manifest(&manifest)
        .expect("experiments created");
    let mut peak = 0;
    let deadline = start + Duration::from_secs(1800);
    let list = loop {
        peak = peak.max(memory(controller.id()).0);
        let list = cluster
            .api
            .list(&ListParams::default())
            .await
            .expect("list");
        own += 1;
        let done = list.items.iter().filter(|e| finished(e)).count();
        if done == load.experiments || Instant::now() > deadline {
            break list.items;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let seconds = start.elapsed().as_secs_f64();
    let requests = cluster.fake.requests() - before - own;
    let controller_cpu = cpu_seconds(controller.id()) - cpu_before;
    let server_cpu = cpu_seconds(std::process::id()) - server_before;
    let (hwm, final_rss_kib) = memory(controller.id());
    let succeeded = list
        .iter()
        .filter_map(|e| e.status.as_ref()?.trials_succeeded)
        .map(i64::from)
        .sum();
    report_unfinished(&list);
    let _ = controller.kill();
    let _ = controller.wait();
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
    Figures {
        seconds,
        succeeded,
        requests,
        controller_cpu,
        server_cpu,
        idle_peak_kib,
        peak_kib: hwm.max(peak),
        final_rss_kib,
    }
}

/// The median of some figures.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        f64::midpoint(values[n / 2 - 1], values[n / 2])
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let load = Load {
        experiments: arg("--experiments", 50),
        trials: arg("--trials", 20),
        parallel: arg("--parallel", 4),
        trial_ms: arg("--trial-ms", 0),
    };
    let runs = arg("--runs", 3).max(1);
    let total = load.experiments * load.trials;
    println!(
        "controller: {} experiments x {} trials ({} at a time each) = {total} trials, {} running at once, each sleeping {} ms",
        load.experiments,
        load.trials,
        load.parallel,
        load.experiments * load.parallel.min(load.trials),
        load.trial_ms
    );
    let mut all = Vec::with_capacity(runs);
    for i in 1..=runs {
        let f = run(load).await;
        println!(
            "run {i}: {} succeeded in {:.1} s = {:.1} trials/s; {:.1} API requests per trial; controller CPU {:.1} s, fake server CPU {:.1} s; memory: idle peak {} MiB, peak {} MiB, final RSS {} MiB",
            f.succeeded,
            f.seconds,
            f.rate(),
            f.requests_per_trial(total),
            f.controller_cpu,
            f.server_cpu,
            f.idle_peak_kib / 1024,
            f.peak_kib / 1024,
            f.final_rss_kib / 1024
        );
        all.push(f);
    }
    #[allow(clippy::cast_precision_loss)]
    let peak_mib = median(all.iter().map(|f| f.peak_kib as f64).collect()) / 1024.0;
    println!(
        "controller median of {runs}: {:.1} trials/s created and completed, {:.1} API requests per trial, {:.1} s per run, controller CPU {:.1} s, fake server CPU {:.1} s, peak memory {peak_mib:.0} MiB",
        median(all.iter().map(Figures::rate).collect()),
        median(all.iter().map(|f| f.requests_per_trial(total)).collect()),
        median(all.iter().map(|f| f.seconds).collect()),
        median(all.iter().map(|f| f.controller_cpu).collect()),
        median(all.iter().map(|f| f.server_cpu).collect()),
    );
}
