//! A Kubernetes cluster for the controller's tests: the fake API server on
//! a free port with its Job executor running pods in the repository root
//! (or, with `KTUNE_E2E_KUBECONFIG`, a real cluster), driven with the real
//! `kubectl` and the real `ktune controller` binary.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use ktune_fake_apiserver::{Executor, ExecutorConfig, FakeApiServer, ServerHandle, kubeconfig};

use super::{describe, repo_root, scratch};

/// A cluster for one test, with ktune's CRDs installed.
pub struct Cluster {
    /// The test's scratch folder (kubeconfig, kubectl cache, controller db).
    pub dir: PathBuf,
    /// Where kubectl and the controller find the cluster.
    pub kubeconfig: PathBuf,
    fake: Option<(ServerHandle, Executor)>,
}

impl Cluster {
    /// A fresh fake cluster.
    pub async fn fake(name: &str) -> Self {
        Self::fake_with(name, &[]).await
    }

    /// A fresh fake cluster with these manifests created first (the CRDs
    /// of workload kinds: `ktune_fake_apiserver::crds`).
    pub async fn fake_with(name: &str, manifests: &[&str]) -> Self {
        let dir = scratch(name);
        let fake = FakeApiServer::new();
        for manifest in manifests {
            fake.create_manifest(manifest).unwrap();
        }
        let (addr, server) = fake.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let executor = fake.start_executor(ExecutorConfig {
            workdir: repo_root(),
            grace: Duration::from_secs(2),
            ..ExecutorConfig::default()
        });
        let config = dir.join("kubeconfig");
        kubeconfig(&config, &format!("http://{addr}")).unwrap();
        let cluster = Self {
            dir,
            kubeconfig: config,
            fake: Some((server, executor)),
        };
        cluster.apply_crds();
        cluster
    }

    /// The real cluster `KTUNE_E2E_KUBECONFIG` names when set (without the
    /// experiment `name` an earlier run left), else a fake one.
    pub async fn fake_or_real(name: &str) -> Self {
        let Ok(real) = std::env::var("KTUNE_E2E_KUBECONFIG") else {
            return Self::fake(name).await;
        };
        let cluster = Self {
            dir: scratch(name),
            kubeconfig: PathBuf::from(real),
            fake: None,
        };
        cluster.apply_crds();
        let _ = cluster.kubectl(&["delete", "experiment", name, "--ignore-not-found"], None);
        cluster
    }

    /// The fake API server's socket, to take it away and bring it back
    /// (`None` on a real cluster).
    pub fn api_server(&self) -> Option<&ServerHandle> {
        self.fake.as_ref().map(|(server, _)| server)
    }

    fn apply_crds(&self) {
        let crds = repo_root().join("crds");
        let out = self.kubectl(&["apply", "-f", crds.to_str().unwrap()], None);
        assert!(out.status.success(), "{}", describe(&out));
    }

    /// Runs kubectl (blocking: call from `spawn_blocking` while the fake
    /// server runs on the test's runtime).
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new("kubectl");
        command
            .args(args)
            .arg("--cache-dir")
            .arg(self.dir.join("kube-cache"))
            .env("KUBECONFIG", &self.kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match stdin {
            None => command.output().unwrap(),
            Some(text) => {
                let mut child = command.stdin(Stdio::piped()).spawn().unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(text.as_bytes())
                    .unwrap();
                child.wait_with_output().unwrap()
            }
        }
    }

    /// `kubectl get … -o jsonpath=…`.
    pub fn jsonpath(&self, what: &[&str], path: &str) -> String {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        let query = format!("jsonpath={path}");
        args.extend(["-o", &query]);
        let out = self.kubectl(&args, None);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `ktune controller` with `args` (e.g. `--listen off`), its store in
    /// the scratch folder; stderr is kept for [`stop`].
    pub fn controller(&self, args: &[&str]) -> Child {
        self.controller_via(&self.kubeconfig, args)
    }

    /// [`Self::controller`] through another kubeconfig (a recording proxy).
    pub fn controller_via(&self, kubeconfig: &Path, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_ktune"))
            .args(["controller", "--tick-ms", "100"])
            .args(args)
            .arg("--db")
            .arg(format!(
                "sqlite:{}",
                self.dir.join("controller.db").display()
            ))
            .env("KUBECONFIG", kubeconfig)
            .env(
                "KTUNE_LOG",
                std::env::var("E2E_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `ktune convert FILE | kubectl apply -f -`.
    pub fn submit(&self, file: &Path) {
        let converted = Command::new(env!("CARGO_BIN_EXE_ktune"))
            .arg("convert")
            .arg(file)
            .output()
            .unwrap();
        assert!(converted.status.success(), "{}", describe(&converted));
        let text = String::from_utf8(converted.stdout).unwrap();
        let out = self.kubectl(&["apply", "-f", "-"], Some(&text));
        assert!(out.status.success(), "{}", describe(&out));
    }

    /// `kubectl wait --for=condition=CONDITION OBJECT --timeout=SECONDSs`.
    pub fn wait_for(&self, condition: &str, object: &str, seconds: u64) -> Output {
        self.kubectl(
            &[
                "wait",
                &format!("--for=condition={condition}"),
                object,
                &format!("--timeout={seconds}s"),
            ],
            None,
        )
    }
}

/// Kills a controller and returns what it wrote on stderr.
pub fn stop(mut controller: Child) -> String {
    let _ = controller.kill();
    let out = controller.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}
