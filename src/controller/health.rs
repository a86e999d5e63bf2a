//! Living through API server outages.
//!
//! - [`transient`]: which API errors are worth retrying (the server could
//!   not be reached, or answered 429/5xx) — the others (403 from RBAC,
//!   404, 422 from validation) will not go away by themselves and fail
//!   what asked instead;
//! - [`Backoff`]: exponential, capped delays between retries;
//! - [`ApiHealth`] and [`observed`]: every request of the controller goes
//!   through one client that notices the API server going away and coming
//!   back, so an outage costs a warning when it starts, one per
//!   [`ApiHealth`] interval while it lasts and a line when it ends — not
//!   one line per failed request of every watch, reconcile and worker.
//!
//! kube-runtime's watches back off on their own (its `DefaultBackoff`:
//! 0.8 s doubling to 30 s, with jitter, reset after 120 s without errors);
//! the reconcilers' requeues use [`Backoff`] through the controller's
//! error policy, and the experiment workers retry their writes on each
//! tick.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Client;

/// Whether an API error may go away by itself: the server could not be
/// reached or did not answer in full, or it answered 429 (too many
/// requests) or 5xx.
#[must_use]
pub fn transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// Exponentially growing delays, from `initial` doubling up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays from `initial` doubling to `max`.
    #[must_use]
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay before the next attempt (each one twice the last, capped).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Starts again from the initial delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }

    /// The delay after `failures` consecutive failures (1 → `initial`).
    #[must_use]
    pub fn after(initial: Duration, max: Duration, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        initial.saturating_mul(1 << doublings).min(max)
    }
}

/// Calls `call` until it succeeds or fails for good, sleeping with
/// `backoff` after each [`transient`] failure (the outage itself is logged
/// by [`ApiHealth`]).
///
/// # Errors
/// The first error that is not transient.
pub async fn retry<T, F, Fut>(mut backoff: Backoff, mut call: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    loop {
        match call().await {
            Err(e) if transient(&e) => {
                tracing::debug!("retrying after a transient API error: {e}");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            other => return other,
        }
    }
}

/// When the outage began, how many requests failed since, and when it was
/// last logged.
#[derive(Debug, Default)]
struct Outage {
    since: Option<Instant>,
    failures: u64,
    logged: Option<Instant>,
}

/// Whether the API server answers, as seen from every request.
#[derive(Debug)]
pub struct ApiHealth {
    outage: Mutex<Outage>,
    interval: Duration,
}

impl Default for ApiHealth {
    fn default() -> Self {
        Self::new(DEFAULT_LOG_INTERVAL)
    }
}

/// How often a lasting outage is logged again.
pub const DEFAULT_LOG_INTERVAL: Duration = Duration::from_secs(30);

impl ApiHealth {
    /// An outage is logged when it starts, then every `interval`.
    #[must_use]
    pub fn new(interval: Duration) -> Self {
        Self {
            outage: Mutex::new(Outage::default()),
            interval,
        }
    }

    /// A request failed for a reason that may pass (see [`transient`]).
    /// Returns whether this failure was logged (at warn).
    pub fn failed(&self, error: &dyn std::fmt::Display) -> bool {
        let Ok(mut outage) = self.outage.lock() else {
            return false;
        };
        outage.failures += 1;
        let now = Instant::now();
        match (outage.since, outage.logged) {
            (None, _) => {
                outage.since = Some(now);
                outage.logged = Some(now);
                tracing::warn!(
                    "the Kubernetes API server cannot be reached ({error}); retrying with backoff (logged again every {}s while it lasts)",
                    self.interval.as_secs()
                );
                true
            }
            (Some(since), Some(logged)) if logged.elapsed() >= self.interval => {
                outage.logged = Some(now);
                tracing::warn!(
                    "the Kubernetes API server still cannot be reached after {}s ({} failed requests; last: {error})",
                    since.elapsed().as_secs(),
                    outage.failures
                );
                true
            }
            _ => {
                tracing::debug!("Kubernetes API request failed: {error}");
                false
            }
        }
    }

    /// A request got an answer: an outage, if any, is over.
    pub fn answered(&self) {
        let Ok(mut outage) = self.outage.lock() else {
            return;
        };
        if let Some(since) = outage.since {
            tracing::warn!(
                "the Kubernetes API server answers again after {:.1}s ({} failed requests)",
                since.elapsed().as_secs_f64(),
                outage.failures
            );
            *outage = Outage::default();
        }
    }

    /// Whether the last request failed with a transient error.
    #[must_use]
    pub fn is_down(&self) -> bool {
        self.outage.lock().is_ok_and(|o| o.since.is_some())
    }
}

/// `client`, with every request's outcome reported to `health`.
#[must_use]
pub fn observed(client: Client, health: Arc<ApiHealth>) -> Client {
    let namespace = client.default_namespace().to_owned();
    let service = tower::service_fn(move |request| {
        let client = client.clone();
        let health = Arc::clone(&health);
        async move {
            let response = client.send(request).await;
            match &response {
                Ok(r) if matches!(r.status().as_u16(), 502..=504) => {
                    health.failed(&format!("HTTP {}", r.status()));
                }
                Ok(_) => health.answered(),
                Err(e) if transient(e) => {
                    health.failed(e);
                }
                Err(_) => {}
            }
            response
        }
    });
    Client::new(service, namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let delays: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        let (one, cap) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(Backoff::after(one, cap, 1), one);
        assert_eq!(Backoff::after(one, cap, 4), Duration::from_secs(8));
        assert_eq!(Backoff::after(one, cap, 40), cap);
    }

    #[test]
    fn only_errors_that_may_pass_are_transient() {
        let api = |code: u16| {
            kube::Error::Api(Box::new(
                kube::core::Status::failure("x", "Reason").with_code(code),
            ))
        };
        assert!(transient(&api(503)) && transient(&api(429)) && transient(&api(500)));
        assert!(!transient(&api(403)) && !transient(&api(404)) && !transient(&api(422)));
        let refused = kube::Error::Service("connection refused".into());
        assert!(transient(&refused));
    }

    #[tokio::test]
    async fn an_outage_is_noticed_once_and_its_end_too() {
        let health = ApiHealth::new(Duration::from_secs(3600));
        assert!(!health.is_down());
        let warned = (0..100)
            .filter(|_| health.failed(&"connection refused"))
            .count();
        assert_eq!(warned, 1, "an outage is logged once per interval");
        assert!(health.is_down());
        assert_eq!(health.outage.lock().unwrap().failures, 100);
        health.answered();
        assert!(!health.is_down());
        assert_eq!(health.outage.lock().unwrap().failures, 0);
    }

    #[tokio::test]
    async fn retry_retries_transient_errors_only() {
        let mut calls = 0;
        let quick = Backoff::new(Duration::from_millis(1), Duration::from_millis(2));
        let result: Result<u32, kube::Error> = retry(quick.clone(), || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(kube::Error::Service("refused".into()))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 3);
        let mut calls = 0;
        let result: Result<u32, kube::Error> = retry(quick, || {
            calls += 1;
            async {
                Err(kube::Error::Api(Box::new(
                    kube::core::Status::failure("no", "Forbidden").with_code(403),
                )))
            }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }
}
