//! A running `ktune ui` for the dashboard's tests, and plain-socket HTTP
//! requests (so a test sees exactly the status, headers and body the
//! server sent).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `ktune ui`, killed when dropped.
pub struct Server {
    child: Child,
    /// `host:port` and the base path, e.g. `127.0.0.1:4321/k`.
    pub base: String,
}

impl Server {
    /// `host:port`.
    pub fn host(&self) -> &str {
        self.base.split('/').next().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ktune ui` over `db` on a free port, with `extra` arguments.
pub fn start(db: &str, trials_dir: &Path, extra: &[&str]) -> Server {
    start_limited(db, trials_dir, extra, None)
}

/// [`start`], under `prlimit --nofile=N:N` when `nofile` is given (a
/// process with few descriptors, soft and hard limit alike).
pub fn start_limited(db: &str, trials_dir: &Path, extra: &[&str], nofile: Option<u64>) -> Server {
    let ktune = env!("CARGO_BIN_EXE_ktune");
    let mut command = match nofile {
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}")).arg(ktune);
            c
        }
        None => Command::new(ktune),
    };
    let mut child = command
        .args([
            "ui",
            "--db",
            db,
            "--listen",
            "127.0.0.1:0",
            "--poll-ms",
            "100",
            "--trials-dir",
        ])
        .arg(trials_dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .current_dir(super::repo_root())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("ktune ui: http://")
        .unwrap_or_else(|| panic!("{line:?}"));
    Server {
        child,
        base: url.trim_end_matches('/').to_owned(),
    }
}

/// Sends `request` (a whole HTTP/1.1 request) to `host` and reads the
/// reply up to the server's close: (status, head, body).
pub fn exchange(host: &str, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

/// GET `path` from `host` over a plain socket: (status, head, body).
pub fn get(host: &str, path: &str) -> (u16, String, String) {
    exchange(
        host,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
}

/// The value of header `name` in a response head, if present.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}
