//! `ktune controller` operations: the health and metrics endpoints and
//! leader election, checked on the real binary against the fake API server
//! (with its Job executor), driven with the real `kubectl`.

mod support;

use ktune::store::Store as _;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::cluster::{Cluster, stop};
use support::{describe, shell_experiment};

/// `ktune controller` with its endpoints on `listen`, and `extra` args.
fn controller(cluster: &Cluster, listen: SocketAddr, extra: &[&str]) -> Child {
    controller_via(cluster, &cluster.kubeconfig, listen, extra)
}

/// [`controller`] through another kubeconfig.
fn controller_via(
    cluster: &Cluster,
    kubeconfig: &Path,
    listen: SocketAddr,
    extra: &[&str],
) -> Child {
    let listen = listen.to_string();
    let mut args = vec!["--listen", listen.as_str()];
    args.extend_from_slice(extra);
    cluster.controller_via(kubeconfig, &args)
}

/// A free local port (bound, then released).
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// `GET path` over plain HTTP/1.0: the status code and body, or `None`
/// while nothing listens.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

/// Polls `path` until it answers `code`, for at most `seconds`.
fn wait_http(addr: SocketAddr, path: &str, code: u16, seconds: u64) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if let Some((c, body)) = get(addr, path)
            && c == code
        {
            return Some(body);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The value of the sample `name{labels…}` whose labels contain all of
/// `labels` (0 when absent).
fn sample(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// An experiment whose trials print `loss=` for `steps` steps of `sleep`
/// seconds, two at a time.
fn counting_experiment(dir: &Path, name: &str, modes: &[&str], steps: u32, sleep: f64) -> PathBuf {
    let script = format!(
        "i=0; while [ $i -lt {steps} ]; do i=$((i+1)); echo \"loss=$i\"; sleep {sleep}; done"
    );
    shell_experiment(dir, name, &script, modes, "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_readyz_and_metrics_report_reconciles_and_trials_by_state() {
    let cluster = Cluster::fake("metrics").await;
    let listen = free_addr();
    let file = counting_experiment(&cluster.dir, "metered", &["a", "b", "c"], 3, 0.05);
    let (cluster, controller, metrics) = tokio::task::spawn_blocking(move || {
        // Without the CRDs the controller cannot start: never ready.
        let controller = controller(&cluster, listen, &[]);
        let health = wait_http(listen, "/healthz", 200, 30);
        assert!(health.is_some(), "/healthz never answered 200");
        let ready = wait_http(listen, "/readyz", 200, 30);
        assert!(ready.is_some(), "/readyz never answered 200");
        cluster.submit(&file);
        let waited = cluster.wait_for("Succeeded", "experiment/metered", 90);
        assert!(waited.status.success(), "{}", describe(&waited));
        // The worker writes the final status, then the gauges are final.
        std::thread::sleep(Duration::from_millis(500));
        let (code, metrics) = get(listen, "/metrics").unwrap();
        assert_eq!(code, 200, "{metrics}");
        let trials = cluster.jsonpath(&["experiment", "metered"], "{.status.trialsSucceeded}");
        assert_eq!(trials, "3");
        // The dashboard is served on the same port, over the controller's store.
        let (code, home) = get(listen, "/").unwrap();
        assert_eq!(code, 200, "{home}");
        assert!(home.contains("metered"), "{home}");
        let link = home
            .split("href=\"/experiments/")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default()
            .to_owned();
        let (code, page) = get(listen, &format!("/experiments/{link}")).unwrap();
        assert_eq!(code, 200, "{page}");
        assert!(page.contains("3 succeeded"), "{page}");
        (cluster, controller, metrics)
    })
    .await
    .unwrap();
    let logs = stop(controller);
    let experiment = sample(
        &metrics,
        "ktune_reconciles_total",
        &[r#"controller="experiment""#],
    );
    let trial = sample(
        &metrics,
        "ktune_reconciles_total",
        &[r#"controller="trial""#],
    );
    assert!(
        experiment > 0.0 && trial > 0.0,
        "{experiment} {trial}\n{metrics}\n{logs}"
    );
    assert!(
        metrics.contains("ktune_reconcile_duration_seconds_bucket"),
        "{metrics}"
    );
    // The grid was asked at least once, and each call took some time.
    let calls = sample(
        &metrics,
        "ktune_suggestion_duration_seconds_count",
        &[r#"algorithm="grid""#],
    );
    let seconds = sample(
        &metrics,
        "ktune_suggestion_duration_seconds_sum",
        &[r#"algorithm="grid""#],
    );
    assert!(
        calls >= 1.0 && seconds > 0.0,
        "{calls} {seconds}\n{metrics}"
    );
    let succeeded = sample(
        &metrics,
        "ktune_trials",
        &[r#"experiment="metered""#, r#"state="Succeeded""#],
    );
    let running = sample(
        &metrics,
        "ktune_trials",
        &[r#"experiment="metered""#, r#"state="Running""#],
    );
    assert_eq!(succeeded, 3.0, "{metrics}");
    assert_eq!(running, 0.0, "{metrics}");
    assert_eq!(sample(&metrics, "ktune_leader", &[]), 1.0, "{metrics}");
    drop(cluster);
}

/// The lease's holder, as kubectl shows it.
fn holder(cluster: &Cluster) -> String {
    cluster.jsonpath(
        &["lease", "ktune-controller", "-n", "default"],
        "{.spec.holderIdentity}",
    )
}

fn wait_holder(cluster: &Cluster, want: &str, seconds: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if holder(cluster) == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_leader_election_one_controller_works_and_a_standby_takes_over_when_it_dies() {
    let cluster = Cluster::fake("leader").await;
    let (a, b) = (free_addr(), free_addr());
    let file = counting_experiment(&cluster.dir, "elected", &["w", "x", "y", "z"], 8, 0.25);
    let elect = |identity: &'static str| {
        [
            "--leader-elect",
            "--identity",
            identity,
            "--lease-namespace",
            "default",
            "--lease-duration-seconds",
            "3",
        ]
    };
    let (cluster, second, metrics_b, takeover) = tokio::task::spawn_blocking(move || {
        let first = controller(&cluster, a, &elect("first"));
        assert!(wait_http(a, "/readyz", 200, 30).is_some());
        assert!(wait_holder(&cluster, "first", 30), "{}", holder(&cluster));
        let second = controller(&cluster, b, &elect("second"));
        let standby = wait_http(b, "/readyz", 200, 30).unwrap();
        assert!(standby.contains("not leader"), "{standby}");
        cluster.submit(&file);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline
            && cluster.jsonpath(&["experiment", "elected"], "{.status.trialsRunning}") != "2"
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        let (_, metrics_b) = get(b, "/metrics").unwrap();
        let (_, metrics_a) = get(a, "/metrics").unwrap();
        assert!(
            sample(&metrics_a, "ktune_reconciles_total", &[]) > 0.0,
            "{metrics_a}"
        );
        // The leader dies without releasing the lease.
        let killed = Instant::now();
        let first_logs = stop(first);
        assert!(
            wait_holder(&cluster, "second", 20),
            "{}\n{first_logs}",
            holder(&cluster)
        );
        let takeover = killed.elapsed();
        let waited = cluster.wait_for("Succeeded", "experiment/elected", 90);
        assert!(waited.status.success(), "{}", describe(&waited));
        (cluster, second, metrics_b, takeover)
    })
    .await
    .unwrap();
    eprintln!("takeover after {takeover:?}");
    // Before the takeover the standby reconciled nothing.
    assert_eq!(
        sample(&metrics_b, "ktune_reconciles_total", &[]),
        0.0,
        "{metrics_b}"
    );
    assert_eq!(sample(&metrics_b, "ktune_leader", &[]), 0.0, "{metrics_b}");
    // Within the lease duration (3 s) plus one retry period and kubectl's polling.
    assert!(takeover < Duration::from_secs(6), "{takeover:?}");
    let (_, metrics) = get(b, "/metrics").unwrap();
    assert_eq!(sample(&metrics, "ktune_leader", &[]), 1.0, "{metrics}");
    // A graceful stop (SIGTERM, as Kubernetes sends) releases the lease.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(second.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = second.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{logs}");
    let (cluster, released, table) = tokio::task::spawn_blocking(move || {
        let released = holder(&cluster);
        let table = cluster.kubectl(&["get", "trials"], None);
        (cluster, released, table)
    })
    .await
    .unwrap();
    assert_eq!(released, "", "{logs}");
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert_eq!(table.matches("elected-").count(), 4, "{table}");
    let db = format!("sqlite:{}", cluster.dir.join("controller.db").display());
    let store = ktune::store::SqlStore::connect(&db).await.unwrap();
    let experiments = store.experiments().await.unwrap();
    assert_eq!(experiments.len(), 1, "{experiments:?}");
    let trials = store.trials(experiments[0].id).await.unwrap();
    assert_eq!(trials.len(), 4, "no trial duplicated: {trials:#?}\n{logs}");
    for t in &trials {
        let reports = store.observations(t.id).await.unwrap();
        let losses = reports.iter().filter(|r| r.metric == "loss").count();
        assert_eq!(losses, 8, "{}: each step stored once: {reports:?}", t.name);
    }
}

/// `kubectl kustomize deploy/`, parsed.
fn render_deploy(cluster: &Cluster) -> Vec<serde_json::Value> {
    let deploy = support::repo_root().join("deploy");
    let out = cluster.kubectl(&["kustomize", deploy.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", describe(&out));
    serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).unwrap()
}

fn kinds(objects: &[serde_json::Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_renders_with_kubectl_kustomize_and_kubectl_apply_k_installs_it_all() {
    let cluster = Cluster::fake("deploy").await;
    let (objects, applied, crds, installed) = tokio::task::spawn_blocking(move || {
        let objects = render_deploy(&cluster);
        let deploy = support::repo_root().join("deploy");
        let applied = cluster.kubectl(&["apply", "-k", deploy.to_str().unwrap()], None);
        let crds = cluster.jsonpath(&["crds"], "{.items[*].metadata.name}");
        let installed = cluster.jsonpath(
            &[
                "-n",
                "ktune-system",
                "deployments,services,serviceaccounts,roles,rolebindings",
            ],
            "{.items[*].kind}",
        );
        (objects, applied, crds, installed)
    })
    .await
    .unwrap();
    assert!(applied.status.success(), "{}", describe(&applied));
    for kind in [
        "Deployment",
        "Service",
        "ServiceAccount",
        "Role",
        "RoleBinding",
    ] {
        assert!(
            installed.contains(kind),
            "{kind} not installed: {installed}"
        );
    }
    let mut kinds = kinds(&objects);
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Deployment",
            "Namespace",
            "Role",
            "RoleBinding",
            "Secret",
            "Service",
            "ServiceAccount"
        ]
    );
    assert!(
        crds.contains("experiments.ktune.dev") && crds.contains("trials.ktune.dev"),
        "{crds}"
    );
    for o in &objects {
        if o["kind"] != "Namespace"
            && o["kind"] != "CustomResourceDefinition"
            && !o["kind"].as_str().unwrap().starts_with("Cluster")
        {
            assert_eq!(o["metadata"]["namespace"], "ktune-system", "{o}");
        }
    }
    let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(args.contains(&"--leader-elect"), "{args:?}");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
    // The arguments parse (clap rejects unknown flags before connecting).
    let help = Command::new(env!("CARGO_BIN_EXE_ktune"))
        .args(&args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success(), "{}", describe(&help));
}

/// A proxy in front of the fake API server recording each request's
/// method and URI, so a test sees every call the controller makes.
async fn recording_proxy(upstream: String) -> (SocketAddr, Arc<Mutex<Vec<(String, String)>>>) {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let log = Arc::new(Mutex::new(Vec::new()));
    let client: Client<_, axum::body::Body> = Client::builder(TokioExecutor::new()).build_http();
    let recorded = Arc::clone(&log);
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let (client, log, upstream) = (client.clone(), Arc::clone(&recorded), upstream.clone());
        async move {
            let (mut parts, body) = request.into_parts();
            let target = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            log.lock()
                .unwrap()
                .push((parts.method.to_string(), target.clone()));
            parts.uri = format!("{upstream}{target}").parse().unwrap();
            let response = client
                .request(axum::http::Request::from_parts(parts, body))
                .await
                .unwrap();
            response.map(axum::body::Body::new)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, log)
}

/// What RBAC checks for a request: (apiGroup, resource[/subresource],
/// verb); `None` for discovery and other non-resource URLs.
fn attributes(method: &str, target: &str) -> Option<(String, String, String)> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let rest = match rest {
        [] => return None,
        ["namespaces", _, rest @ ..] if !rest.is_empty() => rest,
        rest => rest,
    };
    let resource = match rest {
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
        [resource, ..] => (*resource).to_owned(),
        [] => return None,
    };
    let named = rest.len() > 1;
    let watch = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let verb = match (method, named) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => method,
    };
    Some((group.to_owned(), resource, verb.to_owned()))
}

fn allows(rules: &serde_json::Value, (group, resource, verb): &(String, String, String)) -> bool {
    let has = |list: &serde_json::Value, want: &str| {
        list.as_array()
            .is_some_and(|l| l.iter().any(|v| v.as_str() == Some(want)))
    };
    rules.as_array().is_some_and(|rules| {
        rules.iter().any(|r| {
            has(&r["apiGroups"], group) && has(&r["resources"], resource) && has(&r["verbs"], verb)
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_call_of_an_experiment_is_allowed_by_the_deploy_rbac() {
    let cluster = Cluster::fake("rbac").await;
    let upstream = std::fs::read_to_string(&cluster.kubeconfig).unwrap();
    let upstream = upstream
        .lines()
        .find_map(|l| l.trim().strip_prefix("server:"))
        .unwrap()
        .trim()
        .trim_matches('"')
        .to_owned();
    let (proxy, log) = recording_proxy(upstream).await;
    let proxied = cluster.dir.join("proxied-kubeconfig");
    ktune_fake_apiserver::kubeconfig(&proxied, &format!("http://{proxy}")).unwrap();
    let listen = free_addr();
    let file = counting_experiment(&cluster.dir, "audited", &["p", "q", "r"], 3, 0.05);
    let (objects, logs) = tokio::task::spawn_blocking(move || {
        let elect = ["--leader-elect", "--lease-namespace", "default"];
        let controller = controller_via(&cluster, &proxied, listen, &elect);
        assert!(wait_http(listen, "/readyz", 200, 30).is_some());
        cluster.submit(&file);
        let waited = cluster.wait_for("Succeeded", "experiment/audited", 90);
        assert!(waited.status.success(), "{}", describe(&waited));
        // A graceful stop: the lease release is a call too.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(controller.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let out = controller.wait_with_output().unwrap();
        (
            render_deploy(&cluster),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap();
    let rules = |kind: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind)
            .map(|o| o["rules"].clone())
            .unwrap()
    };
    let (cluster_rules, lease_rules) = (rules("ClusterRole"), rules("Role"));
    assert!(!cluster_rules.to_string().contains('*'), "{cluster_rules}");
    let calls: std::collections::BTreeSet<(String, String, String)> = log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(method, target)| attributes(method, target))
        .collect();
    let denied: Vec<_> = calls
        .iter()
        .filter(|call| {
            // The lease, and the leader label on the controller's own pod,
            // are in its own namespace (the Role); the rest cluster-wide.
            let own_namespace = call.1 == "leases" || (call.1 == "pods" && call.2 == "patch");
            let rules = if own_namespace {
                &lease_rules
            } else {
                &cluster_rules
            };
            !allows(rules, call)
        })
        .collect();
    assert!(
        denied.is_empty(),
        "not allowed by deploy/rbac.yaml: {denied:?}\nall: {calls:#?}\n{logs}"
    );
    for expected in [
        ("ktune.dev", "experiments", "watch"),
        ("ktune.dev", "experiments/status", "patch"),
        ("ktune.dev", "trials", "create"),
        ("batch", "jobs", "create"),
        ("", "pods/log", "get"),
        ("", "events", "create"),
        ("coordination.k8s.io", "leases", "update"),
    ] {
        let call = (
            expected.0.to_owned(),
            expected.1.to_owned(),
            expected.2.to_owned(),
        );
        assert!(calls.contains(&call), "{expected:?} not seen: {calls:#?}");
    }
    eprintln!("calls: {calls:?}");
}
