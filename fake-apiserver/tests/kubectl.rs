//! The real kubectl (1.32 on the dev machines) against the fake API server
//! on 127.0.0.1, with a temporary kubeconfig and discovery cache. Skipped
//! (with a note) where no kubectl is installed.

use ktune_fake_apiserver::{ExecutorConfig, FakeApiServer, kubeconfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
}

impl Kubectl {
    /// Runs kubectl off the async runtime (the server runs on it); returns
    /// (success, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args);
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs kubectl and expects success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(ok, "kubectl {args:?} failed:\n{out}\n{err}");
        out
    }
}

/// The repository root. The runtime `CARGO_MANIFEST_DIR` (set by cargo and
/// nextest) comes first: a test binary reused from a build of another
/// checkout must not read that checkout's files.
fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .parent()
        .unwrap()
        .to_path_buf()
}

fn have_kubectl() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

async fn start(
    dir: &Path,
) -> (
    FakeApiServer,
    ktune_fake_apiserver::ServerHandle,
    ktune_fake_apiserver::Executor,
    Kubectl,
) {
    let server = FakeApiServer::new();
    let (addr, handle) = server.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let executor = server.start_executor(ExecutorConfig {
        workdir: dir.to_path_buf(),
        grace: Duration::from_secs(1),
        ..ExecutorConfig::default()
    });
    let kc = dir.join("kubeconfig");
    kubeconfig(&kc, &format!("http://{addr}")).unwrap();
    (
        server,
        handle,
        executor,
        Kubectl {
            kubeconfig: kc,
            cache: dir.join("cache"),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_get_delete_experiments() {
    if !have_kubectl() {
        eprintln!("skipped: no kubectl on PATH");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, _handle, _executor, k) = start(dir.path()).await;
    let crds = repo().join("crds");
    let out = k.ok(&["apply", "-f", crds.to_str().unwrap()]).await;
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/experiments.ktune.dev created"),
        "{out}"
    );
    assert!(out.contains("trials.ktune.dev created"), "{out}");
    k.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/experiments.ktune.dev",
        "--timeout=5s",
    ])
    .await;

    let example = repo().join("examples/random.yaml");
    let example = example.to_str().unwrap();
    let out = k.ok(&["apply", "-f", example]).await;
    assert_eq!(out.trim(), "experiment.ktune.dev/random-quadratic created");
    let out = k.ok(&["apply", "-f", example]).await;
    assert_eq!(
        out.trim(),
        "experiment.ktune.dev/random-quadratic unchanged"
    );

    // The CRD's printer columns, by plural and by short name.
    let out = k.ok(&["get", "experiments"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "STATUS",
            "BEST",
            "SUCCEEDED",
            "RUNNING",
            "FAILED",
            "AGE"
        ]
    );
    assert!(
        out.lines().nth(1).unwrap().starts_with("random-quadratic "),
        "{out}"
    );
    let wide = k.ok(&["get", "exp", "-o", "wide"]).await;
    let row: Vec<&str> = wide.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, ["random-quadratic", "12", "random", row[3]], "{wide}");

    // A changed spec is a merge patch that bumps generation; server-side apply works too.
    let changed = std::fs::read_to_string(example)
        .unwrap()
        .replace("maxTrialCount: 12", "maxTrialCount: 13");
    let changed_path = dir.path().join("changed.yaml");
    std::fs::write(&changed_path, changed).unwrap();
    let out = k.ok(&["apply", "-f", changed_path.to_str().unwrap()]).await;
    assert_eq!(
        out.trim(),
        "experiment.ktune.dev/random-quadratic configured"
    );
    let out = k
        .ok(&[
            "get",
            "exp",
            "random-quadratic",
            "-o",
            "jsonpath={.metadata.generation} {.spec.maxTrialCount}",
        ])
        .await;
    assert_eq!(out, "2 13");
    let out = k.ok(&["apply", "--server-side", "-f", example]).await;
    assert_eq!(
        out.trim(),
        "experiment.ktune.dev/random-quadratic serverside-applied"
    );

    let out = k.ok(&["delete", "-f", example]).await;
    assert_eq!(
        out.trim(),
        "experiment.ktune.dev \"random-quadratic\" deleted"
    );
    let (_, out, err) = k.run(&["get", "experiments"]).await;
    assert!(
        out.is_empty() && err.contains("No resources found"),
        "{out}{err}"
    );

    // An events.k8s.io/v1 Event (as kube's Recorder writes) reads as core/v1 for kubectl.
    server
        .create_manifest(
            "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata: {name: e1, namespace: default}\neventTime: '2025-01-01T00:00:00.000000Z'\nreportingController: ktune\nreportingInstance: t\naction: Create\nreason: Created\ntype: Normal\nnote: trial created\nregarding: {kind: Experiment, name: random-quadratic, namespace: default}\n",
        )
        .unwrap();
    let out = k.ok(&["get", "events"]).await;
    assert!(
        out.contains("Created")
            && out.contains("trial created")
            && out.contains("random-quadratic"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_wait_job_complete_and_logs() {
    if !have_kubectl() {
        eprintln!("skipped: no kubectl on PATH");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_server, _handle, _executor, k) = start(dir.path()).await;
    let job = r#"apiVersion: batch/v1
kind: Job
metadata:
  name: x
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: ignored
        command: ["sh", "-c", "echo hi"]
"#;
    let path = dir.path().join("job.yaml");
    std::fs::write(&path, job).unwrap();
    let out = k.ok(&["apply", "-f", path.to_str().unwrap()]).await;
    assert_eq!(out.trim(), "job.batch/x created");
    let out = k
        .ok(&["wait", "--for=condition=Complete", "job/x", "--timeout=20s"])
        .await;
    assert_eq!(out.trim(), "job.batch/x condition met");
    assert_eq!(k.ok(&["logs", "job/x"]).await, "hi\n");
    let pods = k
        .ok(&[
            "get",
            "pods",
            "-l",
            "job-name=x",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ])
        .await;
    assert_eq!(pods, "Succeeded");
    // A second apply of a built-in kind sends a strategic merge patch.
    let out = k.ok(&["apply", "-f", path.to_str().unwrap()]).await;
    assert_eq!(out.trim(), "job.batch/x unchanged");
    k.ok(&["delete", "job", "x"]).await;
    assert_eq!(
        k.ok(&["get", "pods", "-o", "name"]).await,
        "",
        "the Job's pod goes with it"
    );
}
