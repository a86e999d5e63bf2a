//! One driver per experiment, on SQLite, with the real binary: a second
//! `ktune run` is refused naming the first; a run killed with `kill -9` is
//! resumed at once on this machine, and one held from another machine
//! after its lease expires; a run that loses its lease stops its trials;
//! and `ktune delete` removes everything, asks or refuses as it should.

mod support;

use ktune::store::Store as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ktune::store::{LeaseHolder, SqlStore};
use ktune_algorithms::history::TrialState;
use support::runs::{
    a_second_run_is_refused, counting_experiment, finish, lease_of,
    racing_drivers_take_a_lease_once, run_args, run_to_end, spawn, starts, stored, wait_until,
};
use support::{describe, scratch};

const LIMIT: Duration = Duration::from_secs(60);

/// A holder on another machine, as a run there would store it.
fn far_away(token: &str) -> LeaseHolder {
    LeaseHolder {
        token: token.to_owned(),
        host: "far-away".to_owned(),
        node: "another-boot/pid:[1]".to_owned(),
        pid: 4242,
    }
}

fn block_on<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Runtime::new().unwrap().block_on(work)
}

#[test]
fn a_second_run_on_sqlite_is_refused_naming_the_holder_and_nothing_runs_twice() {
    let dir = scratch("lease-second");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    a_second_run_is_refused(&dir, &db, "second");
}

#[test]
fn racing_drivers_on_sqlite_take_a_lease_exactly_once() {
    let dir = scratch("lease-race");
    racing_drivers_take_a_lease_once(&format!("sqlite:{}", dir.join("k.db").display()));
}

#[test]
fn after_kill_dash_nine_a_rerun_on_this_host_takes_the_dead_runs_lease_at_once() {
    let dir = scratch("lease-kill9");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let file = counting_experiment(&dir, "kill9", &["8", "9", "10"], "0.2");
    let args = run_args(&dir, &db, &file, &[]);
    let mut first = spawn(&args);
    let pid = i64::from(first.id());
    wait_until(Duration::from_secs(20), "two trials", || {
        starts(&dir).len() == 2
    });
    first.kill().unwrap();
    first.wait().unwrap();
    // The dead run's lease is still stored: nobody released it.
    let left = lease_of(&db, "kill9").expect("the killed run's lease");
    assert_eq!(left.holder.pid, pid);
    assert!(left.expires_at > left.now, "not expired: {left:?}");
    let started = Instant::now();
    let again = run_to_end(&args, LIMIT);
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("3 succeeded"));
    // No waiting for the 20 s lease: the rerun took it over at once.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stored(&db, "kill9").len(), 3, "no trial is duplicated");
    assert_eq!(lease_of(&db, "kill9"), None);
}

#[test]
fn a_lease_held_from_another_host_is_waited_out_then_taken() {
    let dir = scratch("lease-expiry");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let file = counting_experiment(&dir, "expiry", &["1", "2"], "0.05");
    let ttl = Duration::from_secs(2);
    let held = block_on(async {
        let store = SqlStore::connect(&db).await.unwrap();
        store
            .acquire_lease("expiry", &far_away("elsewhere"), ttl)
            .await
            .unwrap()
    });
    assert_eq!(held, None);
    let taken_at = Instant::now();
    let args = run_args(&dir, &db, &file, &[]);
    let refused = run_to_end(&args, LIMIT);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(75), "{}", describe(&refused));
    assert!(err.contains("(host far-away, pid 4242, since "), "{err}");
    assert!(starts(&dir).is_empty(), "nothing ran");
    // The holder never renews: once its lease expires, the run goes ahead.
    std::thread::sleep(
        (taken_at + ttl + Duration::from_millis(200)).saturating_duration_since(Instant::now()),
    );
    let out = run_to_end(&args, LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 succeeded"));
}

#[test]
fn a_run_that_loses_its_lease_stops_its_trials_and_writes_nothing_more() {
    let dir = scratch("lease-lost");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let file = counting_experiment(&dir, "lost", &["200", "201"], "0.1");
    let args = run_args(&dir, &db, &file, &["--lease-seconds", "3"]);
    let run = spawn(&args);
    wait_until(Duration::from_secs(20), "both trials", || {
        starts(&dir).len() == 2
    });
    let trial_dir = dir.join("trials/lost/lost-0001");
    wait_until(Duration::from_secs(5), "the trial's pid", || {
        std::fs::read_to_string(trial_dir.join("pid")).is_ok_and(|p| !p.trim().is_empty())
    });
    let trial_pid: i32 = std::fs::read_to_string(trial_dir.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Another driver takes the experiment over, as one would after the
    // run's lease expired.
    block_on(async {
        let store = SqlStore::connect(&db).await.unwrap();
        let lease = store.lease("lost").await.unwrap().unwrap();
        assert!(
            store
                .release_lease("lost", &lease.holder.token)
                .await
                .unwrap()
        );
        let thief = far_away("thief");
        let ttl = Duration::from_secs(60);
        assert_eq!(
            store.acquire_lease("lost", &thief, ttl).await.unwrap(),
            None
        );
    });
    // The run notices at its next heartbeat (every second), stops its
    // trials and leaves the rows to the new holder.
    let out = finish(run, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{}", describe(&out));
    assert!(err.contains("was taken over by another ktune"), "{err}");
    let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(trial_pid), None);
    assert_eq!(gone, Err(nix::errno::Errno::ESRCH), "the trial was stopped");
    let trials = stored(&db, "lost");
    assert!(
        trials.iter().all(|(t, _)| t.state == TrialState::Running),
        "nothing written after the lease was lost: {trials:?}"
    );
    assert_eq!(lease_of(&db, "lost").unwrap().holder.token, "thief");
}

/// Runs `ktune delete ARGS` with stdin not a terminal.
fn delete(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ktune"))
        .arg("delete")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn delete_removes_the_experiments_rows_and_folder_and_nothing_else() {
    let dir = scratch("delete");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let trials_dir = dir.join("trials").display().to_string();
    let keep = counting_experiment(&dir, "keep", &["1"], "0");
    let gone = counting_experiment(&dir, "gone", &["2", "3"], "0");
    for file in [&keep, &gone] {
        let out = run_to_end(&run_args(&dir, &db, file, &[]), LIMIT);
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    }
    let ids: Vec<i64> = stored(&db, "gone").iter().map(|(t, _)| t.id).collect();
    assert_eq!(ids.len(), 2);
    assert!(dir.join("trials/gone/gone-0001").is_dir());

    // No terminal to ask on and no --yes: refused, nothing removed.
    let out = delete(&["gone", "--db", &db, "--trials-dir", &trials_dir]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        err.contains("standard input is not a terminal") && err.contains("--yes"),
        "{err}"
    );
    assert_eq!(stored(&db, "gone").len(), 2);

    // While a run holds it: refused, naming the holder.
    block_on(async {
        let store = SqlStore::connect(&db).await.unwrap();
        let ttl = Duration::from_secs(60);
        assert_eq!(
            store
                .acquire_lease("gone", &far_away("run"), ttl)
                .await
                .unwrap(),
            None
        );
    });
    let out = delete(&["gone", "--db", &db, "--trials-dir", &trials_dir, "--yes"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{}", describe(&out));
    assert!(err.contains("host far-away, pid 4242"), "{err}");
    assert_eq!(stored(&db, "gone").len(), 2);
    block_on(async {
        let store = SqlStore::connect(&db).await.unwrap();
        assert!(store.release_lease("gone", "run").await.unwrap());
    });

    let out = delete(&["gone", "--db", &db, "--trials-dir", &trials_dir, "--yes"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        text.contains("deleted experiment \"gone\": 2 trials, 5 reports"),
        "{text}"
    );
    assert!(!dir.join("trials/gone").exists());
    assert!(
        dir.join("trials/keep").is_dir(),
        "other experiments' folders stay"
    );
    block_on(async {
        let store = SqlStore::connect(&db).await.unwrap();
        assert!(store.experiment("gone").await.unwrap().is_none());
        for id in ids {
            assert!(store.observations(id).await.unwrap().is_empty());
        }
        assert_eq!(store.lease("gone").await.unwrap(), None);
        let kept = store.experiment("keep").await.unwrap().unwrap();
        assert_eq!(store.trials(kept.id).await.unwrap().len(), 1);
    });
    // Deleted means gone: the same name runs afresh.
    let again = run_to_end(&run_args(&dir, &db, &gone, &[]), LIMIT);
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    assert_eq!(starts(&dir).get("gone-0001"), Some(&2));

    let out = delete(&["nothing-here", "--db", &db, "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no experiment named \"nothing-here\""));
}

#[test]
fn delete_never_creates_a_database() {
    let dir = scratch("delete-nodb");
    let path = dir.join("missing.db");
    let db = format!("sqlite:{}", path.display());
    let out = delete(&["any", "--db", &db, "--yes"]);
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("never creates a database"),
        "{}",
        describe(&out)
    );
    assert!(!path.exists(), "no database was created");
}

/// Runs `ktune delete ARGS` on a terminal (through `script`), typing
/// `answer`; `None` where `script` is missing.
fn delete_on_a_terminal(args: &[&str], answer: &str) -> Option<std::process::Output> {
    let mut line = env!("CARGO_BIN_EXE_ktune").to_owned() + " delete";
    for arg in args {
        line.push_str(&format!(" '{arg}'"));
    }
    let child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI needs `script` (util-linux) for the terminal delete test"
        );
        eprintln!("SKIPPED: no `script` command to give ktune delete a terminal");
        return None;
    };
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    Some(child.wait_with_output().unwrap())
}

#[test]
fn delete_asks_on_a_terminal_and_deletes_only_on_yes() {
    let dir = scratch("delete-tty");
    let db = format!("sqlite:{}", dir.join("k.db").display());
    let trials_dir = dir.join("trials").display().to_string();
    let file = counting_experiment(&dir, "asked", &["1"], "0");
    let out = run_to_end(&run_args(&dir, &db, &file, &[]), LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let args = [
        "asked",
        "--db",
        db.as_str(),
        "--trials-dir",
        trials_dir.as_str(),
    ];
    let Some(no) = delete_on_a_terminal(&args, "n\n") else {
        return;
    };
    let text = String::from_utf8_lossy(&no.stdout);
    assert!(
        text.contains("Delete experiment \"asked\" (1 trials with their reports) and the folder"),
        "{text}"
    );
    assert!(text.contains("nothing deleted"), "{text}");
    assert_eq!(stored(&db, "asked").len(), 1);
    assert_eq!(
        lease_of(&db, "asked"),
        None,
        "a refusal releases the experiment"
    );
    let yes = delete_on_a_terminal(&args, "y\n").unwrap();
    let text = String::from_utf8_lossy(&yes.stdout);
    assert!(
        text.contains("deleted experiment \"asked\": 1 trials, 1 reports"),
        "{text}"
    );
    assert!(!dir.join("trials/asked").exists());
}
