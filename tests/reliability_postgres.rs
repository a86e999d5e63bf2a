//! `ktune run` on PostgreSQL with the real binary: a second run of a
//! running experiment is refused (on the shared test server), and the
//! server going away mid-run and coming back (a private server, started
//! with `initdb`/`pg_ctl` in a scratch folder) stops no trial and loses no
//! report; past `--db-outage-limit` the run stops its trials and a rerun
//! loses nothing.
//!
//! Without the PostgreSQL binaries (or the shared server) the tests are
//! skipped with a message, except under `CI=true`.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ktune_algorithms::history::TrialState;
use support::runs::{
    a_second_run_is_refused, counting_experiment, finish, racing_drivers_take_a_lease_once,
    run_args, run_to_end, shared_postgres, spawn, starts, stored, unique_name, wait_until,
};
use support::{describe, scratch};

#[test]
fn a_second_run_on_postgres_is_refused_naming_the_holder_and_nothing_runs_twice() {
    let Some(url) = shared_postgres() else {
        return;
    };
    let dir = scratch("pg-second");
    a_second_run_is_refused(&dir, &url, &unique_name("second"));
}

#[test]
fn racing_drivers_on_postgres_take_a_lease_exactly_once() {
    if let Some(url) = shared_postgres() {
        racing_drivers_take_a_lease_once(&url);
    }
}

/// A PostgreSQL server of its own for one test, in a scratch folder on a
/// free loopback port; stopped and removed when dropped.
struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// Creates and starts the server; `None` (with a message) where the
    /// binaries are missing, a failure under `CI=true`.
    fn start(name: &str) -> Option<Self> {
        let Some(bin) = postgres_bin() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true needs PostgreSQL's initdb and pg_ctl under /usr/lib/postgresql/*/bin"
            );
            eprintln!(
                "SKIPPED: no initdb/pg_ctl under /usr/lib/postgresql/*/bin; the PostgreSQL outage test did not run"
            );
            return None;
        };
        let dir = scratch(name);
        if is_root() {
            // initdb refuses to run as root: the server runs as `postgres`.
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir));
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Self { bin, dir, port };
        pg.as_owner(
            "initdb",
            &[
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ],
        );
        pg.up();
        Some(pg)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// One of the server's programs, run as the data folder's owner, with
    /// `args` and then the data folder.
    fn owner_command(&self, program: &str, args: &[&str]) -> Command {
        let exe = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        command.args(args).arg(self.dir.join("data"));
        command
    }

    /// Runs [`Self::owner_command`], which must succeed.
    fn as_owner(&self, program: &str, args: &[&str]) {
        run(&mut self.owner_command(program, args));
    }

    /// Starts the server and waits until it accepts connections.
    fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.as_owner("pg_ctl", &["-w", "-l", &log, "-o", &options, "start", "-D"]);
    }

    /// Stops the server: its connections are closed and new ones refused.
    fn down(&self) {
        self.as_owner("pg_ctl", &["-w", "-m", "fast", "stop", "-D"]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .owner_command("pg_ctl", &["-m", "immediate", "stop", "-D"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest `/usr/lib/postgresql/*/bin` holding `initdb` and `pg_ctl`.
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let entry = e.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Whether this test runs as root (`/proc/self` belongs to the effective user).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn run(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(out.status.success(), "{command:?}\n{}", describe(&out));
}

/// Whether the trial's output holds `line`.
fn printed(dir: &Path, trial: &str, line: &str) -> bool {
    std::fs::read_to_string(dir.join("trials/outage").join(trial).join("stdout.log"))
        .is_ok_and(|t| t.lines().any(|l| l == line))
}

/// Stops the server while `ktune run` is in the middle of a write: locks
/// the experiment's rows until the run waits on them, then stops the
/// server, which ends that write with an error (a server stopped between
/// writes is only noticed by the next call, which waits for it to return).
fn stop_mid_write(pg: &PrivatePostgres, experiment: &str) {
    use sqlx::Connection as _;
    let url = pg.url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let locks = rt.block_on(async {
        let mut locks = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql("BEGIN").execute(&mut locks).await.unwrap();
        for sql in [
            "SELECT id FROM experiments WHERE name = $1 FOR UPDATE",
            "SELECT t.id FROM trials t JOIN experiments e ON e.id = t.experiment_id \
             WHERE e.name = $1 FOR UPDATE OF t",
        ] {
            sqlx::query(sql)
                .bind(experiment)
                .fetch_all(&mut locks)
                .await
                .unwrap();
        }
        let mut watch = sqlx::PgConnection::connect(&url).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
            )
            .fetch_one(&mut watch)
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "ktune never wrote");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        locks
    });
    pg.down();
    drop(rt.block_on(locks.close()));
}

#[test]
fn a_postgres_restart_mid_run_stops_no_trial_and_loses_no_report() {
    let Some(pg) = PrivatePostgres::start("pg-outage-server") else {
        return;
    };
    let dir = scratch("pg-outage");
    let db = pg.url();
    // Two trials: one ends while the server is down, one outlives the outage.
    let file = counting_experiment(&dir, "outage", &["8", "30"], "0.25");
    let run = spawn(&run_args(&dir, &db, &file, &[]));
    wait_until(
        Duration::from_secs(30),
        "three reports of each trial",
        || printed(&dir, "outage-0001", "loss=97") && printed(&dir, "outage-0002", "loss=97"),
    );
    stop_mid_write(&pg, "outage");
    std::thread::sleep(Duration::from_secs(3));
    pg.up();
    let out = finish(run, Duration::from_secs(90));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 succeeded"),
        "{}",
        describe(&out)
    );
    assert!(err.contains("the database cannot be reached"), "{err}");
    assert!(err.contains("the database answers again"), "{err}");
    let starts = starts(&dir);
    assert_eq!(
        starts.values().copied().collect::<Vec<_>>(),
        [1, 1],
        "no trial restarted: {starts:?}"
    );
    for (trial, reports) in stored(&db, "outage") {
        assert_eq!(trial.state, TrialState::Succeeded, "{trial:?}");
        let mode: i64 = trial.parameter("mode").unwrap().parse().unwrap();
        let steps: Vec<i64> = reports.iter().map(|r| r.step).collect();
        assert_eq!(steps, (1..=mode).collect::<Vec<_>>(), "every report, once");
        let values: Vec<String> = reports.iter().map(|r| r.value.clone()).collect();
        let expected: Vec<String> = (1..=mode).map(|i| (100 - i).to_string()).collect();
        assert_eq!(values, expected);
    }
}

#[test]
fn past_the_outage_limit_the_run_stops_its_trials_and_the_rerun_loses_nothing() {
    let Some(pg) = PrivatePostgres::start("pg-limit-server") else {
        return;
    };
    let dir = scratch("pg-limit");
    let db = pg.url();
    let file = counting_experiment(&dir, "outage", &["6", "7"], "0.25");
    let args = run_args(&dir, &db, &file, &["--db-outage-limit", "0"]);
    let run = spawn(&args);
    wait_until(
        Duration::from_secs(30),
        "three reports of each trial",
        || printed(&dir, "outage-0001", "loss=97") && printed(&dir, "outage-0002", "loss=97"),
    );
    let pids: Vec<i32> = ["outage-0001", "outage-0002"]
        .iter()
        .map(|t| {
            let pid = dir.join("trials/outage").join(t).join("pid");
            std::fs::read_to_string(pid)
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    stop_mid_write(&pg, "outage");
    let out = finish(run, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{}", describe(&out));
    assert!(
        err.contains("the running trials were stopped; run the same command again"),
        "{err}"
    );
    for pid in pids {
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None);
        assert_eq!(
            alive,
            Err(nix::errno::Errno::ESRCH),
            "trial {pid} was stopped"
        );
    }
    pg.up();
    let again = run_to_end(&args, Duration::from_secs(60));
    assert_eq!(again.status.code(), Some(0), "{}", describe(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("2 succeeded"));
    // The stopped trials ran again; what they reported before is kept,
    // the new attempt's reports numbered after it.
    for (trial, reports) in stored(&db, "outage") {
        assert_eq!(trial.state, TrialState::Succeeded, "{trial:?}");
        let mode: usize = trial.parameter("mode").unwrap().parse().unwrap();
        let steps: Vec<i64> = reports.iter().map(|r| r.step).collect();
        assert_eq!(steps, (1..=steps.len() as i64).collect::<Vec<_>>());
        assert!(
            reports.len() > mode,
            "the first attempt's stored reports are kept: {reports:?}"
        );
        let last: Vec<String> = reports[reports.len() - mode..]
            .iter()
            .map(|r| r.value.clone())
            .collect();
        let whole: Vec<String> = (1..=mode).map(|i| (100 - i).to_string()).collect();
        assert_eq!(last, whole, "then one whole attempt");
    }
    assert!(starts(&dir).values().all(|n| *n == 2), "{:?}", starts(&dir));
}
