//! The push endpoint over HTTP: both routes queue per trial, refuse
//! strangers, malformed bodies and floods, and keep a trial's reports in
//! arrival order.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::*;

async fn server(limits: PushLimits) -> PushServer {
    PushServer::bind_with_limits("127.0.0.1:0".parse().unwrap(), limits)
        .await
        .unwrap()
}

/// POSTs `body`; returns the status and the reply body.
async fn post(
    url: &str,
    token: Option<&str>,
    content_type: &str,
    body: impl Into<Bytes>,
) -> (u16, String) {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut request = hyper::Request::post(url).header(CONTENT_TYPE, content_type);
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = client
        .request(request.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn pairs(logs: &[MetricLog]) -> Vec<(&str, &str)> {
    logs.iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect()
}

const JSON: &str = "application/json";

#[tokio::test]
async fn pushes_are_queued_per_trial_in_arrival_order() {
    let push = server(PushLimits::default()).await;
    let a = push.register("trial-a").unwrap();
    let b = push.register("trial-b").unwrap();
    assert_eq!(a.token.len(), 32);
    assert!(a.token.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a.token, b.token);
    assert_eq!(a.url, format!("{}/v1/trials/trial-a/metrics", push.url()));
    assert_eq!(a.env()[0], (PUSH_URL_ENV, a.url.as_str()));
    assert!(!format!("{a:?}").contains(&a.token));

    let (status, _) = post(
        &a.url,
        Some(&a.token),
        JSON,
        r#"{"loss": 0.5, "accuracy": "0.7"}"#,
    )
    .await;
    assert_eq!(status, 204);
    let batch = r#"[{"loss": 0.4, "timestamp": 1711111111.5},
                    {"loss": 0.3, "timestamp": "2024-05-01T10:00:00Z"}]"#;
    assert_eq!(post(&a.url, Some(&a.token), JSON, batch).await.0, 204);
    let text = "2024-05-01T10:00:01Z loss=0.2 accuracy=0.9\nepoch 3 loss=.1\n";
    assert_eq!(
        post(&a.url, Some(&a.token), "text/plain; charset=utf-8", text)
            .await
            .0,
        204
    );
    assert_eq!(
        post(&b.url, Some(&b.token), JSON, r#"{"loss": 9}"#).await.0,
        204
    );

    let logs = push.take("trial-a");
    assert_eq!(
        pairs(&logs),
        [
            ("loss", "0.5"),
            ("accuracy", "0.7"),
            ("loss", "0.4"),
            ("loss", "0.3"),
            ("loss", "0.2"),
            ("accuracy", "0.9"),
            ("loss", ".1"),
        ]
    );
    assert!(logs.iter().all(|l| l.time.is_some()));
    assert_eq!(
        logs[2].time,
        Some(Timestamp::from_millisecond(1_711_111_111_500).unwrap())
    );
    assert_eq!(logs[3].time, Some("2024-05-01T10:00:00Z".parse().unwrap()));
    assert_eq!(logs[4].time, Some("2024-05-01T10:00:01Z".parse().unwrap()));
    assert!(push.take("trial-a").is_empty(), "take drains");
    let inbox = push.inbox("trial-b");
    assert_eq!(inbox.trial(), "trial-b");
    assert_eq!(pairs(&inbox.take()), [("loss", "9")]);
    assert!(push.take("trial-b").is_empty());
    push.shutdown().await;
}

/// Concurrent pushes without timestamps: the queue is in the order of
/// the arrival stamps (they used to be taken before the queue's lock,
/// so a later stamp could be queued first).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_are_queued_in_stamp_order() {
    let push = server(PushLimits::default()).await;
    let a = push.register("a").unwrap();
    let mut pushes = tokio::task::JoinSet::new();
    // Bodies big enough that parsing them takes a while: the window
    // in which the old code could stamp one request and queue another.
    const REQUESTS: usize = 300;
    const REPORTS: usize = 40;
    for i in 0..REQUESTS {
        let (url, token) = (a.url.clone(), a.token.clone());
        let one = format!(r#"{{"loss": {i}, "accuracy": {i}}}"#);
        let body = format!("[{}]", vec![one; REPORTS].join(","));
        pushes.spawn(async move { post(&url, Some(&token), JSON, body).await.0 });
    }
    while let Some(status) = pushes.join_next().await {
        assert_eq!(status.unwrap(), 204);
    }
    let logs = push.take("a");
    assert_eq!(logs.len(), REQUESTS * REPORTS * 2);
    let times: Vec<Timestamp> = logs.iter().map(|l| l.time.unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "out of stamp order");
    // One request's reports stay together, in their order.
    assert!(
        logs.chunks(REPORTS * 2)
            .all(|request| request.iter().all(|l| l.value == request[0].value))
    );
}

#[tokio::test]
async fn strangers_and_unknown_trials_are_refused() {
    let push = server(PushLimits::default()).await;
    let a = push.register("a").unwrap();
    let body = r#"{"loss": 1}"#;
    let (status, reply) = post(&a.url, Some("0123456789abcdef0123456789abcdef"), JSON, body).await;
    assert_eq!(
        (status, reply.as_str()),
        (401, r#"{"error":"wrong token"}"#)
    );
    assert_eq!(post(&a.url, None, JSON, body).await.0, 401);
    assert_eq!(post(&a.url, Some(""), JSON, body).await.0, 401);
    let other = push.trial_url("b");
    assert_eq!(post(&other, Some(&a.token), JSON, body).await.0, 404);
    let (status, _) = post(
        &format!("{}/v1/other", push.url()),
        Some(&a.token),
        JSON,
        body,
    )
    .await;
    assert_eq!(status, 404);
    assert!(push.take("a").is_empty());

    // A new registration replaces the token.
    let again = push.register("a").unwrap();
    assert_eq!(post(&a.url, Some(&a.token), JSON, body).await.0, 401);
    assert_eq!(post(&a.url, Some(&again.token), JSON, body).await.0, 204);
    // Unregistering hands back what was not taken, then refuses.
    assert_eq!(pairs(&push.unregister("a")), [("loss", "1")]);
    assert_eq!(post(&a.url, Some(&again.token), JSON, body).await.0, 404);
    assert!(push.unregister("a").is_empty());
}

#[tokio::test]
async fn malformed_bodies_are_400_and_store_nothing() {
    let push = server(PushLimits::default()).await;
    let a = push.register("a").unwrap();
    for (content_type, body, says) in [
        (JSON, "", "not JSON"),
        (JSON, "loss=1", "not JSON"),
        (JSON, "[1, 2]", "element 0"),
        (JSON, "42", "must be a JSON object"),
        (JSON, "{}", "no metrics"),
        (JSON, r#"{"timestamp": 5}"#, "no metrics"),
        (JSON, r#"{"loss": null}"#, "\\\"loss\\\""),
        (JSON, r#"{"loss": {"a": 1}}"#, "an object"),
        (
            JSON,
            r#"{"loss": 1, "timestamp": "yesterday"}"#,
            "timestamp",
        ),
        (JSON, r#"[{"loss": 1}, {"loss": true}]"#, "element 1"),
        (JSON, &"[".repeat(10_000), "not JSON"),
        ("text/plain", "hello world", "no `name=value`"),
        ("text/plain", "loss=abc", "no `name=value`"),
    ] {
        let (status, reply) = post(&a.url, Some(&a.token), content_type, body.to_owned()).await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(reply.contains(says), "{body}: {reply}");
        let _: Value = serde_json::from_str(&reply).unwrap();
    }
    let (status, _) = post(&a.url, Some(&a.token), "text/plain", vec![0xff, 0xfe, b'=']).await;
    assert_eq!(status, 400);
    assert!(push.take("a").is_empty());
}

#[tokio::test]
async fn oversized_bodies_and_full_queues_are_refused() {
    let push = server(PushLimits {
        max_body: 1024,
        max_queued: 3,
    })
    .await;
    let a = push.register("a").unwrap();
    let big = format!(r#"{{"loss": "{}"}}"#, "1".repeat(2000));
    let (status, reply) = post(&a.url, Some(&a.token), JSON, big).await;
    assert_eq!(status, 413, "{reply}");
    let two = r#"[{"loss": 1}, {"loss": 2}]"#;
    assert_eq!(post(&a.url, Some(&a.token), JSON, two).await.0, 204);
    // Two more would make four: refused whole.
    assert_eq!(post(&a.url, Some(&a.token), JSON, two).await.0, 429);
    assert_eq!(
        post(&a.url, Some(&a.token), JSON, r#"{"loss": 3}"#).await.0,
        204
    );
    assert_eq!(push.take("a").len(), 3);
    assert_eq!(post(&a.url, Some(&a.token), JSON, two).await.0, 204);
}

#[tokio::test]
async fn the_default_body_limit_is_one_mebibyte() {
    let push = server(PushLimits::default()).await;
    let a = push.register("a").unwrap();
    let report = r#"{"loss": 0.125},"#;
    let n = 1024 * 1024 / report.len() + 1;
    let big = format!("[{}{{\"loss\": 1}}]", report.repeat(n));
    assert_eq!(post(&a.url, Some(&a.token), JSON, big).await.0, 413);
    let fits = format!("[{}{{\"loss\": 1}}]", report.repeat(n / 2));
    assert_eq!(post(&a.url, Some(&a.token), JSON, fits).await.0, 204);
    assert_eq!(push.take("a").len(), n / 2 + 1);
}

#[tokio::test]
async fn odd_trial_names_route_back_and_shutdown_stops_listening() {
    let push = server(PushLimits::default()).await;
    let odd = push.register("trial with/slash%").unwrap();
    assert!(
        odd.url
            .ends_with("/v1/trials/trial%20with%2Fslash%25/metrics"),
        "{}",
        odd.url
    );
    assert_eq!(
        post(&odd.url, Some(&odd.token), JSON, r#"{"x": 1}"#)
            .await
            .0,
        204
    );
    assert_eq!(push.take("trial with/slash%").len(), 1);

    let addr = push.local_addr();
    push.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

const TRAINER: &str = "/apis/trainer.kubeflow.org/v1alpha1/namespaces";

/// The body `kubeflow.trainer.update_trainjob_status(metrics=…)` sends.
fn trainer_body(metrics: &[(&str, &str)]) -> String {
    let metrics: Vec<Value> = metrics
        .iter()
        .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
        .collect();
    serde_json::json!({"trainerStatus": {
        "lastUpdatedTime": Timestamp::now().to_string(),
        "progressPercentage": 50,
        "metrics": metrics,
    }})
    .to_string()
}

#[tokio::test]
async fn trainer_status_updates_join_the_trials_push_queue() {
    let push = server(PushLimits::default()).await;
    let a = push.register("trial-a").unwrap();
    let url = push.trainer_url("default", "trial-a");
    assert_eq!(
        url,
        format!("{}{TRAINER}/default/trainjobs/trial-a/status", push.url())
    );
    assert_eq!(
        post(&a.url, Some(&a.token), JSON, r#"{"loss": 0.5}"#)
            .await
            .0,
        204
    );
    let (status, reply) = post(
        &url,
        Some(&a.token),
        JSON,
        trainer_body(&[("loss", "0.25"), ("phase", "warmup"), ("accuracy", "0.8")]),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(
        reply,
        serde_json::json!({"metrics": 2, "skipped": ["phase"]})
    );
    // A local endpoint keys trials by name: any namespace reaches them.
    let elsewhere = push.trainer_url("team-x", "trial-a");
    let progress_only = r#"{"trainerStatus": {"progressPercentage": 100}}"#;
    let (status, reply) = post(&elsewhere, Some(&a.token), JSON, progress_only).await;
    assert_eq!(
        (status, reply.as_str()),
        (200, r#"{"metrics":0,"skipped":[]}"#)
    );
    let logs = push.take("trial-a");
    assert_eq!(
        pairs(&logs),
        [("loss", "0.5"), ("loss", "0.25"), ("accuracy", "0.8")]
    );
    assert!(logs.iter().all(|l| l.time.is_some()));
}

#[tokio::test]
async fn trainer_status_on_a_shared_endpoint_is_keyed_by_namespace() {
    let push = server(PushLimits::default()).await;
    let one = push.register("ns1.t1").unwrap();
    let two = push.register("ns2.t1").unwrap();
    let body = trainer_body(&[("loss", "1")]);
    let url = push.trainer_url("ns2", "t1");
    assert_eq!(
        post(&url, Some(&two.token), JSON, body.clone()).await.0,
        200
    );
    assert_eq!(
        post(&url, Some(&one.token), JSON, body.clone()).await.0,
        401
    );
    let unknown = push.trainer_url("ns3", "t1");
    assert_eq!(post(&unknown, Some(&two.token), JSON, body).await.0, 404);
    assert_eq!(push.take("ns2.t1").len(), 1);
    assert!(push.take("ns1.t1").is_empty());
}

#[tokio::test]
async fn trainer_status_refuses_as_the_push_route_does() {
    let push = server(PushLimits {
        max_body: 1024,
        max_queued: 3,
    })
    .await;
    let a = push.register("a").unwrap();
    let url = push.trainer_url("default", "a");
    let body = trainer_body(&[("loss", "1")]);
    let (status, reply) = post(
        &url,
        Some("0123456789abcdef0123456789abcdef"),
        JSON,
        body.clone(),
    )
    .await;
    assert_eq!(
        (status, reply.as_str()),
        (401, r#"{"error":"wrong token"}"#)
    );
    let (status, reply) = post(&url, None, JSON, body.clone()).await;
    assert_eq!(status, 401);
    assert!(reply.contains("KUBEFLOW_TRAINER_SERVER_TOKEN"), "{reply}");
    let other = push.trainer_url("default", "b");
    assert_eq!(
        post(&other, Some(&a.token), JSON, body.clone()).await.0,
        404
    );
    let wrong_verb = format!("{}{TRAINER}/default/trainjobs/a", push.url());
    assert_eq!(
        post(&wrong_verb, Some(&a.token), JSON, body.clone())
            .await
            .0,
        404
    );
    for (bad, says) in [
        ("{", "not JSON"),
        (r#"{"loss": 1}"#, "trainerStatus: missing"),
        (
            r#"{"trainerStatus": {"metrics": [{"name": "loss", "value": 1}]}}"#,
            "trainerStatus.metrics[0].value",
        ),
    ] {
        let (status, reply) = post(&url, Some(&a.token), JSON, bad).await;
        assert_eq!(status, 400, "{bad}: {reply}");
        assert!(reply.contains(says), "{bad}: {reply}");
    }
    let big = trainer_body(&[("loss", &"1".repeat(2000))]);
    assert_eq!(post(&url, Some(&a.token), JSON, big).await.0, 413);
    let two = trainer_body(&[("loss", "1"), ("loss", "2")]);
    assert_eq!(post(&url, Some(&a.token), JSON, two.clone()).await.0, 200);
    assert_eq!(post(&url, Some(&a.token), JSON, two).await.0, 429);
    assert_eq!(push.take("a").len(), 2);
}

#[test]
fn handles_can_live_in_the_engine() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<PushServer>();
    send_sync::<PushInbox>();
    send_sync::<PushCredentials>();
}

#[test]
fn helpers() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
    let mut headers = HeaderMap::new();
    assert_eq!(bearer(&headers), None);
    headers.insert(AUTHORIZATION, "bearer  tok ".parse().unwrap());
    assert_eq!(bearer(&headers), Some("tok"));
    headers.insert(AUTHORIZATION, "Basic tok".parse().unwrap());
    assert_eq!(bearer(&headers), None);
}
