//! Katib's gRPC DBManager API over real HTTP/2 with a real tonic client:
//! the controller's caller rule (pod addresses from a table standing in for
//! the API server), the checks of reported logs, reads and deletes from a
//! real SQLite store, and a flood from another address that must not cost a
//! real trial a single report. Any address of 127.0.0.0/8 is this machine
//! on Linux, so the client binds 127.0.0.77 to be "another pod".

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ktune::controller::dbmanager::{CallerRule, PodAddresses, PodGate, TrialAddresses};
use ktune::metrics::katib_grpc::client::DbManagerClient;
use ktune::metrics::katib_grpc::messages::{
    DeleteObservationLogRequest, GetObservationLogRequest, Metric, MetricLog, ObservationLog,
    ReportObservationLogRequest,
};
use ktune::metrics::katib_grpc::{DbManagerLimits, DbManagerServer};
use ktune::metrics::push::{PushLimits, PushServer};
use ktune::store::{NewTrial, ObservationRow, SqlStore, Store, TrialOutcome};
use ktune_algorithms::history::TrialState;
use tonic::Code;

/// The pods of each `namespace/trial`, as the API server would list them.
#[derive(Debug, Default)]
struct Pods(HashMap<String, TrialAddresses>);

impl PodAddresses for Pods {
    fn addresses<'a>(
        &'a self,
        namespace: &'a str,
        selectors: &'a [String],
    ) -> BoxFuture<'a, Result<TrialAddresses, kube::Error>> {
        let found = selectors
            .iter()
            .filter_map(|s| s.strip_prefix("katib.kubeflow.org/trial="))
            .find_map(|trial| self.0.get(&format!("{namespace}/{trial}")).cloned())
            .unwrap_or_default();
        Box::pin(async move { Ok(found) })
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

const TRIAL_IP: &str = "127.0.0.1";
const STRANGER_IP: &str = "127.0.0.77";

struct Setup {
    push: Arc<PushServer>,
    store: SqlStore,
    server: DbManagerServer,
}

impl Setup {
    async fn new(limits: PushLimits) -> Self {
        let push = Arc::new(
            PushServer::bind_with_limits("127.0.0.1:0".parse().unwrap(), limits)
                .await
                .unwrap(),
        );
        let store = SqlStore::connect("sqlite::memory:").await.unwrap();
        // Trial t1 of namespace ns runs in a pod at 127.0.0.1.
        let pods = Pods(HashMap::from([(
            "ns/t1".to_owned(),
            TrialAddresses {
                pods: vec![ip(TRIAL_IP)],
                hosts: vec![],
            },
        )]));
        let gate = PodGate::new(
            Arc::new(pods),
            Arc::clone(&push),
            store.clone(),
            CallerRule::TrialPods,
        );
        let server = DbManagerServer::bind(
            "0.0.0.0:0".parse().unwrap(),
            Arc::new(gate),
            Arc::clone(&push),
            store.clone(),
            DbManagerLimits::default(),
        )
        .await
        .unwrap();
        Self {
            push,
            store,
            server,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.server.local_addr().port()))
    }

    async fn client(&self, from: &str) -> DbManagerClient {
        DbManagerClient::connect(self.addr(), Some(ip(from)))
            .await
            .unwrap()
    }
}

fn report(trial: &str, metrics: &[(&str, &str)]) -> ReportObservationLogRequest {
    ReportObservationLogRequest {
        trial_name: trial.to_owned(),
        observation_log: Some(ObservationLog {
            metric_logs: metrics
                .iter()
                .map(|(name, value)| MetricLog {
                    // As the SDK stamps them: `%Y-%m-%dT%H:%M:%SZ`.
                    time_stamp: "2024-05-01T10:00:00Z".to_owned(),
                    metric: Some(Metric {
                        name: (*name).to_owned(),
                        value: (*value).to_owned(),
                    }),
                })
                .collect(),
        }),
    }
}

#[tokio::test]
async fn a_trials_pod_reports_and_others_are_refused_with_nothing_queued() {
    let setup = Setup::new(PushLimits::default()).await;
    setup.push.register("ns.t1").unwrap();
    let pod = setup.client(TRIAL_IP).await;
    pod.report(report("t1", &[("loss", "0.5"), ("accuracy", "0.9")]))
        .await
        .unwrap();
    let queued = setup.push.take("ns.t1");
    let got: Vec<(&str, &str)> = queued
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(got, [("loss", "0.5"), ("accuracy", "0.9")]);
    assert_eq!(
        queued[0].time,
        Some("2024-05-01T10:00:00Z".parse().unwrap())
    );

    let stranger = setup.client(STRANGER_IP).await;
    let denied = stranger
        .report(report("t1", &[("loss", "0.1")]))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("127.0.0.77"), "{denied:?}");

    let unknown = pod
        .report(report("t2", &[("loss", "1")]))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");

    for bad in ["abc", "NaN", "", "1.0.0"] {
        let refused = pod
            .report(report("t1", &[("loss", "0.2"), ("acc", bad)]))
            .await;
        let status = refused.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}: {status:?}");
    }
    let mut bad_time = report("t1", &[("loss", "1")]);
    bad_time.observation_log.as_mut().unwrap().metric_logs[0].time_stamp = "noon".into();
    assert_eq!(
        pod.report(bad_time).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let empty = pod.report(report("", &[("loss", "1")])).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert!(
        setup.push.take("ns.t1").is_empty(),
        "nothing refused was queued"
    );

    // An ended trial (unregistered) is not found any more.
    let _ = setup.push.unregister("ns.t1");
    let ended = pod
        .report(report("t1", &[("loss", "1")]))
        .await
        .unwrap_err();
    assert_eq!(ended.code(), Code::NotFound);
}

#[tokio::test]
async fn limits_answer_resource_exhausted() {
    let setup = Setup::new(PushLimits {
        max_body: 1024 * 1024,
        max_queued: 3,
    })
    .await;
    setup.push.register("ns.t1").unwrap();
    let pod = setup.client(TRIAL_IP).await;
    pod.report(report("t1", &[("a", "1"), ("b", "2")]))
        .await
        .unwrap();
    let full = pod
        .report(report("t1", &[("a", "1"), ("b", "2")]))
        .await
        .unwrap_err();
    assert_eq!(full.code(), Code::ResourceExhausted, "{full:?}");
    assert_eq!(setup.push.take("ns.t1").len(), 2, "refused whole");

    let many: Vec<(&str, &str)> = vec![("a", "1"); 10_001];
    let too_many = pod.report(report("t1", &many)).await.unwrap_err();
    assert_eq!(too_many.code(), Code::ResourceExhausted);
    let huge = "1".repeat(2 * 1024 * 1024);
    let too_big = pod.report(report("t1", &[("a", &huge)])).await.unwrap_err();
    assert_eq!(too_big.code(), Code::OutOfRange, "{too_big:?}");
    assert!(setup.push.take("ns.t1").is_empty());
}

/// Thousands of bogus calls from another address (wrong trial, garbage,
/// unknown names, on many connections) while the real trial reports:
/// every real report is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_from_elsewhere_costs_the_real_trial_nothing() {
    let setup = Arc::new(Setup::new(PushLimits::default()).await);
    setup.push.register("ns.t1").unwrap();
    let mut flood = tokio::task::JoinSet::new();
    for task in 0..64 {
        let setup = Arc::clone(&setup);
        flood.spawn(async move {
            let mut refused = 0usize;
            // Each task has a connection (those over the per-address cap are closed).
            let Ok(client) = DbManagerClient::connect(setup.addr(), Some(ip(STRANGER_IP))).await
            else {
                return refused;
            };
            for i in 0..50 {
                let request = match i % 3 {
                    0 => report("t1", &[("loss", "0.0")]),
                    1 => report(&format!("bogus-{task}-{i}"), &[("loss", "1")]),
                    _ => report("t1", &[("loss", "garbage")]),
                };
                if client.report(request).await.is_err() {
                    refused += 1;
                }
            }
            refused
        });
    }
    let pod = setup.client(TRIAL_IP).await;
    const REAL: usize = 200;
    for step in 0..REAL {
        let value = step.to_string();
        pod.report(report("t1", &[("loss", &value)])).await.unwrap();
    }
    let mut refused = 0;
    while let Some(n) = flood.join_next().await {
        refused += n.unwrap();
    }
    assert!(refused > 1000, "the flood ran: {refused} refused");
    let queued = setup.push.take("ns.t1");
    let values: Vec<String> = queued.iter().map(|l| l.value.clone()).collect();
    let expected: Vec<String> = (0..REAL).map(|i| i.to_string()).collect();
    assert_eq!(values, expected, "every real report, only those, in order");
}

async fn stored_trial(store: &SqlStore, experiment: &str, trial: &str) -> i64 {
    let (record, _) = store
        .create_experiment(experiment, &serde_json::json!({}), 0)
        .await
        .unwrap();
    store
        .insert_trials(
            record.id,
            &[NewTrial {
                name: trial.to_owned(),
                assignment: vec![],
                labels: BTreeMap::new(),
            }],
            0,
        )
        .await
        .unwrap();
    store.trials(record.id).await.unwrap()[0].id
}

fn row(metric: &str, step: i64, value: &str, time: i64) -> ObservationRow {
    ObservationRow {
        metric: metric.into(),
        step,
        value: value.into(),
        number: value.parse().ok(),
        time: Some(time),
    }
}

#[tokio::test]
async fn stored_logs_are_read_filtered_and_deleted_once_the_trial_ended() {
    let setup = Setup::new(PushLimits::default()).await;
    let t0 = 1_714_557_600_000; // 2024-05-01T10:00:00Z
    let id = stored_trial(&setup.store, "ns/exp/uid-1", "t1").await;
    setup
        .store
        .append_observations(
            id,
            &[
                row("loss", 0, "0.5", t0),
                row("loss", 1, "0.4", t0 + 60_000),
                row("accuracy", 0, "0.8", t0 + 30_000),
            ],
        )
        .await
        .unwrap();
    let get = |metric: &str, start: &str, end: &str| GetObservationLogRequest {
        trial_name: "t1".into(),
        metric_name: metric.into(),
        start_time: start.into(),
        end_time: end.into(),
    };
    let pod = setup.client(TRIAL_IP).await;
    let all = pod
        .get(get("", "", ""))
        .await
        .unwrap()
        .observation_log
        .unwrap();
    let shown: Vec<(String, String, String)> = all
        .metric_logs
        .iter()
        .map(|l| {
            let m = l.metric.clone().unwrap();
            (l.time_stamp.clone(), m.name, m.value)
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("2024-05-01T10:00:00Z".into(), "loss".into(), "0.5".into()),
            (
                "2024-05-01T10:00:30Z".into(),
                "accuracy".into(),
                "0.8".into()
            ),
            ("2024-05-01T10:01:00Z".into(), "loss".into(), "0.4".into()),
        ]
    );
    let loss = pod
        .get(get("loss", "2024-05-01T10:00:30Z", ""))
        .await
        .unwrap();
    assert_eq!(loss.observation_log.unwrap().metric_logs.len(), 1);
    let bad = pod.get(get("", "noon", "")).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let stranger = setup.client(STRANGER_IP).await;
    let denied = stranger.get(get("", "", "")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let unknown = pod
        .get(GetObservationLogRequest {
            trial_name: "nope".into(),
            ..GetObservationLogRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    // Deletes: from 127.0.0.1 only (the controller's own pod: port-forward),
    // and not while the trial has not ended.
    let delete = DeleteObservationLogRequest {
        trial_name: "t1".into(),
    };
    let running = pod.delete(delete.clone()).await.unwrap_err();
    assert_eq!(running.code(), Code::FailedPrecondition, "{running:?}");
    let from_elsewhere = stranger.delete(delete.clone()).await.unwrap_err();
    assert_eq!(from_elsewhere.code(), Code::PermissionDenied);
    setup
        .store
        .transition(
            id,
            &[TrialState::Pending],
            &TrialOutcome {
                state: TrialState::Succeeded,
                reason: "Done".into(),
                message: String::new(),
                objective: Some(0.4),
                at: t0,
            },
        )
        .await
        .unwrap();
    pod.delete(delete).await.unwrap();
    assert!(setup.store.observations(id).await.unwrap().is_empty());
    let after = pod.get(get("", "", "")).await.unwrap();
    assert!(after.observation_log.unwrap().metric_logs.is_empty());

    // The same trial name stored in another namespace: ambiguous.
    stored_trial(&setup.store, "other/exp/uid-2", "t1").await;
    let ambiguous = pod.get(get("", "", "")).await.unwrap_err();
    assert_eq!(ambiguous.code(), Code::FailedPrecondition, "{ambiguous:?}");
    assert!(ambiguous.message().contains("other"), "{ambiguous:?}");
}

#[tokio::test]
async fn other_methods_are_unimplemented_and_shutdown_stops_listening() {
    let setup = Setup::new(PushLimits::default()).await;
    // A raw HTTP/2 gRPC call to a path ktune does not serve.
    let stream = tokio::net::TcpStream::connect(setup.addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = http::Request::post(format!(
        "http://{}/api.v1.beta1.Suggestion/GetSuggestions",
        setup.addr()
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(http_body_util::Full::new(hyper::body::Bytes::from_static(
        &[0, 0, 0, 0, 0],
    )))
    .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(status.as_deref(), Some("12"), "UNIMPLEMENTED");

    let addr = setup.addr();
    let Setup { server, .. } = setup;
    server.shutdown().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// The controller's gate against real pod objects: a Job on the fake API
/// server runs its pod as a local process with a pod IP of 127.x.y.z and
/// host IP 127.0.0.1; the gate lists the pod by Katib's trial label.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_gate_reads_the_trial_pods_addresses_from_the_api() {
    use ktune::controller::dbmanager::KubePods;
    use ktune_fake_apiserver::{ExecutorConfig, FakeApiServer};

    let fake = FakeApiServer::new();
    let _executor = fake.start_executor(ExecutorConfig {
        workdir: std::env::temp_dir(),
        grace: Duration::from_secs(1),
        ..ExecutorConfig::default()
    });
    fake.create_manifest(
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: ns}
---
apiVersion: batch/v1
kind: Job
metadata: {name: t1, namespace: ns}
spec:
  template:
    metadata: {labels: {katib.kubeflow.org/trial: t1}}
    spec:
      restartPolicy: Never
      containers: [{name: main, image: none, command: [sleep, "60"]}]
"#,
    )
    .unwrap();
    let client = kube::Client::new(fake.router(), "default");
    let pods = KubePods(client);
    let selectors = ["katib.kubeflow.org/trial=t1".to_owned()];
    let started = std::time::Instant::now();
    let addresses = loop {
        let addresses = pods.addresses("ns", &selectors).await.unwrap();
        if !addresses.pods.is_empty() {
            break addresses;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no pod IP");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let pod_ip = addresses.pods[0];
    assert_ne!(pod_ip, ip(TRIAL_IP), "a pod IP of its own");
    assert_eq!(addresses.hosts, [ip("127.0.0.1")]);

    let push = Arc::new(
        PushServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap(),
    );
    push.register("ns.t1").unwrap();
    let store = SqlStore::connect("sqlite::memory:").await.unwrap();
    for (rule, from_host) in [
        (CallerRule::TrialPods, false),
        (CallerRule::TrialHosts, true),
    ] {
        let gate = PodGate::new(
            Arc::new(pods.clone()),
            Arc::clone(&push),
            store.clone(),
            rule,
        );
        let server = DbManagerServer::bind(
            "0.0.0.0:0".parse().unwrap(),
            Arc::new(gate),
            Arc::clone(&push),
            store.clone(),
            DbManagerLimits::default(),
        )
        .await
        .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], server.local_addr().port()));
        let from = |source: IpAddr| DbManagerClient::connect(addr, Some(source));
        let pod = from(pod_ip).await.unwrap();
        pod.report(report("t1", &[("loss", "1")])).await.unwrap();
        let host = from(ip("127.0.0.1")).await.unwrap();
        let reply = host.report(report("t1", &[("loss", "2")])).await;
        assert_eq!(reply.is_ok(), from_host, "{rule}: {reply:?}");
        if let Err(status) = reply {
            assert_eq!(status.code(), Code::PermissionDenied);
        }
        let stranger = from(ip(STRANGER_IP)).await.unwrap();
        let denied = stranger
            .report(report("t1", &[("loss", "3")]))
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied, "{rule}");
        server.shutdown().await;
    }
    let values: Vec<String> = push.take("ns.t1").into_iter().map(|l| l.value).collect();
    assert_eq!(values, ["1", "1", "2"]);
}
