//! `ktune run` in the background for the reliability tests: start it, wait
//! for it with a deadline (a hung run fails the test instead of hanging
//! it), and an experiment whose trials log every start, so a test can see
//! whether any trial started twice.

use ktune::store::Store as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A name no other test run uses (PostgreSQL's tables are shared): a
/// valid experiment name, short enough for trial names built on it.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

/// `ktune run FILE` on `dir`'s own store (`sqlite:DIR/k.db`) and trials
/// folder, with `extra` arguments, from the repository root.
pub fn run_in(dir: &Path, file: &Path, extra: &[&str]) -> Command {
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let mut command = Command::new(env!("CARGO_BIN_EXE_ktune"));
    command
        .args(run_args(dir, &db, file, extra))
        .current_dir(super::repo_root());
    command
}

/// `ktune run FILE --db DB --trials-dir DIR/trials` and `extra` arguments.
pub fn run_args(dir: &Path, db: &str, file: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "run".to_owned(),
        file.display().to_string(),
        "--db".to_owned(),
        db.to_owned(),
        "--trials-dir".to_owned(),
        dir.join("trials").display().to_string(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args
}

/// Starts `ktune ARGS` in the background, output captured, stdin empty.
pub fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ktune"))
        .args(args)
        .current_dir(super::repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` at most `limit`; past it, kills it and fails the test.
pub fn finish(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "ktune ran past {limit:?} and was killed\n{}",
                super::describe(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Runs `ktune ARGS` to its end (at most `limit`).
pub fn run_to_end(args: &[String], limit: Duration) -> Output {
    finish(spawn(args), limit)
}

/// Waits until `ready` holds, at most `limit`.
pub fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An experiment `name` in `dir` over the given modes, two trials at a
/// time, whose trial appends its name to `starts_file(dir)` when it starts
/// and its pid to `<trial dir>/pid`, then reports `loss` `$1` times, every
/// `pause` seconds (the mode is the number of reports).
pub fn counting_experiment(dir: &Path, name: &str, modes: &[&str], pause: &str) -> PathBuf {
    let starts = starts_file(dir);
    let script = format!(
        r#"echo "$KTUNE_TRIAL_NAME" >> {starts}; echo $$ > "$KTUNE_TRIAL_DIR/pid"; i=0; while [ $i -lt $1 ]; do i=$((i+1)); echo "loss=$((100 - i))"; sleep {pause}; done"#,
        starts = starts.display()
    );
    super::shell_experiment(dir, name, &script, modes, "")
}

/// Where [`counting_experiment`]'s trials log their starts.
pub fn starts_file(dir: &Path) -> PathBuf {
    dir.join("starts.log")
}

/// How many times each trial started.
pub fn starts(dir: &Path) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for line in std::fs::read_to_string(starts_file(dir))
        .unwrap_or_default()
        .lines()
    {
        *count.entry(line.to_owned()).or_insert(0) += 1;
    }
    count
}

/// The stored trials of `experiment` with their reports.
pub fn stored(
    db: &str,
    experiment: &str,
) -> Vec<(ktune::store::TrialRow, Vec<ktune::store::ObservationRow>)> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = ktune::store::SqlStore::connect(db).await.unwrap();
        let exp = store.experiment(experiment).await.unwrap().unwrap();
        let mut all = Vec::new();
        for t in store.trials(exp.id).await.unwrap() {
            let reports = store.observations(t.id).await.unwrap();
            all.push((t, reports));
        }
        all
    })
}

/// The shared PostgreSQL server's URL (`KTUNE_TEST_POSTGRES_URL`, default
/// `postgres://postgres@127.0.0.1:5432/test`), or `None` with a visible
/// message when it cannot be reached (a failure under `CI=true`).
pub fn shared_postgres() -> Option<String> {
    let url = std::env::var("KTUNE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let reached = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(ktune::store::SqlStore::connect(&url));
    match reached {
        Ok(_) => Some(url),
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!(
                "SKIPPED: PostgreSQL at {url} is not reachable ({e}); set KTUNE_TEST_POSTGRES_URL"
            );
            None
        }
        Err(e) => panic!("CI=true needs PostgreSQL at {url}: {e}"),
    }
}

/// Two `ktune run` of experiment `name` on the store `db`, the second
/// started while the first runs: the second is refused (exit 75) naming
/// the first's host and pid, no trial starts twice, the first finishes
/// every trial and releases the experiment.
pub fn a_second_run_is_refused(dir: &Path, db: &str, name: &str) {
    let file = counting_experiment(dir, name, &["5", "6", "7", "8"], "0.2");
    let args = run_args(dir, db, &file, &[]);
    let first = spawn(&args);
    let first_pid = first.id();
    wait_until(Duration::from_secs(20), "the first trial", || {
        !starts(dir).is_empty()
    });
    let second = run_to_end(&args, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(
        second.status.code(),
        Some(75),
        "{}",
        super::describe(&second)
    );
    assert!(err.contains("is being run by another ktune"), "{err}");
    assert!(err.contains(&format!(", pid {first_pid}, since ")), "{err}");
    assert!(err.contains("(host "), "{err}");
    let first = finish(first, Duration::from_secs(60));
    assert_eq!(first.status.code(), Some(0), "{}", super::describe(&first));
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("4 succeeded"),
        "{}",
        super::describe(&first)
    );
    let starts = starts(dir);
    assert_eq!(starts.len(), 4, "{starts:?}");
    assert!(
        starts.values().all(|n| *n == 1),
        "a trial started twice: {starts:?}"
    );
    for (trial, reports) in stored(db, name) {
        assert_eq!(
            trial.state,
            ktune_algorithms::history::TrialState::Succeeded
        );
        let mode: usize = trial.parameter("mode").unwrap().parse().unwrap();
        assert_eq!(reports.len(), mode, "{trial:?}: {reports:?}");
    }
    assert_eq!(lease_of(db, name), None, "the lease is released at the end");
}

/// The stored lease of `experiment`, if any.
pub fn lease_of(db: &str, experiment: &str) -> Option<ktune::store::Lease> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = ktune::store::SqlStore::connect(db).await.unwrap();
        store.lease(experiment).await.unwrap()
    })
}

/// Eight drivers, each with its own connection to `db`, ask for the lease
/// of one experiment at the same moment: exactly one gets it.
pub fn racing_drivers_take_a_lease_once(db: &str) {
    let experiment = unique_name("race");
    let won = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut stores = Vec::new();
        for _ in 0..8 {
            stores.push(ktune::store::SqlStore::connect(db).await.unwrap());
        }
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(stores.len()));
        let mut tasks = Vec::new();
        for (i, store) in stores.into_iter().enumerate() {
            let (start, experiment) = (start.clone(), experiment.clone());
            tasks.push(tokio::spawn(async move {
                let me = ktune::store::LeaseHolder {
                    token: format!("driver-{i}"),
                    host: "test".to_owned(),
                    node: String::new(),
                    pid: i64::try_from(i).unwrap(),
                };
                start.wait().await;
                let ttl = Duration::from_secs(60);
                store
                    .acquire_lease(&experiment, &me, ttl)
                    .await
                    .unwrap()
                    .is_none()
            }));
        }
        let mut won = 0;
        for task in tasks {
            won += usize::from(task.await.unwrap());
        }
        won
    });
    assert_eq!(won, 1, "exactly one driver holds the lease");
}
