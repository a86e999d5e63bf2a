//! Every HTTP listener ktune opens (the push endpoint, the dashboard of
//! `ktune ui`, the controller's operations port) under abuse: many idle
//! connections in a process short of file descriptors, a request whose body
//! never comes, headers sent a byte at a time, idle keep-alive connections;
//! and what every response carries (`nosniff`, a Content-Security-Policy),
//! the CSV export's formula defusing and the log endpoint's 404.
//!
//! Loopback only; each test is bounded in time (the slowest wait for the
//! servers' 5 s deadlines).

mod support;

use ktune::store::Store as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ktune::metrics::push::PushServer;
use ktune::store::{NewTrial, SqlStore};
use support::dashboard::{Server, exchange, get, header, start, start_limited};
use support::{scratch, shell_experiment};

/// What a listener must do with a connection that sends no (complete)
/// request: close it within its 5 s header deadline, plus slack for a
/// loaded machine.
const CUT_OFF_WITHIN: Duration = Duration::from_secs(8);

/// How quickly a real request must be answered while idle connections pile
/// up (it takes milliseconds; the slack is for a loaded machine).
const PROMPT: Duration = Duration::from_secs(3);

/// A number from the environment (to rerun a test at another scale), or
/// `default`.
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Opens up to `n` connections to `addr` that send nothing. Connections
/// the kernel cannot take any more are left out.
fn idle_connections(addr: &str, n: u64) -> Vec<TcpStream> {
    let addr: SocketAddr = addr.parse().unwrap();
    (0..n)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok())
        .collect()
}

/// How long until the server closes `stream` (end of file or a reset),
/// reading and dropping whatever it sends; `None` when still open after
/// `bound`. With `drip`, one more header byte is written between reads (a
/// slowloris client).
fn time_to_close(mut stream: TcpStream, bound: Duration, drip: bool) -> Option<Duration> {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while started.elapsed() < bound {
        if drip && stream.write_all(b"a").is_err() {
            return Some(started.elapsed());
        }
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

/// Connects, sends `request` and reads the reply until the server closes
/// the connection or `bound` passes: (reply text, time from connecting to
/// the close).
fn reply_and_close(host: &str, request: &[u8], bound: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    let addr: SocketAddr = host.parse().unwrap();
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, bound) else {
        return ("(no connection)".to_owned(), None);
    };
    stream.write_all(request).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < bound {
        match stream.read(&mut buf) {
            Ok(0) => return (lossy(&reply), Some(started.elapsed())),
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return (lossy(&reply), Some(started.elapsed())),
        }
    }
    (lossy(&reply), None)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `host:port` of an `http://host:port/…` URL.
fn host_of(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    rest.split('/').next().unwrap().to_owned()
}

/// Waits up to `bound` for `path` to exist and returns its content.
fn wait_for_file(path: &Path, bound: Duration, child: &mut Child) -> String {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "ktune ended before {} was written",
            path.display()
        );
        assert!(
            started.elapsed() < bound,
            "{} not written within {bound:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A trial (Python) that writes its push URL to `DIR/url`, waits for
/// `DIR/go`, pushes `loss` once with its token and writes the reply's
/// status and how long it took (seconds) to `DIR/pushed-<mode>`.
const PUSHING_TRIAL: &str = r#"python3 - "$1" <<'EOF'
import os, sys, time, urllib.request
mode, d = sys.argv[1], "DIR"
url, token = os.environ["KTUNE_PUSH_URL"], os.environ["KTUNE_PUSH_TOKEN"]
with open(os.path.join(d, "url.tmp"), "w") as f:
    f.write(url)
os.replace(os.path.join(d, "url.tmp"), os.path.join(d, "url"))
while not os.path.exists(os.path.join(d, "go")):
    time.sleep(0.02)
started = time.monotonic()
try:
    request = urllib.request.Request(url, data=b'{"loss": 0.5}', method="POST",
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    status = urllib.request.urlopen(request, timeout=10).status
except Exception as e:
    status = type(e).__name__
with open(os.path.join(d, "pushed-" + mode), "w") as f:
    f.write("%s %.4f" % (status, time.monotonic() - started))
EOF"#;

/// `ktune run` in a process with few descriptors (`prlimit`): once its
/// first trial is up, a stranger holds hundreds of idle connections to the
/// push endpoint. The trial's push must still be stored at once, and the
/// next trial must still start and push. Before the listeners were bounded
/// the idle connections took every descriptor: the push hung in the
/// backlog and new trials failed with "Too many open files".
///
/// `KTUNE_TEST_IDLE` and `KTUNE_TEST_NOFILE` rerun it at another scale
/// (e.g. 19 500 idle connections against 19 000 descriptors).
#[test]
fn a_real_trials_push_is_stored_promptly_while_idle_connections_pile_up() {
    let idle = env_or("KTUNE_TEST_IDLE", 300);
    let nofile = env_or("KTUNE_TEST_NOFILE", 128);
    let dir = scratch("idle-push");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let script = PUSHING_TRIAL.replace("DIR", &dir.display().to_string());
    let extra = "  parallelTrialCount: 1\n  metricsCollectorSpec: {collector: {kind: Push}}";
    let file = shell_experiment(&dir, "idle", &script, &["a", "b"], extra);
    let mut run = Command::new("prlimit")
        .arg(format!("--nofile={nofile}:{nofile}"))
        .arg(env!("CARGO_BIN_EXE_ktune"))
        .arg("run")
        .arg(&file)
        .args(["--db", &db, "--trials-dir"])
        .arg(dir.join("trials"))
        .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let url = wait_for_file(&dir.join("url"), Duration::from_secs(30), &mut run);
    let held = idle_connections(&host_of(&url), idle);
    std::fs::write(dir.join("go"), "").unwrap();
    let pushed = wait_for_file(&dir.join("pushed-a"), Duration::from_secs(30), &mut run);
    // A failed push fails the test: no need to wait for the run then.
    let wait = if pushed.starts_with("204 ") { 60 } else { 0 };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(wait) {
            let _ = run.kill();
            let _ = run.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(held);
    let output = format!(
        "{}\n{}",
        std::fs::read_to_string(dir.join("stdout")).unwrap_or_default(),
        std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
    );
    let (code, seconds) = pushed.split_once(' ').unwrap();
    let seconds: f64 = seconds.parse().unwrap();
    eprintln!(
        "push with {} idle connections held (ktune limited to {nofile} descriptors): {code} in {seconds:.4} s",
        idle
    );
    assert_eq!(code, "204", "the first trial's push: {pushed}\n{output}");
    assert!(
        seconds < PROMPT.as_secs_f64(),
        "the push took {seconds} s\n{output}"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "ktune run: {status:?}\n{output}"
    );
    assert!(output.contains("2 succeeded"), "{output}");
    let second = std::fs::read_to_string(dir.join("pushed-b")).unwrap_or_default();
    assert!(second.starts_with("204 "), "the second trial: {second:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A trial registered on a push endpoint.
struct Trial {
    token: String,
    /// The endpoint's `host:port`.
    host: String,
    /// The path the trial POSTs to.
    path: String,
}

/// A push endpoint in this process, with trial `t` registered.
async fn push_endpoint() -> (PushServer, Trial) {
    let push = PushServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let credentials = push.register("t").unwrap();
    let trial = Trial {
        host: push.local_addr().to_string(),
        path: credentials
            .url
            .strip_prefix(&push.url())
            .unwrap()
            .to_owned(),
        token: credentials.token,
    };
    (push, trial)
}

/// A trial's push that declares a body and never sends it is answered 408
/// and its connection closed within the 5 s body deadline; nothing is
/// stored, and the next push goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_whose_body_never_arrives_gets_408_and_its_connection_closed() {
    let (push, Trial { token, host, path }) = push_endpoint().await;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"loss\":"
    );
    let (reply, closed) = reply_and_close(&host, head.as_bytes(), Duration::from_secs(12));
    let closed = closed.unwrap_or_else(|| panic!("still open after 12 s: {reply:?}"));
    assert!(closed < CUT_OFF_WITHIN, "closed after {closed:?}");
    assert!(reply.starts_with("HTTP/1.1 408 "), "{reply}");
    assert!(push.take("t").is_empty());
    let body = r#"{"loss": 1}"#;
    let whole = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(exchange(&host, &whole).0, 204);
    assert_eq!(push.take("t").len(), 1);
    push.shutdown().await;
}

/// A free local address (bound, then released) for a server that binds
/// the address it is given.
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The controller's operations port (`/healthz`, `/readyz`, `/metrics`)
/// served in this process until the test ends.
async fn operations_port() -> String {
    let addr = free_addr();
    let ops = Arc::new(ktune::controller::ops::Ops::new());
    let serving =
        ktune::controller::ops::serve(addr, ops, axum::Router::new(), std::future::pending())
            .await
            .unwrap();
    tokio::spawn(serving);
    addr.to_string()
}

/// A dashboard over an empty store, started by `ktune ui` (with few
/// descriptors when `nofile` is given).
async fn dashboard(dir: &Path, nofile: Option<u64>) -> Server {
    let db = format!("sqlite:{}", dir.join("ktune.db").display());
    drop(SqlStore::connect(&db).await.unwrap());
    start_limited(&db, dir, &[], nofile)
}

/// Every listener closes connections that never complete a request (idle
/// from the start, headers dripped a byte at a time, idle after a first
/// request) within its header deadline instead of holding them for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_cuts_off_idle_and_slow_header_connections() {
    let (push, _) = push_endpoint().await;
    let dir = scratch("slow-headers");
    let ui = dashboard(&dir, None).await;
    let hosts = [
        ("push", push.local_addr().to_string()),
        ("operations", operations_port().await),
        ("dashboard", ui.host().to_owned()),
    ];
    let mut checks = Vec::new();
    for (listener, host) in &hosts {
        let idle = TcpStream::connect(host).unwrap();
        let mut slow = TcpStream::connect(host).unwrap();
        slow.write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\nX-Slow: ").as_bytes())
            .unwrap();
        let mut kept = TcpStream::connect(host).unwrap();
        kept.write_all(format!("GET /nothing-here HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
            .unwrap();
        for (what, stream, drip) in [
            ("idle", idle, false),
            ("slowloris", slow, true),
            ("kept alive", kept, false),
        ] {
            let name = format!("{listener}: {what}");
            checks.push(std::thread::spawn(move || {
                (name, time_to_close(stream, Duration::from_secs(10), drip))
            }));
        }
    }
    for check in checks {
        let (name, closed) = check.join().unwrap();
        let closed = closed.unwrap_or_else(|| panic!("{name}: still open after 10 s"));
        assert!(closed < CUT_OFF_WITHIN, "{name}: closed after {closed:?}");
    }
    push.shutdown().await;
    drop(ui);
    std::fs::remove_dir_all(&dir).ok();
}

/// `ktune ui` with few descriptors still answers while hundreds of idle
/// connections are held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_answers_promptly_while_idle_connections_pile_up() {
    let dir = scratch("idle-ui");
    let ui = dashboard(&dir, Some(env_or("KTUNE_TEST_NOFILE", 128))).await;
    let held = idle_connections(ui.host(), env_or("KTUNE_TEST_IDLE", 300));
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        ui.host()
    );
    let started = Instant::now();
    let (reply, closed) = reply_and_close(ui.host(), request.as_bytes(), Duration::from_secs(10));
    let took = started.elapsed();
    eprintln!(
        "dashboard page with {} idle connections held: {took:?}",
        held.len()
    );
    assert!(closed.is_some(), "no complete answer in 10 s: {reply:?}");
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    assert!(took < PROMPT, "took {took:?}");
    drop(held);
    drop(ui);
    std::fs::remove_dir_all(&dir).ok();
}

/// Checks a response head for `nosniff` and a Content-Security-Policy,
/// and returns the policy.
fn security_headers<'a>(what: &str, head: &'a str) -> &'a str {
    assert_eq!(
        header(head, "x-content-type-options"),
        Some("nosniff"),
        "{what}: {head}"
    );
    let csp = header(head, "content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no Content-Security-Policy: {head}"));
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe"), "{what}: {csp}");
    csp
}

/// Every response of every listener says `nosniff` and carries a strict
/// Content-Security-Policy; the dashboard's lets its own script, style
/// and event stream through and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_answers_with_nosniff_and_a_content_security_policy() {
    let (push, trial) = push_endpoint().await;
    let (push_host, path) = (&trial.host, &trial.path);
    let body = r#"{"loss": 1}"#;
    for (token, status) in [(trial.token.as_str(), 204), ("wrong", 401)] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (got, head, _) = exchange(push_host, &request);
        assert_eq!(got, status);
        security_headers(&format!("push {status}"), &head);
    }
    let (got, head, _) = get(push_host, "/");
    assert_eq!(got, 404);
    security_headers("push 404", &head);

    let ops = operations_port().await;
    for (path, status) in [("/healthz", 200), ("/metrics", 200), ("/nope", 404)] {
        let (got, head, _) = get(&ops, path);
        assert_eq!(got, status, "{path}");
        security_headers(&format!("operations {path}"), &head);
    }

    let dir = scratch("csp");
    let ui = dashboard(&dir, None).await;
    for (path, status) in [
        ("/", 200),
        ("/assets/app.js", 200),
        ("/assets/style.css", 200),
        ("/assets/favicon.svg", 200),
        ("/experiments/nope", 404),
        ("/nope", 404),
    ] {
        let (got, head, _) = get(ui.host(), path);
        assert_eq!(got, status, "{path}");
        let csp = security_headers(&format!("dashboard {path}"), &head);
        if path == "/" {
            for allowed in [
                "script-src 'self'",
                "style-src 'self'",
                "connect-src 'self'",
            ] {
                assert!(csp.contains(allowed), "{csp}");
            }
        }
    }
    push.shutdown().await;
    drop(ui);
    std::fs::remove_dir_all(&dir).ok();
}

/// A store in `dir` with experiment `name` over one categorical parameter
/// `p`, and `trials` (name, value of `p`), pending; its URL.
async fn store_with(dir: &Path, name: &str, trials: &[(&str, &str)]) -> String {
    let db = format!("sqlite:{}", dir.join("ktune.db").display());
    let store = SqlStore::connect(&db).await.unwrap();
    let spec = serde_json::json!({
        "apiVersion": "ktune.dev/v1beta1", "kind": "Experiment", "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parameters": [{"name": "p", "parameterType": "categorical",
                            "feasibleSpace": {"list": ["x"]}}]
        }
    });
    let (e, _) = store.create_experiment(name, &spec, 1).await.unwrap();
    let trials: Vec<NewTrial> = trials
        .iter()
        .map(|(trial, p)| NewTrial {
            name: (*trial).to_owned(),
            assignment: vec![("p".into(), (*p).to_owned())],
            labels: std::collections::BTreeMap::new(),
        })
        .collect();
    store.insert_trials(e.id, &trials, 2).await.unwrap();
    db
}

/// Trial names and parameter values that a spreadsheet would run as a
/// formula once it skips leading spaces, or once it splits the line at
/// `;` (spreadsheets in many locales do), reach the CSV export defused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csv_export_defuses_formulas_behind_spaces_and_semicolons() {
    let dir = scratch("csv");
    let trials = [
        (" =1+1", "ok"),
        ("t2", ";=cmd|' /C calc'!A0"),
        ("t3", "a;=HYPERLINK(\"http://x\")"),
        ("t4", "\t@SUM(A1)"),
        ("t5", "x; -2"),
    ];
    let db = store_with(&dir, "csv", &trials).await;
    let ui = start(&db, &dir, &[]);
    let (status, _, csv) = get(ui.host(), "/experiments/csv/trials.csv");
    assert_eq!(status, 200, "{csv}");
    for expected in [
        ",' =1+1,",
        ",;'=cmd|' /C calc'!A0\n",
        ",\"a;'=HYPERLINK(\"\"http://x\"\")\"\n",
        ",\t'@SUM(A1)\n",
        ",x; -2\n",
    ] {
        assert!(csv.contains(expected), "{expected:?} in\n{csv}");
    }
    drop(ui);
    std::fs::remove_dir_all(&dir).ok();
}

/// The log endpoint serves output only for trials the store knows: a log
/// file left in the trials folder for an experiment (or trial) that is not
/// in the store is a 404, like every other page about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_endpoint_is_404_for_experiments_and_trials_not_in_the_store() {
    let dir = scratch("ghost-log");
    let db = store_with(&dir, "real", &[("t-1", "x")]).await;
    let trials_dir = dir.join("trials");
    for (experiment, trial) in [("ghost", "t-1"), ("real", "t-1"), ("real", "t-9")] {
        let folder = trials_dir.join(experiment).join(trial);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("stdout.log"), "secret output\n").unwrap();
    }
    let ui = start(&db, &trials_dir, &[]);
    let (status, _, body) = get(ui.host(), "/experiments/real/trials/t-1/log");
    assert_eq!((status, body.as_str()), (200, "secret output\n"));
    for path in [
        "/experiments/ghost/trials/t-1/log",
        "/experiments/real/trials/t-9/log",
    ] {
        let (status, _, body) = get(ui.host(), path);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("secret output"), "{path}: {body}");
    }
    drop(ui);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn prlimit_is_there() {
    // The descriptor-starvation tests run ktune under `prlimit` (util-linux).
    let out = Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
}
