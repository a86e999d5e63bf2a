//! `ktune ui` end to end: a store filled through the store API, the real
//! binary serving it on a free port, every page fetched over HTTP and its
//! content checked (best trial, counts, one history mark per trial, table
//! paging and sorting, exports, escaping, server-sent events). Also the
//! store queries the dashboard added, on SQLite and PostgreSQL.

mod support;

use ktune::store::Store as _;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use ktune::store::{NewTrial, ObservationRow, SqlStore, TrialOutcome, TrialQuery, TrialSort};
use ktune_algorithms::history::TrialState;
use support::dashboard::{Server, start};
use support::scratch;

/// When the made-up experiments start (2026-11-18 UTC), so pages and
/// screenshots show plausible dates.
const T0: i64 = 1_795_000_000_000;

const XSS: &str = "<script>alert(1)</script>";

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn spec(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "ktune.dev/v1beta1", "kind": "Experiment", "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "parameters": [
                {"name": "lr", "parameterType": "double",
                 "feasibleSpace": {"min": "0.001", "max": "1", "distribution": "logUniform"}},
                {"name": "opt", "parameterType": "categorical",
                 "feasibleSpace": {"list": ["sgd", "adam"]}}
            ]
        }
    })
}

fn outcome(state: TrialState, objective: Option<f64>) -> TrialOutcome {
    TrialOutcome {
        state,
        reason: format!("Trial{state:?}"),
        message: String::new(),
        objective,
        at: T0 + 2_000_000,
    }
}

/// `n` trials `t-001`…: the objective is (log10 lr + 1)² + 0.01·i, trial
/// 7 failed, trial 9 early-stopped, the last two running (the very last
/// without observations); trial 5 has a `<script>` as its optimiser.
/// Returns the store ids by trial number and the best trial's name.
async fn fill(store: &SqlStore, name: &str, n: usize) -> (Vec<i64>, String) {
    let (e, _) = store
        .create_experiment(name, &spec(name), T0 + 1_000_000)
        .await
        .unwrap();
    let trials: Vec<NewTrial> = (1..=n)
        .map(|i| NewTrial {
            name: format!("t-{i:03}"),
            assignment: vec![
                ("lr".into(), format!("{}", 0.001 * 1.06f64.powi(i as i32))),
                (
                    "opt".into(),
                    if i == 5 {
                        XSS.into()
                    } else if i % 2 == 0 {
                        "sgd".into()
                    } else {
                        "adam".into()
                    },
                ),
            ],
            labels: BTreeMap::new(),
        })
        .collect();
    store
        .insert_trials(e.id, &trials, T0 + 1_000_500)
        .await
        .unwrap();
    let rows = store.trials(e.id).await.unwrap();
    let mut best: Option<(f64, String)> = None;
    for (k, t) in rows.iter().enumerate() {
        let i = k + 1;
        let lr = 0.001 * 1.06f64.powi(i as i32);
        let value = (lr.log10() + 1.0).powi(2) + 0.01 * (i % 7) as f64;
        store
            .transition(
                t.id,
                &[TrialState::Pending],
                &outcome(TrialState::Running, None),
            )
            .await
            .unwrap();
        if i + 1 >= n {
            if i + 1 == n {
                let obs: Vec<ObservationRow> = (1..=3)
                    .map(|s| ObservationRow {
                        metric: "loss".into(),
                        step: s,
                        value: format!("{}", value + 1.0 / s as f64),
                        number: Some(value + 1.0 / s as f64),
                        time: None,
                    })
                    .collect();
                store.append_observations(t.id, &obs).await.unwrap();
            }
            continue;
        }
        let (state, objective) = match i {
            7 => (TrialState::Failed, None),
            9 => (TrialState::EarlyStopped, Some(value + 1.0)),
            _ => (TrialState::Succeeded, Some(value)),
        };
        if i <= 20 {
            let obs: Vec<ObservationRow> = (1..=5)
                .map(|s| ObservationRow {
                    metric: "loss".into(),
                    step: s,
                    value: format!("{}", value + 1.0 / s as f64),
                    number: Some(value + 1.0 / s as f64),
                    time: None,
                })
                .collect();
            store.append_observations(t.id, &obs).await.unwrap();
        }
        store
            .transition(t.id, &[TrialState::Running], &outcome(state, objective))
            .await
            .unwrap();
        if state == TrialState::Succeeded && best.as_ref().is_none_or(|(b, _)| value < *b) {
            best = Some((value, t.name.clone()));
        }
    }
    (rows.iter().map(|t| t.id).collect(), best.unwrap().1)
}

/// GET over a plain socket: (status, headers, body).
fn get(server: &Server, path: &str) -> (u16, String, String) {
    support::dashboard::get(server.host(), path)
}

fn page(server: &Server, path: &str) -> String {
    let (status, _, body) = get(server, path);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// The trial names in the table, in order.
fn table_names(html: &str) -> Vec<String> {
    html.split("<tr data-trial=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_serves_every_page_from_a_filled_store() {
    let dir = scratch("pages");
    let db = format!("sqlite:{}", dir.join("ktune.db").display());
    let store = SqlStore::connect(&db).await.unwrap();
    let (ids, best) = fill(&store, "demo", 120).await;
    let trials_dir = dir.join("trials");
    std::fs::create_dir_all(trials_dir.join("demo/t-003")).unwrap();
    std::fs::write(
        trials_dir.join("demo/t-003/stdout.log"),
        "<b>hello</b>\nloss=1\n",
    )
    .unwrap();
    let server = start(&db, &trials_dir, &[]);

    // Experiments: name, algorithm, best trial, counts, sparkline.
    let home = page(&server, "/");
    assert!(home.contains(">demo</a>"), "{home}");
    assert!(home.contains("<td>random</td>"));
    assert!(home.contains(&format!(">{best}</a>")));
    assert!(
        home.contains("<b>120</b> trials · 0 pending · 2 running · 116 succeeded · 1 failed"),
        "{home}"
    );
    assert!(home.contains("class=\"spark\""));
    assert!(home.contains("/assets/app.js"));

    // Experiment: one history mark per trial, best-so-far, curves, importance, spec.
    let exp = page(&server, "/experiments/demo");
    let history = exp
        .split("<section id=\"history\">")
        .nth(1)
        .unwrap()
        .split("</section>")
        .next()
        .unwrap();
    assert_eq!(history.matches("<path class=\"trial ").count(), 120);
    assert_eq!(history.matches("class=\"best\"").count(), 1);
    assert!(history.contains("class=\"trial failed\""));
    assert!(history.contains("class=\"trial early-stopped\""));
    assert!(
        exp.contains(&format!(
            "id=\"best\">best: <a href=\"/experiments/demo/trials/{best}\">{best}</a>"
        )),
        "{exp}"
    );
    assert!(exp.contains("class=\"curve early-stopped\""));
    assert!(
        exp.contains("class=\"curve running\""),
        "running trials' curves are drawn"
    );
    assert!(
        exp.contains("lr (log)"),
        "log-distributed parameters get log axes"
    );
    assert_eq!(
        exp.matches("data-x=").count(),
        3,
        "one brushable axis per parameter and the objective"
    );
    assert!(exp.contains("correlation ratio"));
    assert!(
        exp.contains("class=\"bar top\""),
        "PED-ANOVA shares beside η² with 116 succeeded trials"
    );
    assert!(exp.contains("objectiveMetricName: loss"));
    assert!(!exp.contains(XSS), "stored text is escaped");
    let log_scale = page(&server, "/experiments/demo?log=1");
    assert!(log_scale.contains("loss (log)"));

    // The table pages, sorts and filters in SQL.
    let p2 = page(&server, "/experiments/demo?per=10&page=2");
    let names = table_names(&p2);
    assert_eq!(
        names,
        (11..=20).map(|i| format!("t-{i:03}")).collect::<Vec<_>>()
    );
    assert!(p2.contains("page 2 of 12"));
    assert!(p2.contains("rel=\"next\"") && p2.contains("rel=\"prev\""));
    let sorted = page(&server, "/experiments/demo?sort=objective&per=5");
    assert_eq!(table_names(&sorted)[0], best);
    let desc = page(&server, "/experiments/demo?sort=seq&dir=desc&per=3");
    assert_eq!(table_names(&desc), ["t-120", "t-119", "t-118"]);
    let junk = page(&server, "/experiments/demo?page=abc&per=&sort=nope");
    assert_eq!(
        table_names(&junk).len(),
        50,
        "bad query values fall back to defaults"
    );
    let failed = page(&server, "/experiments/demo?state=Failed");
    assert_eq!(table_names(&failed), ["t-007"]);
    assert!(failed.contains("1 matching"));
    let searched = page(&server, "/experiments/demo?q=T-00");
    assert_eq!(
        table_names(&searched).len(),
        9,
        "name filter is case-insensitive"
    );
    let with_xss = page(&server, "/experiments/demo?per=10");
    assert!(with_xss.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!with_xss.contains(XSS));

    // Exports follow the filter and order.
    let (status, head, csv) = get(&server, "/experiments/demo/trials.csv");
    assert_eq!(status, 200);
    assert!(head.to_lowercase().contains("content-type: text/csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 121);
    assert!(lines[0].ends_with(",lr,opt"), "{}", lines[0]);
    assert!(lines[1].starts_with("1,t-001,Succeeded,"));
    let failed_csv = page(&server, "/experiments/demo/trials.csv?state=Failed");
    assert_eq!(failed_csv.lines().count(), 2);
    let json: serde_json::Value = serde_json::from_str(&page(
        &server,
        "/experiments/demo/trials.json?sort=objective",
    ))
    .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 120);
    assert_eq!(json[0]["name"], best.as_str());
    assert!(page(&server, "/experiments/demo/spec.yaml").contains("algorithmName: random"));

    // A parallel-coordinates selection filters the table, its pages and exports.
    let brush = |json: &str| format!("brush={}", ktune::ui::data::url_encode(json));
    let sgd = page(
        &server,
        &format!(
            "/experiments/demo?per=1000&{}",
            brush(r#"{"params":{"opt":["sgd"]}}"#)
        ),
    );
    let names = table_names(&sgd);
    assert_eq!(names.len(), 60, "even trials use sgd");
    assert!(
        names
            .iter()
            .all(|n| n[2..].parse::<u32>().unwrap() % 2 == 0)
    );
    assert!(sgd.contains("60 matching"));
    assert!(sgd.contains("Selected in the parallel coordinates: opt sgd"));
    let ranged = page(
        &server,
        &format!(
            "/experiments/demo?per=1000&{}",
            brush(r#"{"params":{"lr":[0.002,0.01]},"objective":[0,2]}"#)
        ),
    );
    let names = table_names(&ranged);
    // lr = 0.001·1.06^i within [0.002, 0.01]: i = 12..=39; of those, an
    // objective (log10 lr + 1)² + 0.01·(i mod 7) ≤ 2 from i = 24 on.
    assert_eq!(names.len(), 16, "{names:?}");
    assert_eq!(names.first().map(String::as_str), Some("t-024"));
    let paged = page(
        &server,
        &format!(
            "/experiments/demo?per=10&page=2&{}",
            brush(r#"{"params":{"opt":["sgd"]}}"#)
        ),
    );
    assert_eq!(
        table_names(&paged)[0],
        "t-022",
        "paging applies after the selection"
    );
    assert!(paged.contains("page 2 of 6"));
    let brushed_csv = page(
        &server,
        &format!(
            "/experiments/demo/trials.csv?{}",
            brush(r#"{"params":{"opt":["sgd"]}}"#)
        ),
    );
    assert_eq!(brushed_csv.lines().count(), 61);
    let table_only = page(&server, "/experiments/demo/trials?per=10&page=2");
    assert_eq!(
        table_names(&table_only),
        (11..=20).map(|i| format!("t-{i:03}")).collect::<Vec<_>>()
    );
    assert!(
        table_only.contains("href=\"/experiments/demo/trials?page=3&amp;per=10\""),
        "{table_only}"
    );
    assert!(
        !table_only.contains("<svg class=\"chart"),
        "the table page draws no charts"
    );
    let ignored = page(&server, "/experiments/demo?brush=%7Bnot-json");
    assert!(
        ignored.contains("120 matching"),
        "a malformed selection is ignored"
    );

    // Trial pages: parameters, metrics, output, empty states.
    let t3 = page(&server, "/experiments/demo/trials/t-003");
    assert!(t3.contains("<td>lr</td>"));
    assert!(t3.contains("class=\"chart curves\""));
    assert!(t3.contains("&lt;b&gt;hello&lt;/b&gt;"));
    let t5 = page(&server, "/experiments/demo/trials/t-005");
    assert!(t5.contains("&lt;script&gt;") && !t5.contains(XSS));
    let last = page(&server, "/experiments/demo/trials/t-120");
    assert!(
        last.contains("No observations yet — the trial started"),
        "{last}"
    );
    assert!(last.contains("No log at"));

    // A running trial's output is followed from where the page left off.
    std::fs::create_dir_all(trials_dir.join("demo/t-119")).unwrap();
    std::fs::write(trials_dir.join("demo/t-119/stdout.log"), "epoch 1\n").unwrap();
    let running = page(&server, "/experiments/demo/trials/t-119");
    assert!(
        running.contains("data-follow=\"/experiments/demo/trials/t-119/log\" data-offset=\"8\""),
        "{running}"
    );
    assert!(
        !t3.contains("data-follow"),
        "a finished trial's log is not followed"
    );
    std::fs::write(
        trials_dir.join("demo/t-119/stdout.log"),
        "epoch 1\nepoch 2\n",
    )
    .unwrap();
    let (status, head, body) = get(&server, "/experiments/demo/trials/t-119/log?offset=8");
    assert_eq!((status, body.as_str()), (200, "epoch 2\n"));
    assert!(head.to_lowercase().contains("x-log-offset: 16"), "{head}");
    let (_, head, body) = get(&server, "/experiments/demo/trials/t-119/log?offset=99");
    assert_eq!(
        body, "epoch 1\nepoch 2\n",
        "a shorter file is read from its start"
    );
    assert!(head.to_lowercase().contains("x-log-offset: 16"));
    assert_eq!(get(&server, "/experiments/demo/trials/t-120/log").0, 404);
    assert_eq!(
        get(&server, "/experiments/demo/trials/..%2F..%2Fetc/log").0,
        404
    );
    assert_eq!(get(&server, "/experiments/nope").0, 404);
    assert_eq!(get(&server, "/experiments/demo/trials/nope").0, 404);
    assert!(page(&server, "/assets/style.css").contains(".trial"));

    // Live: the event stream says which experiment changed.
    let host = server.base.clone();
    let events = std::thread::spawn(move || {
        let mut s = TcpStream::connect(&host).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "GET /events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut told = false;
        while Instant::now() < deadline {
            let n = s.read(&mut buf).unwrap();
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.contains("event: ready") && !told {
                told = true;
                std::fs::write(
                    std::env::temp_dir().join(format!("ktune-ui-ready-{}", std::process::id())),
                    "",
                )
                .unwrap();
            }
            if seen.contains("event: change") && seen.contains("\"experiment\":\"demo\"") {
                return seen;
            }
        }
        panic!("no change event: {seen}");
    });
    let flag = std::env::temp_dir().join(format!("ktune-ui-ready-{}", std::process::id()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !flag.exists() {
        assert!(
            Instant::now() < deadline,
            "the event stream never said ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::remove_file(&flag).ok();
    // A running trial reports one more step: only an observation count moves.
    let obs = [ObservationRow {
        metric: "loss".into(),
        step: 99,
        value: "0.5".into(),
        number: Some(0.5),
        time: None,
    }];
    store.append_observations(ids[119 - 1], &obs).await.unwrap();
    let seen = events.join().unwrap();
    assert!(seen.contains("\"runningObservations\":4"), "{seen}");
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_real_ktune_run_shows_up_with_its_best_trial_metrics_and_logs() {
    let dir = scratch("real");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let trials_dir = dir.join("trials");
    let run = Command::new(env!("CARGO_BIN_EXE_ktune"))
        .args([
            "run",
            "examples/random.yaml",
            "--quiet",
            "--db",
            &db,
            "--trials-dir",
        ])
        .arg(&trials_dir)
        .current_dir(support::repo_root())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", support::describe(&run));
    let best = Command::new(env!("CARGO_BIN_EXE_ktune"))
        .args(["best", "random-quadratic", "--db", &db])
        .output()
        .unwrap();
    let best: serde_json::Value = serde_json::from_slice(&best.stdout).unwrap();
    let best = best["trial"].as_str().unwrap().to_owned();

    let server = start(&db, &trials_dir, &[]);
    let home = page(&server, "/");
    assert!(
        home.contains(&format!(">{best}</a>")),
        "the list names the same best trial as `ktune best`"
    );
    assert!(home.contains("<b>12</b> trials"));
    let exp = page(&server, "/experiments/random-quadratic");
    assert_eq!(exp.matches("<path class=\"trial succeeded\"").count(), 12);
    assert_eq!(exp.matches("<path class=\"curve succeeded\"").count(), 12);
    assert!(exp.contains("lr (log)"));
    assert!(exp.contains(&format!(
        "id=\"best\">best: <a href=\"/experiments/random-quadratic/trials/{best}\">"
    )));
    let trial = page(
        &server,
        &format!("/experiments/random-quadratic/trials/{best}"),
    );
    assert!(trial.contains("<h3>accuracy</h3>") && trial.contains("<h3>loss</h3>"));
    assert!(
        trial.contains("epoch 5: loss="),
        "the trial's stdout.log: {trial}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_base_path_prefixes_every_link_and_an_empty_store_says_so() {
    let dir = scratch("base");
    let db = format!("sqlite:{}", dir.join("ktune.db").display());
    drop(SqlStore::connect(&db).await.unwrap());
    let server = start(&db, &dir, &["--base-path", "/k/"]);
    let home = page(&server, "/k/");
    assert!(home.contains("No experiments in this store yet"));
    assert!(home.contains("href=\"/k/assets/style.css\""));
    assert!(page(&server, "/k").contains("No experiments"));
    assert_eq!(get(&server, "/").0, 404);
    // An experiment without trials: explicit empty states, no blank charts.
    let store = SqlStore::connect(&db).await.unwrap();
    store
        .create_experiment("fresh", &spec("fresh"), 1)
        .await
        .unwrap();
    let fresh = page(&server, "/k/experiments/fresh");
    assert!(
        fresh.contains("No trials yet — the experiment was stored"),
        "{fresh}"
    );
    assert!(fresh.contains("No loss observations yet"));
    assert!(fresh.contains("No succeeded trial with an objective yet"));
    assert!(!fresh.contains("<svg class=\"chart"));
    assert!(fresh.contains("href=\"/k/experiments/fresh/trials.csv\""));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn help_lists_the_ui_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_ktune"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ui ") && text.contains("dashboard"), "{text}");
}

#[test]
fn a_missing_sqlite_file_is_refused_not_created() {
    let dir = scratch("missing");
    let db = format!("sqlite:{}", dir.join("nope.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_ktune"))
        .args(["ui", "--db", &db, "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database at"));
    assert!(!dir.join("nope.db").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_trial_table_pages_sorts_and_exports_ten_thousand_trials() {
    let dir = scratch("big");
    let db = format!("sqlite:{}", dir.join("ktune.db").display());
    let store = SqlStore::connect(&db).await.unwrap();
    let (e, _) = store
        .create_experiment("big", &spec("big"), 0)
        .await
        .unwrap();
    let trials: Vec<NewTrial> = (1..=10_000)
        .map(|i| NewTrial {
            name: format!("t-{i:05}"),
            assignment: vec![
                ("lr".into(), format!("{}", f64::from(i) / 10_000.0)),
                ("opt".into(), "sgd".into()),
            ],
            labels: BTreeMap::new(),
        })
        .collect();
    store.insert_trials(e.id, &trials, 1).await.unwrap();
    let server = start(&db, &dir, &[]);
    // Correctness at scale; speed is for a benchmark, not a test.
    let table = page(
        &server,
        "/experiments/big?sort=name&dir=desc&page=3&per=100",
    );
    assert_eq!(table_names(&table)[0], "t-09800");
    assert_eq!(table_names(&table).len(), 100);
    let csv = page(&server, "/experiments/big/trials.csv");
    assert_eq!(csv.lines().count(), 10_001);
    std::fs::remove_dir_all(&dir).ok();
}

/// The dashboard's store queries on one backend.
async fn queries_conform(store: &SqlStore) {
    let name = unique("ui-queries");
    let (ids, best) = fill(store, &name, 30).await;
    let e = store.experiment(&name).await.unwrap().unwrap();
    let q = |sort, descending, limit, offset| TrialQuery {
        sort,
        descending,
        limit,
        offset,
        ..TrialQuery::default()
    };
    let page = store
        .trial_page(e.id, &q(TrialSort::Seq, false, 10, 10))
        .await
        .unwrap();
    assert_eq!(page.total, 30);
    let all = store
        .trial_page(e.id, &q(TrialSort::Name, true, i64::MAX, 0))
        .await
        .unwrap();
    assert_eq!(all.rows.len(), 30, "exports ask for every row");
    assert_eq!(all.rows[0].name, "t-030");
    assert_eq!(
        page.rows.iter().map(|t| t.seq).collect::<Vec<_>>(),
        (11..=20).collect::<Vec<_>>()
    );
    let by_objective = store
        .trial_page(e.id, &q(TrialSort::Objective, false, 100, 0))
        .await
        .unwrap();
    assert_eq!(by_objective.rows[0].name, best);
    let nulls: Vec<bool> = by_objective
        .rows
        .iter()
        .map(|t| t.objective.is_none())
        .collect();
    assert!(
        nulls.ends_with(&[true, true, true]) && !nulls[..27].contains(&true),
        "no objective sorts last"
    );
    let desc = store
        .trial_page(e.id, &q(TrialSort::Objective, true, 100, 0))
        .await
        .unwrap();
    assert!(desc.rows[0].objective >= desc.rows[1].objective);
    assert!(
        desc.rows[29].objective.is_none(),
        "no objective sorts last either way"
    );
    let filtered = store
        .trial_page(
            e.id,
            &TrialQuery {
                state: Some(TrialState::Running),
                name_contains: Some("T-0".into()),
                limit: 10,
                ..TrialQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(filtered.total, 2);
    let pattern = store
        .trial_page(
            e.id,
            &TrialQuery {
                name_contains: Some("%".into()),
                limit: 10,
                ..TrialQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(pattern.total, 0, "LIKE characters match themselves");
    assert_eq!(
        store.trial_named(e.id, "t-003").await.unwrap().unwrap().id,
        ids[2]
    );
    assert!(store.trial_named(e.id, "nope").await.unwrap().is_none());
    let reporting = store.trials_reporting(e.id, "loss").await.unwrap();
    assert_eq!(reporting.len(), 21, "trials 1–20 and the second-to-last");
    assert!(
        store
            .trials_reporting(e.id, "nope")
            .await
            .unwrap()
            .is_empty()
    );
    let curves = store.metric_curves(&reporting, "loss").await.unwrap();
    assert_eq!(curves.len(), 20 * 5 + 3);
    assert!(
        curves
            .windows(2)
            .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1))
    );
    let one = store.metric_curves(&reporting[..1], "loss").await.unwrap();
    assert_eq!(one.len(), 5);
    assert!(store.metric_curves(&[], "loss").await.unwrap().is_empty());
    let marks = store.change_marks().await.unwrap();
    let mark = marks.iter().find(|m| m.experiment == name).unwrap();
    assert_eq!(mark.running_observations, 3);
    assert!(mark.revision > 0, "every trial write bumps the revision");

    // Revisions: a reader gets only what changed since it last looked.
    let (all, r1) = store.trials_since(e.id, -1).await.unwrap();
    assert_eq!(all.len(), 30);
    assert_eq!(store.trials_since(e.id, r1).await.unwrap(), (vec![], r1));
    let running = ids[29];
    let refused = store
        .transition(
            running,
            &[TrialState::Pending],
            &outcome(TrialState::Failed, None),
        )
        .await
        .unwrap();
    assert!(!refused);
    assert_eq!(
        store.trials_since(e.id, r1).await.unwrap().0.len(),
        0,
        "a refused transition changes nothing"
    );
    let moved = store
        .transition(
            running,
            &[TrialState::Running],
            &outcome(TrialState::Succeeded, Some(0.5)),
        )
        .await
        .unwrap();
    assert!(moved);
    let (changed, r2) = store.trials_since(e.id, r1).await.unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(
        (changed[0].id, changed[0].state),
        (running, TrialState::Succeeded)
    );
    assert!(r2 > r1);
    let new = NewTrial {
        name: "late".into(),
        assignment: vec![],
        labels: BTreeMap::new(),
    };
    store.insert_trials(e.id, &[new], T0).await.unwrap();
    let (changed, r3) = store.trials_since(e.id, r2).await.unwrap();
    assert_eq!(
        changed.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["late"]
    );
    assert!(r3 > r2);
    assert!(
        store
            .transition(
                -1,
                &[TrialState::Pending],
                &outcome(TrialState::Running, None)
            )
            .await
            .is_ok_and(|moved| !moved),
        "an unknown trial does not move"
    );
}

#[tokio::test]
async fn dashboard_queries_conform_on_sqlite() {
    queries_conform(&SqlStore::connect("sqlite::memory:").await.unwrap()).await;
}

#[tokio::test]
async fn dashboard_queries_conform_on_postgres() {
    let url = std::env::var("KTUNE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    match SqlStore::connect(&url).await {
        Ok(store) => queries_conform(&store).await,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!(
                "SKIPPED: PostgreSQL at {url} is not reachable ({e}); set KTUNE_TEST_POSTGRES_URL"
            );
        }
        Err(e) => panic!("CI=true needs PostgreSQL at {url}: {e}"),
    }
}

/// Where the browser test finds Chromium and its driver library, or why it
/// cannot run. In CI (`CI` set) a missing piece fails the test: `.ci/run`
/// installs both (`scripts/browser-deps`).
fn browser_setup() -> Result<std::path::PathBuf, String> {
    let chromium = std::env::var_os("KTUNE_CHROMIUM")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into());
    let driver = support::repo_root().join("tests/browser/node_modules/playwright-core");
    if !chromium.exists() {
        return Err(format!("no Chromium at {}", chromium.display()));
    }
    if !driver.exists() {
        return Err(format!("no playwright-core at {}", driver.display()));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("no node on PATH".to_owned());
    }
    Ok(chromium)
}

/// Headless Chromium through every page (tests/browser/ui.mjs): the list,
/// a finished experiment (one history mark per trial, curves, parallel
/// coordinates, importance, spec), brushing the objective axis filters the
/// table, a trial page with its curve and output, a running experiment
/// updated live while the store changes, and an empty one. Screenshots of
/// each page land in the test's scratch folder, and in
/// `$KTUNE_SCREENSHOTS_DIR` when set (docs/screenshots holds the README's).
#[tokio::test(flavor = "multi_thread")]
async fn a_browser_sees_every_page_brushes_the_table_and_gets_live_updates() {
    let chromium = match browser_setup() {
        Ok(path) => path,
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {why} (run scripts/browser-deps)");
            return;
        }
        Err(why) => panic!("{why}: .ci/run should have run scripts/browser-deps"),
    };
    let dir = scratch("browser");
    let db = format!("sqlite:{}", dir.join("ktune.db").display());
    let store = SqlStore::connect(&db).await.unwrap();
    let (_, best) = fill(&store, "demo", 120).await;
    let demo = store.experiment("demo").await.unwrap().unwrap();
    store
        .set_experiment_state(
            demo.id,
            ktune::store::ExperimentState::Succeeded,
            "MaxTrialsReached",
            Some(T0 + 3_000_000),
        )
        .await
        .unwrap();
    fill(&store, "live", 6).await;
    store
        .create_experiment("empty", &spec("empty"), T0 + 1_000_000)
        .await
        .unwrap();
    let trials_dir = dir.join("trials");
    std::fs::create_dir_all(trials_dir.join("demo/t-003")).unwrap();
    std::fs::write(trials_dir.join("demo/t-003/stdout.log"), "hello\nloss=1\n").unwrap();
    let server = start(&db, &trials_dir, &[]);

    // The "live" experiment keeps changing while the browser watches: a
    // new trial and a line of output from a running one every 400 ms.
    let live = store.experiment("live").await.unwrap().unwrap();
    let running_log = trials_dir.join("live/t-006/stdout.log");
    std::fs::create_dir_all(running_log.parent().unwrap()).unwrap();
    std::fs::write(&running_log, "epoch 0\n").unwrap();
    let writer_store = store.clone();
    let writer = tokio::spawn(async move {
        for i in 7.. {
            tokio::time::sleep(Duration::from_millis(400)).await;
            if let Ok(mut log) = std::fs::OpenOptions::new().append(true).open(&running_log) {
                let _ = writeln!(log, "epoch {i}");
            }
            let new = NewTrial {
                name: format!("t-{i:03}"),
                assignment: vec![("lr".into(), "0.01".into()), ("opt".into(), "sgd".into())],
                labels: BTreeMap::new(),
            };
            if writer_store
                .insert_trials(live.id, &[new], T0 + 4_000_000)
                .await
                .is_err()
            {
                return;
            }
            if let Ok(Some(t)) = writer_store
                .trial_named(live.id, &format!("t-{i:03}"))
                .await
            {
                let _ = writer_store
                    .transition(
                        t.id,
                        &[TrialState::Pending],
                        &outcome(TrialState::Running, None),
                    )
                    .await;
            }
        }
    });

    let shots = dir.join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let output = tokio::process::Command::new("node")
        .arg("tests/browser/ui.mjs")
        .arg(format!("http://{}", server.base))
        .arg(&shots)
        .arg(&best)
        .env("KTUNE_CHROMIUM", &chromium)
        .current_dir(support::repo_root())
        .output()
        .await
        .unwrap();
    writer.abort();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "browser checks failed:\n{report}");
    for page in [
        "experiments",
        "experiment",
        "experiment-brushed",
        "trial",
        "trial-running",
        "experiment-live",
    ] {
        let png = shots.join(format!("{page}.png"));
        let bytes = std::fs::read(&png).unwrap_or_default();
        assert!(
            bytes.starts_with(b"\x89PNG"),
            "no screenshot {}",
            png.display()
        );
        if let Some(keep) = std::env::var_os("KTUNE_SCREENSHOTS_DIR") {
            let keep = std::path::PathBuf::from(keep);
            std::fs::create_dir_all(&keep).unwrap();
            std::fs::copy(&png, keep.join(format!("{page}.png"))).unwrap();
        }
    }
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}
