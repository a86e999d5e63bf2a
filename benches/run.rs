//! What `ktune run` costs per trial on top of the trial itself, and how many
//! trivial trials it gets through per second (issue target: under 5 ms per
//! trial over a bare spawn, with durable storage on).
//!
//! - `spawn/bare`: the trial program started and waited for directly, its
//!   output to a file — what any runner must pay.
//! - `run/parallel-1`: the same program as the trials of a real experiment
//!   (random search, SQLite in WAL mode on disk, logs in trial folders,
//!   metrics parsed and stored), one at a time; per trial.
//! - `run/parallel-8`: eight at a time; criterion's throughput is trials/s.
//!
//! Run: `cargo bench --bench run`. The per-trial overhead is
//! `run/parallel-1` minus `spawn/bare`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ktune::api::{PreparedExperiment, no_configmaps, prepare, validate};
use ktune::engine::driver::{RunOptions, run};
use ktune::store::SqlStore;

/// The trial: print one metric line and exit.
const SCRIPT: &str = "echo loss=0.5";

static EXPERIMENTS: AtomicU64 = AtomicU64::new(0);

fn experiment(parallel: u64, trials: u64) -> PreparedExperiment {
    let n = EXPERIMENTS.fetch_add(1, Ordering::Relaxed);
    let yaml = format!(
        r#"
apiVersion: ktune.dev/v1beta1
kind: Experiment
metadata: {{name: bench-{n}}}
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
            containers:
              - name: main
                image: busybox
                command: ["sh", "-c", "{SCRIPT}", "trial", "${{trialParameters.x}}"]
"#
    );
    let value: serde_json::Value = serde_saphyr::from_str(&yaml).expect("bench YAML");
    let context = validate::Context {
        configmaps: no_configmaps(),
        require_configmaps: false,
    };
    prepare(&value, context).expect("bench experiment")
}

fn options(dir: &Path) -> RunOptions {
    RunOptions {
        trials_root: dir.join("trials"),
        working_dir: dir.to_owned(),
        trial_timeout: None,
        log_limit: None,
        stop_grace: Duration::from_secs(1),
        seed: 0,
        gpus: Vec::new(),
        lease_ttl: ktune::engine::driver::LEASE_TTL,
        outage_limit: ktune::engine::driver::OUTAGE_LIMIT,
        db_manager_store: None,
    }
}

fn bare_spawn(dir: &Path) {
    let out = std::fs::File::create(dir.join("bare.log")).expect("log file");
    let status = Command::new("sh")
        .args(["-c", SCRIPT])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null())
        .status()
        .expect("spawn sh");
    assert!(status.success());
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ktune-bench-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn trials(c: &mut Criterion) {
    let dir = scratch();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = format!("sqlite:{}", dir.join("bench.db").display());
    let store = rt.block_on(SqlStore::connect(&url)).expect("sqlite store");

    let mut group = c.benchmark_group("spawn");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("bare", |b| b.iter(|| bare_spawn(&dir)));
    group.finish();

    let mut group = c.benchmark_group("run");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(1));
    for parallel in [1, 8] {
        group.bench_function(format!("parallel-{parallel}"), |b| {
            // One experiment of `iters` trials per sample: time per trial.
            b.iter_custom(|iters| {
                // At least `parallel` trials (validation wants maxTrialCount
                // ≥ parallelTrialCount), scaled back to `iters`.
                let trials = iters.max(parallel);
                let prepared = experiment(parallel, trials);
                let options = options(&dir);
                let start = Instant::now();
                let summary = rt
                    .block_on(run(
                        &prepared,
                        no_configmaps(),
                        &store,
                        &options,
                        &mut |_| {},
                        std::future::pending(),
                    ))
                    .expect("experiment runs");
                let elapsed = start.elapsed();
                assert_eq!(u64::from(summary.counts.succeeded), trials);
                elapsed.mul_f64(iters as f64 / trials as f64)
            });
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, trials);
criterion_main!(benches);
