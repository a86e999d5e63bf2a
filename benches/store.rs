//! Observation rows per second into SQLite and PostgreSQL, batched as the
//! collectors write them (issue targets: ≥ 100 000/s SQLite, ≥ 30 000/s
//! PostgreSQL). Run: `cargo bench --bench store`. PostgreSQL is measured when
//! `KTUNE_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! is reachable.

use ktune::store::Store as _;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ktune::store::{NewTrial, ObservationRow, SqlStore};

const BATCH: i64 = 5_000;

fn rows(offset: i64) -> Vec<ObservationRow> {
    (offset..offset + BATCH)
        .map(|step| ObservationRow {
            metric: "loss".to_owned(),
            step,
            value: "0.123456".to_owned(),
            number: Some(0.123_456),
            time: Some(step),
        })
        .collect()
}

fn bench_backend(c: &mut Criterion, label: &str, url: &str) {
    let Ok(rt) = tokio::runtime::Runtime::new() else {
        return;
    };
    let Ok(store) = rt.block_on(SqlStore::connect(url)) else {
        eprintln!("skipping {label}: cannot connect to {url}");
        return;
    };
    let name = format!("bench-{}-{}", label, std::process::id());
    let Ok((exp, _)) = rt.block_on(store.create_experiment(&name, &serde_json::json!({}), 0))
    else {
        return;
    };
    let trial = NewTrial {
        name: "t".into(),
        assignment: vec![],
        labels: Default::default(),
    };
    let Ok(_) = rt.block_on(store.insert_trials(exp.id, &[trial], 0)) else {
        return;
    };
    let Ok(trials) = rt.block_on(store.trials(exp.id)) else {
        return;
    };
    let Some(trial_id) = trials.first().map(|t| t.id) else {
        return;
    };
    let mut group = c.benchmark_group("observations");
    group.throughput(Throughput::Elements(BATCH as u64));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    let mut offset = 0;
    group.bench_function(label, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let batch = rows(offset);
                offset += BATCH;
                let start = Instant::now();
                let _ = rt.block_on(store.append_observations(trial_id, &batch));
                total += start.elapsed();
            }
            total
        });
    });
    group.finish();
}

fn observations(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("ktune-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    bench_backend(
        c,
        "sqlite",
        &format!("sqlite:{}", dir.join("bench.db").display()),
    );
    let pg = std::env::var("KTUNE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    bench_backend(c, "postgres", &pg);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, observations);
criterion_main!(benches);
