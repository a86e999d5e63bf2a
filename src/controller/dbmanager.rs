//! The controller's side of Katib's gRPC DBManager API
//! ([`crate::metrics::katib_grpc`]): which callers may report for which
//! trial ([`PodGate`]), and starting the server (`--db-manager-listen`).
//!
//! Katib's DB manager believes whatever trial name a caller sends. The
//! controller admits a report only from an address of the trial's own pods
//! (`--db-manager-callers trial-pods`, the default): the `status.podIPs` of
//! the pods of the trial's workload (the workload kind's owner label, and
//! Katib's pod label `katib.kubeflow.org/trial`, which the controller puts
//! on every pod template of a trial: [`super::trial_pods`]). `trial-hosts`
//! also admits those pods' `status.hostIP` — needed where the pod network
//! rewrites source addresses to the node's (SNAT), and on the fake API
//! server whose pods' processes connect from 127.0.0.1 — at the cost of
//! trusting every pod on those nodes. `any` is Katib's behaviour.
//!
//! Reads (`GetObservationLog`) are admitted by the same rule (the trial's
//! pods while they exist) and from 127.0.0.1 or ::1: someone allowed to
//! port-forward or exec into the controller's pod (`kubectl port-forward`
//! connects from the pod's loopback) is allowed to read. Deletes are
//! admitted from there only (or under `any`), for trials that ended.
//!
//! A trial is named without its namespace: a name running (or stored) in
//! two namespaces at once is refused as ambiguous.
//!
//! Pod addresses are cached for [`CACHE_FOR`]; a refused address makes the
//! gate look again at most once per [`RECHECK_AFTER`] per trial (a pod that
//! just got its address), so a flood of refused calls costs the API server
//! at most one list per trial per second.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};

use super::trial_pods::TRIAL_LABEL as TRIAL_POD_LABEL;
use crate::metrics::katib_grpc::{
    Access, CallerGate, DbManagerError, DbManagerLimits, DbManagerServer, Refusal, StoredTrial,
};
use crate::metrics::kinds::push::{inbox_key, split_key};
use crate::metrics::push::PushServer;
use crate::store::SqlStore;

/// Katib's DB manager port, the default of `--db-manager-listen` in Katib mode.
pub const DEFAULT_PORT: u16 = 6789;

/// How long pod addresses are trusted.
pub const CACHE_FOR: Duration = Duration::from_secs(5);

/// How old a trial's cached addresses must be before a refused caller
/// makes the gate look again.
pub const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// Namespaces a trial name is looked up in at most.
const MAX_MATCHES: usize = 8;

/// Who may report for a trial (`--db-manager-callers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CallerRule {
    /// Only the trial's pods' own addresses (`status.podIPs`).
    #[default]
    TrialPods,
    /// Those, and the addresses of the nodes they run on (`status.hostIP`).
    TrialHosts,
    /// Anyone, as Katib (a warning at start-up).
    Any,
}

/// The addresses of one trial's pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrialAddresses {
    /// `status.podIPs` (and `status.podIP`).
    pub pods: Vec<IpAddr>,
    /// `status.hostIP(s)`.
    pub hosts: Vec<IpAddr>,
}

impl TrialAddresses {
    /// The addresses of `pods`.
    #[must_use]
    pub fn of(pods: &[Pod]) -> Self {
        let mut addresses = Self::default();
        for status in pods.iter().filter_map(|p| p.status.as_ref()) {
            let pod_ips = status.pod_ips.iter().flatten().map(|ip| ip.ip.as_str());
            addresses
                .pods
                .extend(pod_ips.chain(status.pod_ip.as_deref()).filter_map(parse_ip));
            let host_ips = status.host_ips.iter().flatten().map(|ip| ip.ip.as_str());
            addresses.hosts.extend(
                host_ips
                    .chain(status.host_ip.as_deref())
                    .filter_map(parse_ip),
            );
        }
        addresses.pods.sort_unstable();
        addresses.pods.dedup();
        addresses.hosts.sort_unstable();
        addresses.hosts.dedup();
        addresses
    }
}

fn parse_ip(text: &str) -> Option<IpAddr> {
    text.trim().parse().ok()
}

impl CallerRule {
    /// Whether `peer` may speak for a trial whose pods have `addresses`.
    #[must_use]
    pub fn admits(self, peer: IpAddr, addresses: &TrialAddresses) -> bool {
        let peer = peer.to_canonical();
        match self {
            Self::Any => true,
            Self::TrialPods => addresses.pods.contains(&peer),
            Self::TrialHosts => addresses.pods.contains(&peer) || addresses.hosts.contains(&peer),
        }
    }
}

impl fmt::Display for CallerRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TrialPods => "trial-pods",
            Self::TrialHosts => "trial-hosts",
            Self::Any => "any",
        })
    }
}

/// Where the addresses of a trial's pods come from: the API server
/// ([`KubePods`]), or a table in tests.
pub trait PodAddresses: Send + Sync + fmt::Debug + 'static {
    /// The addresses of the pods in `namespace` matching any of `selectors`.
    fn addresses<'a>(
        &'a self,
        namespace: &'a str,
        selectors: &'a [String],
    ) -> BoxFuture<'a, Result<TrialAddresses, kube::Error>>;
}

/// Pod addresses from the API server.
#[derive(Clone)]
pub struct KubePods(pub Client);

impl fmt::Debug for KubePods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KubePods")
    }
}

impl PodAddresses for KubePods {
    fn addresses<'a>(
        &'a self,
        namespace: &'a str,
        selectors: &'a [String],
    ) -> BoxFuture<'a, Result<TrialAddresses, kube::Error>> {
        Box::pin(async move {
            let api: Api<Pod> = Api::namespaced(self.0.clone(), namespace);
            let mut pods = Vec::new();
            for selector in selectors {
                pods.extend(
                    api.list(&ListParams::default().labels(selector))
                        .await?
                        .items,
                );
            }
            Ok(TrialAddresses::of(&pods))
        })
    }
}

/// The controller's [`CallerGate`].
#[derive(Debug)]
pub struct PodGate {
    pods: Arc<dyn PodAddresses>,
    push: Arc<PushServer>,
    store: SqlStore,
    rule: CallerRule,
    cache: Mutex<HashMap<String, (Instant, TrialAddresses)>>,
}

impl PodGate {
    /// The gate of trials registered on `push`, stored in `store`, whose
    /// pods' addresses come from `pods`.
    #[must_use]
    pub fn new(
        pods: Arc<dyn PodAddresses>,
        push: Arc<PushServer>,
        store: SqlStore,
        rule: CallerRule,
    ) -> Self {
        Self {
            pods,
            push,
            store,
            rule,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The running trial `trial` names: its namespace.
    fn running_namespace(&self, trial: &str) -> Result<String, Refusal> {
        let keys = self.push.registered_where(MAX_MATCHES, |key| {
            split_key(key).is_some_and(|(_, name)| name == trial)
        });
        let namespaces: Vec<&str> = keys
            .iter()
            .filter_map(|key| split_key(key).map(|(ns, _)| ns))
            .collect();
        match namespaces.as_slice() {
            [] => Err(Refusal::NotFound(format!(
                "no trial named {trial:?} is running (reports are accepted while a trial runs)"
            ))),
            [one] => Ok((*one).to_owned()),
            many => Err(ambiguous(trial, many)),
        }
    }

    /// Whether `peer` is one of the trial's pods (or hosts) under the rule,
    /// looking again when a refusal meets addresses older than [`RECHECK_AFTER`].
    async fn peer_admitted(
        &self,
        namespace: &str,
        trial: &str,
        peer: IpAddr,
    ) -> Result<bool, Refusal> {
        if self.rule == CallerRule::Any {
            return Ok(true);
        }
        let key = inbox_key(Some(namespace), trial);
        let cached = self.cached(&key);
        if let Some((at, addresses)) = &cached {
            if self.rule.admits(peer, addresses) {
                return Ok(true);
            }
            if at.elapsed() < RECHECK_AFTER {
                return Ok(false);
            }
        }
        let mut selectors: Vec<String> = self.push.pod_selector(&key).into_iter().collect();
        selectors.push(format!("{TRIAL_POD_LABEL}={trial}"));
        let addresses = self
            .pods
            .addresses(namespace, &selectors)
            .await
            .map_err(|e| {
                tracing::warn!(
                    namespace,
                    trial,
                    "DBManager: cannot list the trial's pods: {e}"
                );
                Refusal::Unavailable(format!("cannot list the pods of trial {trial:?}: {e}"))
            })?;
        let admitted = self.rule.admits(peer, &addresses);
        self.remember(key, addresses);
        Ok(admitted)
    }

    fn cached(&self, key: &str) -> Option<(Instant, TrialAddresses)> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < CACHE_FOR)
            .cloned()
    }

    fn remember(&self, key: String, addresses: TrialAddresses) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        // Old entries go when the cache grows (trials that ended).
        if cache.len() > 1024 {
            cache.retain(|_, (at, _)| at.elapsed() < CACHE_FOR);
        }
        cache.insert(key, (Instant::now(), addresses));
    }

    fn not_a_pod(peer: IpAddr, namespace: &str, trial: &str, rule: CallerRule) -> Refusal {
        Refusal::PermissionDenied(format!(
            "{peer} is not an address of trial {namespace}/{trial}'s pods (--db-manager-callers {rule})"
        ))
    }
}

/// Whether a caller is inside the controller's own pod: `kubectl
/// port-forward` and `kubectl exec` connect from 127.0.0.1 or ::1 (not
/// from the rest of 127.0.0.0/8, which no pod network hands out).
fn from_own_pod(peer: IpAddr) -> bool {
    matches!(peer.to_canonical(), IpAddr::V4(v4) if v4 == std::net::Ipv4Addr::LOCALHOST)
        || peer == IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
}

/// The refusal of a trial name found in several namespaces.
fn ambiguous(trial: &str, namespaces: &[&str]) -> Refusal {
    Refusal::FailedPrecondition(format!(
        "trial name {trial:?} is in namespaces {}: Katib's API names a trial without its namespace, so ktune cannot tell which one is meant",
        namespaces.join(", ")
    ))
}

impl CallerGate for PodGate {
    fn admit<'a>(
        &'a self,
        trial: &'a str,
        peer: SocketAddr,
    ) -> BoxFuture<'a, Result<String, Refusal>> {
        Box::pin(async move {
            let namespace = self.running_namespace(trial)?;
            if self.peer_admitted(&namespace, trial, peer.ip()).await? {
                Ok(inbox_key(Some(&namespace), trial))
            } else {
                Err(Self::not_a_pod(peer.ip(), &namespace, trial, self.rule))
            }
        })
    }

    fn locate<'a>(
        &'a self,
        trial: &'a str,
        peer: SocketAddr,
        access: Access,
    ) -> BoxFuture<'a, Result<StoredTrial, Refusal>> {
        Box::pin(async move {
            let local = from_own_pod(peer.ip());
            if access == Access::Delete && !local && self.rule != CallerRule::Any {
                return Err(Refusal::PermissionDenied(
                    "deleting observations is allowed from the controller's pod only (kubectl port-forward)"
                        .to_owned(),
                ));
            }
            let matches = self.store.trials_named(trial, MAX_MATCHES as i64).await?;
            let mut namespaces: Vec<&str> = matches
                .iter()
                .map(|(experiment, _)| experiment.split('/').next().unwrap_or_default())
                .collect();
            namespaces.sort_unstable();
            namespaces.dedup();
            let namespace = match namespaces.as_slice() {
                [] => {
                    return Err(Refusal::NotFound(format!(
                        "no trial named {trial:?} is stored"
                    )));
                }
                [one] => (*one).to_owned(),
                many => return Err(ambiguous(trial, many)),
            };
            if !local && !self.peer_admitted(&namespace, trial, peer.ip()).await? {
                return Err(Self::not_a_pod(peer.ip(), &namespace, trial, self.rule));
            }
            // The newest experiment's trial of that name.
            let Some((experiment, row)) = matches.into_iter().next_back() else {
                return Err(Refusal::NotFound(format!(
                    "no trial named {trial:?} is stored"
                )));
            };
            Ok(StoredTrial {
                experiment,
                trial: row,
                running: self.push.is_registered(&inbox_key(Some(&namespace), trial)),
            })
        })
    }
}

/// Starts the controller's DBManager API on `listen` for the trials of
/// `push`, admitted by `rule`.
///
/// # Errors
/// [`DbManagerError`] when `listen` cannot be bound.
pub async fn serve(
    listen: SocketAddr,
    rule: CallerRule,
    client: Client,
    push: Arc<PushServer>,
    store: SqlStore,
) -> Result<DbManagerServer, DbManagerError> {
    if rule == CallerRule::Any {
        tracing::warn!(
            "--db-manager-callers any: Katib's DBManager API accepts reports for any trial from anyone who can reach {listen}"
        );
    }
    let gate = PodGate::new(
        Arc::new(KubePods(client)),
        Arc::clone(&push),
        store.clone(),
        rule,
    );
    let limits = DbManagerLimits {
        max_message_bytes: push.limits().max_body,
        ..DbManagerLimits::default()
    };
    let server = DbManagerServer::bind(listen, Arc::new(gate), push, store, limits).await?;
    tracing::info!(listen = %server.local_addr(), callers = %rule, "Katib DBManager API listening");
    Ok(server)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{HostIP, PodIP, PodStatus};

    use super::*;

    fn pod(pod_ips: &[&str], host: &str) -> Pod {
        Pod {
            status: Some(PodStatus {
                pod_ip: pod_ips.first().map(|ip| (*ip).to_owned()),
                pod_ips: Some(
                    pod_ips
                        .iter()
                        .map(|ip| PodIP {
                            ip: (*ip).to_owned(),
                        })
                        .collect(),
                ),
                host_ip: Some(host.to_owned()),
                host_ips: Some(vec![HostIP {
                    ip: host.to_owned(),
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn each_rule_admits_what_it_says() {
        let addresses = TrialAddresses::of(&[
            pod(&["10.1.0.5", "fd00::5"], "192.168.0.1"),
            pod(&["10.1.0.6"], "192.168.0.2"),
            Pod::default(),
            pod(&["not an ip"], ""),
        ]);
        assert_eq!(addresses.pods.len(), 3, "{addresses:?}");
        assert_eq!(addresses.hosts.len(), 2);
        for (peer, pods, hosts) in [
            ("10.1.0.5", true, true),
            ("10.1.0.6", true, true),
            ("fd00::5", true, true),
            ("::ffff:10.1.0.5", true, true),
            ("192.168.0.2", false, true),
            ("10.1.0.7", false, false),
            ("127.0.0.1", false, false),
        ] {
            assert_eq!(
                CallerRule::TrialPods.admits(ip(peer), &addresses),
                pods,
                "{peer}"
            );
            assert_eq!(
                CallerRule::TrialHosts.admits(ip(peer), &addresses),
                hosts,
                "{peer}"
            );
            assert!(CallerRule::Any.admits(ip(peer), &addresses));
        }
        assert!(!CallerRule::TrialHosts.admits(ip("10.0.0.1"), &TrialAddresses::default()));
        assert_eq!(CallerRule::TrialHosts.to_string(), "trial-hosts");
    }

    #[test]
    fn only_the_pods_own_loopback_address_is_the_controllers_pod() {
        for (peer, own) in [
            ("127.0.0.1", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("127.0.0.77", false),
            ("10.0.0.1", false),
        ] {
            assert_eq!(from_own_pod(ip(peer)), own, "{peer}");
        }
    }

    /// A table of pod addresses, counting the lookups.
    #[derive(Debug, Default)]
    struct Table {
        addresses: Mutex<HashMap<String, TrialAddresses>>,
        lookups: std::sync::atomic::AtomicUsize,
    }

    impl PodAddresses for Table {
        fn addresses<'a>(
            &'a self,
            namespace: &'a str,
            selectors: &'a [String],
        ) -> BoxFuture<'a, Result<TrialAddresses, kube::Error>> {
            self.lookups
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let table = self.addresses.lock().unwrap();
            let found = selectors
                .iter()
                .find_map(|s| table.get(&format!("{namespace}/{s}")).cloned())
                .unwrap_or_default();
            Box::pin(async move { Ok(found) })
        }
    }

    #[tokio::test]
    async fn reports_need_a_running_trial_of_one_namespace_from_its_pods() {
        let push = Arc::new(
            PushServer::bind("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap(),
        );
        let store = SqlStore::connect("sqlite::memory:").await.unwrap();
        let table = Arc::new(Table::default());
        table.addresses.lock().unwrap().insert(
            format!("ns1/{TRIAL_POD_LABEL}=t1"),
            TrialAddresses {
                pods: vec![ip("10.1.0.5")],
                hosts: vec![ip("192.168.0.1")],
            },
        );
        let gate = PodGate::new(
            Arc::clone(&table) as Arc<dyn PodAddresses>,
            Arc::clone(&push),
            store,
            CallerRule::TrialPods,
        );
        let from = |text: &str| SocketAddr::new(ip(text), 4000);
        assert!(matches!(
            gate.admit("t1", from("10.1.0.5")).await,
            Err(Refusal::NotFound(_))
        ));
        push.register("ns1.t1").unwrap();
        assert_eq!(gate.admit("t1", from("10.1.0.5")).await.unwrap(), "ns1.t1");
        let denied = gate.admit("t1", from("10.9.9.9")).await.unwrap_err();
        assert!(matches!(denied, Refusal::PermissionDenied(_)), "{denied:?}");
        assert!(matches!(
            gate.admit("t1", from("192.168.0.1")).await,
            Err(Refusal::PermissionDenied(_))
        ));
        // A flood of refused calls looks the pods up again at most once per RECHECK_AFTER.
        let before = table.lookups.load(std::sync::atomic::Ordering::SeqCst);
        for _ in 0..100 {
            assert!(gate.admit("t1", from("10.9.9.9")).await.is_err());
        }
        let after = table.lookups.load(std::sync::atomic::Ordering::SeqCst);
        assert!(after - before <= 1, "{before} → {after}");
        // The same name running in two namespaces is ambiguous.
        push.register("ns2.t1").unwrap();
        let e = gate.admit("t1", from("10.1.0.5")).await.unwrap_err();
        assert!(
            matches!(&e, Refusal::FailedPrecondition(m) if m.contains("ns1") && m.contains("ns2")),
            "{e:?}"
        );
    }
}
