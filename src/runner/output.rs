//! A trial's standard output and error, copied by ktune into its log files.
//!
//! The trial writes into pipes, never into the files: ktune reads them and
//! decides what reaches the disk. That is what makes the log limit a real
//! bound (a file opened by the trial itself keeps growing between two
//! checks, and through the grace period of a trial that ignores SIGTERM):
//! every byte is counted against the trial's [`LogBudget`] before it is
//! written, the copy stops at the limit exactly, and the trial is killed at
//! once. A write the disk refuses (a full disk) is remembered as the
//! trial's fault and also ends it.
//!
//! Should ktune die, the pipes' read ends close with it: a trial that
//! writes again gets `SIGPIPE` (or `EPIPE`) instead of blocking on a full
//! pipe forever, and the next `ktune run` stops whatever is left.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// Bytes read from a pipe at a time.
const CHUNK: usize = 64 * 1024;

/// The bytes a trial's output may still take on disk, shared by its
/// stdout and stderr (and by every replica of a distributed trial).
#[derive(Debug)]
pub struct LogBudget {
    limit: Option<u64>,
    used: AtomicU64,
}

impl LogBudget {
    /// A budget of `limit` bytes (`None`: no limit).
    #[must_use]
    pub fn new(limit: Option<u64>) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// Claims up to `want` bytes; returns how many may be written (fewer
    /// than asked once the limit is reached). Concurrent copiers never
    /// claim more than the limit between them.
    fn claim(&self, want: u64) -> u64 {
        let Some(limit) = self.limit else {
            return want;
        };
        let before = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| {
                Some(used.saturating_add(want.min(limit.saturating_sub(used))))
            })
            .unwrap_or_else(|used| used);
        want.min(limit.saturating_sub(before))
    }
}

/// What the copiers of one process found: whether it wrote past the
/// budget, and the first write the disk refused.
#[derive(Debug, Default)]
pub struct Capture {
    flooded: AtomicBool,
    fault: OnceLock<String>,
}

impl Capture {
    /// Whether the process wrote more than the budget allowed.
    #[must_use]
    pub fn flooded(&self) -> bool {
        self.flooded.load(Ordering::Acquire)
    }

    /// The first write to a log file that failed (`stdout.log: No space
    /// left on device …`), if any.
    #[must_use]
    pub fn fault(&self) -> Option<&str> {
        self.fault.get().map(String::as_str)
    }
}

/// Copies `from` (a trial's pipe) into `to` (the log file named `name`)
/// until the pipe closes, the budget runs out or the file cannot be
/// written. In the last two cases `stop` (which kills the trial, without a
/// grace period) runs at once and the pipe is closed.
pub fn spawn_copy<R>(
    from: R,
    to: std::fs::File,
    name: &'static str,
    budget: &Arc<LogBudget>,
    capture: &Arc<Capture>,
    stop: impl Fn() + Send + 'static,
) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let (budget, capture) = (Arc::clone(budget), Arc::clone(capture));
    tokio::spawn(async move {
        let to = tokio::fs::File::from_std(to);
        if let Err(end) = copy(from, to, &budget).await {
            match end {
                CopyEnd::Flooded => capture.flooded.store(true, Ordering::Release),
                CopyEnd::Write(e) => {
                    let _ = capture.fault.set(format!("{name}: {e}"));
                }
            }
            stop();
        }
    })
}

/// Why a copy stopped before the pipe closed.
enum CopyEnd {
    /// The budget ran out.
    Flooded,
    /// The file could not be written.
    Write(io::Error),
}

/// The copy loop. A read error ends it like the end of the pipe: the
/// trial's exit status tells what happened.
async fn copy<R>(mut from: R, mut to: tokio::fs::File, budget: &LogBudget) -> Result<(), CopyEnd>
where
    R: AsyncRead + Unpin,
{
    let mut buf = vec![0_u8; CHUNK];
    loop {
        let read = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return Ok(()),
            Ok(n) => n,
        };
        let wanted = u64::try_from(read).unwrap_or(u64::MAX);
        let granted = usize::try_from(budget.claim(wanted)).map_or(read, |g| g.min(read));
        if let Some(bytes) = buf.get(..granted).filter(|b| !b.is_empty()) {
            // Flushed each time: the StdOut collector reads the file while
            // the trial runs, and a write error must surface now.
            let written = async {
                to.write_all(bytes).await?;
                to.flush().await
            };
            written.await.map_err(CopyEnd::Write)?;
        }
        if granted < read {
            return Err(CopyEnd::Flooded);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_never_overdrawn_and_none_is_unlimited() {
        let budget = LogBudget::new(Some(10));
        assert_eq!(budget.claim(4), 4);
        assert_eq!(budget.claim(4), 4);
        assert_eq!(budget.claim(4), 2);
        assert_eq!(budget.claim(1), 0);
        assert_eq!(LogBudget::new(None).claim(u64::MAX), u64::MAX);
    }

    #[test]
    fn concurrent_claims_add_up_to_the_limit_exactly() {
        let budget = LogBudget::new(Some(100_003));
        let total: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..50_000).map(|_| budget.claim(7)).sum::<u64>()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(total, 100_003);
    }

    #[tokio::test]
    async fn a_copy_stops_at_the_budget_and_says_so() {
        let path = std::env::temp_dir().join(format!("ktune-output-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let (mut writer, reader) = tokio::io::duplex(1024);
        let capture = Arc::new(Capture::default());
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stopped);
        let task = spawn_copy(
            reader,
            file,
            "stdout.log",
            &LogBudget::new(Some(1000)),
            &capture,
            move || flag.store(true, Ordering::Release),
        );
        // The copier closes its end at the limit, so this write fails then.
        for _ in 0..100 {
            if writer.write_all(&[b'x'; 100]).await.is_err() {
                break;
            }
        }
        task.await.unwrap();
        assert!(capture.flooded() && stopped.load(Ordering::Acquire));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1000);
        assert_eq!(capture.fault(), None);
        std::fs::remove_file(path).ok();
    }
}
