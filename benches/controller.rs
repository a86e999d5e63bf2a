//! Reconcile throughput and controller memory: `ktune controller` (the
//! release binary, its own process) runs 50 experiments of 20 trivial
//! trials each — 1 000 trials — against the fake API server, whose
//! executor runs every trial's Job as a local process. Reports trials
//! created and completed per second, and the controller's peak and final
//! resident memory.
//!
//! Run: `cargo bench --bench controller` (`-- --experiments N --trials M`
//! to change the load).

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

fn experiment(i: usize, trials: usize) -> String {
    let parallel = trials.min(5);
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
                command: ["sh", "-c", "echo loss=$0", "${{trialParameters.x}}"]
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

fn finished(experiment: &Experiment) -> bool {
    experiment
        .status
        .as_ref()
        .and_then(|s| s.conditions.last())
        .is_some_and(|c| matches!(c.type_.to_string().as_str(), "Succeeded" | "Failed"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let experiments = arg("--experiments", 50);
    let trials = arg("--trials", 20);
    let dir = std::env::temp_dir().join(format!("ktune-bench-controller-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let fake = FakeApiServer::new();
    let (addr, _server) = fake
        .serve("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("fake API server");
    let _executor = fake.start_executor(ExecutorConfig {
        workdir: dir.clone(),
        grace: Duration::from_secs(1),
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
    let api: Api<Experiment> = Api::all(client);

    let mut controller = Command::new(env!("CARGO_BIN_EXE_ktune"))
        .args(["controller", "--listen", "off", "--tick-ms", "100", "--db"])
        .arg(format!("sqlite:{}", dir.join("controller.db").display()))
        .env("KUBECONFIG", &config)
        .env("KTUNE_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ktune controller");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle_peak, _) = memory(controller.id());

    let manifest: String = (0..experiments).map(|i| experiment(i, trials)).collect();
    let start = Instant::now();
    fake.create_manifest(&manifest)
        .expect("experiments created");
    let mut peak = 0;
    let deadline = start + Duration::from_secs(1800);
    loop {
        let (hwm, _) = memory(controller.id());
        peak = peak.max(hwm);
        let list = api.list(&ListParams::default()).await.expect("list");
        let done = list.items.iter().filter(|e| finished(e)).count();
        if done == experiments || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = start.elapsed();
    let (hwm, rss) = memory(controller.id());
    let list = api.list(&ListParams::default()).await.expect("list");
    let succeeded: i64 = list
        .items
        .iter()
        .filter_map(|e| e.status.as_ref()?.trials_succeeded)
        .map(i64::from)
        .sum();
    for e in list.items.iter().filter(|e| {
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
    let _ = controller.kill();
    let _ = controller.wait();
    let total = experiments * trials;
    #[allow(clippy::cast_precision_loss)]
    let rate = succeeded as f64 / elapsed.as_secs_f64();
    println!(
        "controller: {experiments} experiments x {trials} trials = {total} trials; {succeeded} succeeded in {:.1} s = {rate:.1} trials/s created and completed",
        elapsed.as_secs_f64()
    );
    println!(
        "controller memory: idle peak {} MiB, peak {} MiB, final RSS {} MiB",
        idle_peak / 1024,
        hwm.max(peak) / 1024,
        rss / 1024
    );
    let _ = std::fs::remove_dir_all(&dir);
}
