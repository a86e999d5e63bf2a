//! The dashboard at scale (issue targets, medians): with 10 000 trials and
//! 1 000 000 observations in one experiment, the experiment page's first
//! byte under 1 s, a trial-table page under 200 ms, and a live update (a
//! store write reaching an open event stream) under 100 ms; the
//! experiments list is measured too.
//!
//! Run: `cargo bench --bench ui`. The store is SQLite in a temporary
//! folder, filled through the store API once per run (10 000 trials, 100
//! `loss` reports each, 20 still running); the server is `ktune ui`'s
//! router on a local port, spoken to over plain HTTP/1.1 sockets.

use ktune::store::Store as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use ktune::store::{NewTrial, ObservationRow, SqlStore, TrialOutcome};
use ktune_algorithms::history::TrialState;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const TRIALS: usize = 10_000;
const STEPS: i64 = 100;
const RUNNING: usize = 20;

fn spec() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "ktune.dev/v1beta1", "kind": "Experiment", "metadata": {"name": "scale"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "tpe"},
            "parameters": [
                {"name": "lr", "parameterType": "double",
                 "feasibleSpace": {"min": "0.0001", "max": "1", "distribution": "logUniform"}},
                {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "8"}},
                {"name": "opt", "parameterType": "categorical",
                 "feasibleSpace": {"list": ["sgd", "adam", "rmsprop"]}}
            ]
        }
    })
}

/// Fills the store; returns the ids of the running trials.
async fn fill(store: &SqlStore) -> Vec<i64> {
    let t0 = 1_795_000_000_000;
    let Ok((e, _)) = store.create_experiment("scale", &spec(), t0).await else {
        panic!("creating the experiment failed");
    };
    let trials: Vec<NewTrial> = (0..TRIALS)
        .map(|i| NewTrial {
            name: format!("scale-{i:05}"),
            assignment: vec![
                (
                    "lr".into(),
                    format!(
                        "{}",
                        1e-4 * 10f64.powf(4.0 * ((i * 7919) % TRIALS) as f64 / TRIALS as f64)
                    ),
                ),
                ("layers".into(), format!("{}", 1 + i % 8)),
                ("opt".into(), ["sgd", "adam", "rmsprop"][i % 3].into()),
            ],
            labels: Default::default(),
        })
        .collect();
    store.insert_trials(e.id, &trials, t0).await.ok();
    let rows = store.trials(e.id).await.unwrap_or_default();
    let mut running = Vec::new();
    for (i, t) in rows.iter().enumerate() {
        let final_loss = 0.05 + ((i * 7919) % TRIALS) as f64 / TRIALS as f64;
        let at = t0 + 1000 * i as i64;
        let start = TrialOutcome {
            state: TrialState::Running,
            reason: "TrialRunning".into(),
            message: String::new(),
            objective: None,
            at,
        };
        store
            .transition(t.id, &[TrialState::Pending], &start)
            .await
            .ok();
        let obs: Vec<ObservationRow> = (1..=STEPS)
            .map(|s| {
                let v = final_loss + 1.0 / s as f64;
                ObservationRow {
                    metric: "loss".into(),
                    step: s,
                    value: v.to_string(),
                    number: Some(v),
                    time: Some(at + s),
                }
            })
            .collect();
        store.append_observations(t.id, &obs).await.ok();
        if i + RUNNING >= TRIALS {
            running.push(t.id);
            continue;
        }
        let done = TrialOutcome {
            state: TrialState::Succeeded,
            reason: "TrialSucceeded".into(),
            message: String::new(),
            objective: Some(final_loss + 1.0 / STEPS as f64),
            at: at + 900,
        };
        store
            .transition(t.id, &[TrialState::Running], &done)
            .await
            .ok();
    }
    running
}

/// Which moment of a response a page benchmark times.
#[derive(Clone, Copy)]
enum Until {
    FirstByte,
    End,
}

/// Benchmarks GET requests for `path(i)` (request `i` of the batch), timed
/// to the response's first byte or its end.
fn bench_page(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    addr: &str,
    name: &str,
    until: Until,
    path: impl Fn(u64) -> String,
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|i| {
                    let (first, end, _) = rt.block_on(get(addr, &path(i)));
                    match until {
                        Until::FirstByte => first,
                        Until::End => end,
                    }
                })
                .sum()
        });
    });
}

/// Sends a GET; returns the time to the first response byte and to the end.
async fn get(addr: &str, path: &str) -> (Duration, Duration, usize) {
    let start = Instant::now();
    let Ok(mut s) = TcpStream::connect(addr).await else {
        panic!("connecting to {addr}");
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.ok();
    let mut buf = vec![0u8; 64 * 1024];
    let mut first = None;
    let mut total = 0;
    loop {
        let n = s.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        first.get_or_insert_with(|| start.elapsed());
        total += n;
    }
    let end = start.elapsed();
    (first.unwrap_or(end), end, total)
}

fn bench(c: &mut Criterion) {
    let Ok(rt) = tokio::runtime::Runtime::new() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("ktune-bench-ui-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok();
    let url = format!("sqlite:{}", dir.join("ktune.db").display());
    let (store, running, addr) = rt.block_on(async {
        let Ok(store) = SqlStore::connect(&url).await else {
            panic!("opening {url}");
        };
        let started = Instant::now();
        let running = fill(&store).await;
        eprintln!(
            "filled {TRIALS} trials and {} observations in {:.1} s",
            TRIALS as i64 * STEPS,
            started.elapsed().as_secs_f64()
        );
        let config = ktune::ui::Config {
            base_path: String::new(),
            trials_dir: Some(dir.join("trials")),
            poll: ktune::ui::DEFAULT_POLL,
        };
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            panic!("binding a port");
        };
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let server_store = store.clone();
        tokio::spawn(async move {
            ktune::ui::serve(listener, server_store, config, std::future::pending()).await
        });
        (store, running, addr)
    });

    let mut group = c.benchmark_group("ui_10k_trials_1m_observations");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    bench_page(
        &mut group,
        &rt,
        &addr,
        "experiment_page_first_byte",
        Until::FirstByte,
        |_| "/experiments/scale".to_owned(),
    );
    bench_page(
        &mut group,
        &rt,
        &addr,
        "experiments_page",
        Until::End,
        |_| "/".to_owned(),
    );
    bench_page(
        &mut group,
        &rt,
        &addr,
        "trial_table_page",
        Until::End,
        |i| {
            format!(
                "/experiments/scale/trials?sort=objective&page={}&state=Succeeded",
                1 + i % 100
            )
        },
    );
    // What every poll costs the store while a page listens.
    group.bench_function("change_poll_query", |b| {
        b.iter(|| {
            rt.block_on(store.change_marks())
                .map(|m| m.len())
                .unwrap_or(0)
        });
    });
    group.bench_function("live_update", |b| {
        b.iter_custom(|iters| rt.block_on(live_updates(&addr, &store, &running, iters)));
    });
    group.finish();
    std::fs::remove_dir_all(&dir).ok();
}

/// Opens the event stream, then `iters` times: one running trial reports a
/// step, and the time until the stream says the experiment changed (the
/// poll interval's wait included: up to one interval, half on average).
async fn live_updates(addr: &str, store: &SqlStore, running: &[i64], iters: u64) -> Duration {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        panic!("connecting to {addr}");
    };
    let request =
        format!("GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    s.write_all(request.as_bytes()).await.ok();
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = String::new();
    while !seen.contains("event: ready") {
        let n = s.read(&mut buf).await.unwrap_or(0);
        assert!(n > 0, "the event stream closed");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // Let the poller take its first look before the first write.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut total = Duration::ZERO;
    for i in 0..iters {
        let trial = running[i as usize % running.len()];
        // A step no earlier call used (a repeated step is not a change).
        static NEXT_STEP: AtomicI64 = AtomicI64::new(1_000);
        let step = NEXT_STEP.fetch_add(1, Ordering::Relaxed);
        let row = ObservationRow {
            metric: "loss".into(),
            step,
            value: "0.5".into(),
            number: Some(0.5),
            time: None,
        };
        // Writes land at any moment of the poller's cycle, as they do in
        // a sweep: spread them over one poll interval.
        let phase = ktune::ui::DEFAULT_POLL.mul_f64(((i * 37) % 100) as f64 / 100.0);
        tokio::time::sleep(phase).await;
        seen.clear();
        let start = Instant::now();
        store.append_observations(trial, &[row]).await.ok();
        while !seen.contains("event: change") {
            let n = s.read(&mut buf).await.unwrap_or(0);
            assert!(n > 0, "the event stream closed");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        total += start.elapsed();
    }
    total
}

criterion_group!(benches, bench);
criterion_main!(benches);
