//! Leader election on a `coordination.k8s.io/v1` Lease, so that several
//! controller replicas (a rolling update, or two for availability) never
//! run two workers for one experiment: only the holder of the lease runs
//! the controllers, the others wait to take it over.
//!
//! The protocol is client-go's: every write is a get then a create or a
//! replace carrying the resourceVersion read, so two candidates racing for
//! the lease cannot both win (the loser gets `409 Conflict`). Expiry is
//! judged on this process's own clock — from when it last saw the lease
//! change — never by comparing the holder's `renewTime` with our clock, so
//! skewed clocks cannot make two leaders.
//!
//! kube 5 has no leader election of its own and kube-leader-election needs
//! kube 4; this is the small part of it we need.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};

use super::health::transient;

/// The label on the pod of the replica that holds the lease (and works).
pub const LEADER_LABEL: &str = "ktune.dev/leader";

/// Where the lease is and who we are.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// The lease's namespace (the controller's own, in a cluster).
    pub namespace: String,
    /// The lease's name.
    pub name: String,
    /// This process's identity in `holderIdentity`.
    pub identity: String,
    /// How long a lease not renewed stays held (`leaseDurationSeconds`).
    pub duration: Duration,
    /// How often the holder renews it (and a candidate retries).
    pub renew: Duration,
}

impl LeaseConfig {
    /// client-go's defaults, scaled: 15 s leases renewed every 5 s.
    #[must_use]
    pub fn new(namespace: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: "ktune-controller".to_owned(),
            identity: identity.to_owned(),
            duration: Duration::from_secs(15),
            renew: Duration::from_secs(5),
        }
    }
}

/// `hostname-pid`: unique among the replicas (a pod's hostname is its name)
/// and among processes on one machine.
#[must_use]
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "ktune".to_owned());
    format!("{host}-{}", std::process::id())
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// One candidate for the lease.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    /// Pods of the lease's namespace: this replica's own is marked with
    /// [`LEADER_LABEL`] while it holds the lease.
    pods: Api<Pod>,
    config: LeaseConfig,
    /// The lease's resourceVersion when we last saw it change, and when.
    observed: Option<(String, Instant)>,
}

impl Elector {
    /// A candidate that holds nothing yet.
    #[must_use]
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client.clone(), &config.namespace),
            pods: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    fn spec(&self, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        let seconds = i32::try_from(self.config.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(seconds),
            acquire_time: Some(acquired.unwrap_or_else(now)),
            renew_time: Some(now()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One attempt to take or renew the lease: whether we hold it now.
    ///
    /// # Errors
    /// The API's, except the conflicts of a lost race (`Ok(false)`).
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(0, None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        if self.observed.as_ref().is_none_or(|(v, _)| *v != version) {
            self.observed = Some((version, Instant::now()));
        }
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        let new_spec = if holder == self.config.identity {
            self.spec(transitions, spec.acquire_time)
        } else {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.config.duration, Duration::from_secs);
            let expired = holder.is_empty()
                || self
                    .observed
                    .as_ref()
                    .is_some_and(|(_, seen)| seen.elapsed() >= duration);
            if !expired {
                return Ok(false);
            }
            tracing::info!(previous = holder, "taking over the expired lease");
            self.spec(transitions.saturating_add(1), None)
        };
        lease.spec = Some(new_spec);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until we hold the lease (retrying every renew period).
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(identity = self.config.identity, "holding the lease");
                    self.mark_pod(true).await;
                    return;
                }
                Ok(false) => tracing::debug!("the lease is held elsewhere"),
                // An outage is logged once by the client's health.
                Err(e) if transient(&e) => tracing::debug!("acquiring the lease: {e}"),
                Err(e) => tracing::warn!("acquiring the lease: {e}"),
            }
            tokio::time::sleep(self.config.renew).await;
        }
    }

    /// Renews the lease until `stop` resolves (`false`) or the lease is
    /// lost (`true`): taken by another, or not renewed for two thirds of
    /// its duration (so we stop before anyone may take it over). A renewal
    /// counts from when it was sent, not answered: a slow answer cannot
    /// stretch our term past what the other candidates see.
    pub async fn hold(&mut self, stop: impl Future<Output = ()>) -> bool {
        let mut stop = std::pin::pin!(stop);
        let mut renewed = Instant::now();
        // The term ends this long after the last renewal.
        let term = self.config.duration * 2 / 3;
        loop {
            let wait = self
                .config
                .renew
                .min(term.saturating_sub(renewed.elapsed()));
            tokio::select! {
                () = &mut stop => return false,
                () = tokio::time::sleep(wait) => {}
            }
            let sent = Instant::now();
            let attempt = tokio::time::timeout(
                term.saturating_sub(renewed.elapsed()),
                self.try_acquire_or_renew(),
            )
            .await;
            match attempt {
                Ok(Ok(true)) => renewed = sent,
                Ok(Ok(false)) => {
                    tracing::error!("the lease was taken by another controller");
                    self.unmark_pod_later();
                    return true;
                }
                Ok(Err(e)) if transient(&e) => tracing::debug!("renewing the lease: {e}"),
                Ok(Err(e)) => tracing::warn!("renewing the lease: {e}"),
                Err(_) => tracing::debug!("renewing the lease: no answer in time"),
            }
            if renewed.elapsed() >= term {
                tracing::error!("could not renew the lease in time");
                self.unmark_pod_later();
                return true;
            }
        }
    }

    /// Gives the lease up (best effort), so a standby takes over at once
    /// rather than after the lease expires.
    pub async fn release(&mut self) {
        self.mark_pod(false).await;
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!("released the lease"),
            Err(e) => tracing::warn!("releasing the lease: {e}"),
        }
    }

    /// Marks this replica's pod (named by its identity, as deploy/ sets
    /// it) as the one that works, or no longer: the Services of the
    /// endpoints only the working replica serves (push, Katib's metrics
    /// API) select that label, so a standby — ready, but serving neither —
    /// gets no reports. Best effort: outside a pod there is nothing to
    /// mark, and a lost mark only costs reports a retry.
    async fn mark_pod(&self, leading: bool) {
        let marking = mark(self.pods.clone(), self.config.identity.clone(), leading);
        // Never longer than a renewal period: the API server may hang.
        if tokio::time::timeout(self.config.renew, marking)
            .await
            .is_err()
        {
            tracing::debug!("marking this replica's pod: no answer in time");
        }
    }

    /// Unmarks this replica's pod without waiting: a term that ended
    /// because the API server hangs must end at once.
    fn unmark_pod_later(&self) {
        tokio::spawn(mark(self.pods.clone(), self.config.identity.clone(), false));
    }
}

/// Sets or removes [`LEADER_LABEL`] on the pod `name` (best effort).
async fn mark(pods: Api<Pod>, name: String, leading: bool) {
    let value = if leading {
        serde_json::Value::from("true")
    } else {
        serde_json::Value::Null
    };
    let patch = Patch::Merge(serde_json::json!({"metadata": {"labels": {LEADER_LABEL: value}}}));
    match pods.patch(&name, &PatchParams::default(), &patch).await {
        Ok(_) => tracing::debug!(leading, "marked this replica's pod"),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            tracing::debug!("no pod named {name} to mark: not in a pod");
        }
        Err(e) => tracing::warn!("marking this replica's pod {name}: {e}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn candidates(duration: Duration) -> (Elector, Elector, Api<Lease>) {
        let server = ktune_fake_apiserver::FakeApiServer::new();
        let client = Client::new(server.router(), "default");
        let config = |identity: &str| LeaseConfig {
            duration,
            renew: duration / 3,
            ..LeaseConfig::new("default", identity)
        };
        (
            Elector::new(client.clone(), config("a")),
            Elector::new(client.clone(), config("b")),
            Api::namespaced(client, "default"),
        )
    }

    async fn holder(api: &Api<Lease>) -> Option<String> {
        api.get("ktune-controller")
            .await
            .unwrap()
            .spec
            .and_then(|s| s.holder_identity)
    }

    #[tokio::test]
    async fn one_candidate_holds_the_lease_and_renews_it_while_the_other_waits() {
        let (mut a, mut b, api) = candidates(Duration::from_secs(30));
        assert!(a.try_acquire_or_renew().await.unwrap());
        assert!(!b.try_acquire_or_renew().await.unwrap());
        let before = api.get("ktune-controller").await.unwrap();
        assert!(a.try_acquire_or_renew().await.unwrap());
        let after = api.get("ktune-controller").await.unwrap();
        assert_ne!(
            before.metadata.resource_version,
            after.metadata.resource_version
        );
        assert_eq!(holder(&api).await.as_deref(), Some("a"));
        assert_eq!(after.spec.unwrap().lease_transitions, Some(0));
    }

    /// The holder's pod carries the leader label (what the push and
    /// Katib metrics Services select) while it holds the lease; a
    /// candidate without a pod (outside a cluster) holds it all the same.
    #[tokio::test]
    async fn the_holders_pod_is_labelled_while_it_holds_the_lease() {
        let (mut a, mut b, _) = candidates(Duration::from_secs(30));
        let mut pod = Pod::default();
        pod.metadata.name = Some("a".into());
        a.pods.create(&PostParams::default(), &pod).await.unwrap();
        let label = |pod: Pod| {
            pod.metadata
                .labels
                .unwrap_or_default()
                .get(LEADER_LABEL)
                .cloned()
        };
        a.acquire().await;
        assert_eq!(
            label(a.pods.get("a").await.unwrap()).as_deref(),
            Some("true")
        );
        a.release().await;
        assert_eq!(label(a.pods.get("a").await.unwrap()), None);
        // `b` has no pod: it still takes the lease.
        tokio::time::timeout(Duration::from_secs(5), b.acquire())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_stale_resource_version_loses_the_race() {
        let (mut a, _, api) = candidates(Duration::from_secs(30));
        assert!(a.try_acquire_or_renew().await.unwrap());
        let mut stale = api.get("ktune-controller").await.unwrap();
        assert!(a.try_acquire_or_renew().await.unwrap());
        stale.spec.as_mut().unwrap().holder_identity = Some("b".into());
        let error = api
            .replace("ktune-controller", &PostParams::default(), &stale)
            .await
            .unwrap_err();
        assert!(conflict(&error), "{error}");
        assert_eq!(holder(&api).await.as_deref(), Some("a"));
    }

    #[tokio::test]
    async fn an_expired_lease_is_taken_over_and_a_released_one_at_once() {
        let (mut a, mut b, api) = candidates(Duration::from_secs(1));
        assert!(a.try_acquire_or_renew().await.unwrap());
        // b starts its clock when it first sees the lease.
        assert!(!b.try_acquire_or_renew().await.unwrap());
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(b.try_acquire_or_renew().await.unwrap());
        assert_eq!(holder(&api).await.as_deref(), Some("b"));
        let spec = api.get("ktune-controller").await.unwrap().spec.unwrap();
        assert_eq!(spec.lease_transitions, Some(1));
        // The old holder finds it gone.
        assert!(!a.try_acquire_or_renew().await.unwrap());
        b.release().await;
        assert_eq!(holder(&api).await, None);
        assert!(a.try_acquire_or_renew().await.unwrap());
    }

    #[tokio::test]
    async fn hold_reports_a_lease_taken_by_another() {
        let (mut a, _, api) = candidates(Duration::from_millis(300));
        assert!(a.try_acquire_or_renew().await.unwrap());
        let mut lease = api.get("ktune-controller").await.unwrap();
        lease.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
        api.replace("ktune-controller", &PostParams::default(), &lease)
            .await
            .unwrap();
        assert!(a.hold(futures::future::pending()).await);
    }

    /// A renewal the API server never answers (a half-open connection)
    /// costs the lease in time: the holder stops within two thirds of the
    /// lease, before any other candidate may take it over.
    #[tokio::test]
    async fn hold_gives_up_in_time_when_renewals_hang() {
        use http::{Request, Response};
        use kube::client::Body;
        // Requests are accepted and never answered.
        let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let config = LeaseConfig {
            duration: Duration::from_millis(600),
            renew: Duration::from_millis(200),
            ..LeaseConfig::new("default", "a")
        };
        let mut a = Elector::new(Client::new(service, "default"), config);
        let started = Instant::now();
        let lost = tokio::time::timeout(Duration::from_secs(3), a.hold(futures::future::pending()))
            .await
            .expect("hold waited on a renewal that never ends");
        assert!(lost);
        assert!(
            started.elapsed() < Duration::from_millis(550),
            "{:?}",
            started.elapsed()
        );
    }
}
