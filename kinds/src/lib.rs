//! The workload kinds a ktune trial may be, as one table ([`KINDS`]).
//!
//! Each entry says, for one group/version/kind: its plural (for API paths
//! and RBAC), what serves it, the conditions its controller writes when it
//! ends (Katib's default `successCondition`/`failureCondition`), Katib's
//! default primary-pod labels, the label every pod of a workload carries
//! with the workload's name, where its replicas' pod templates live
//! ([`Replicas`]), which container of a replica is the trial's, and the
//! distributed environment each replica gets ([`Environment`]).
//!
//! Everything that knows about trial kinds reads this table: Katib's
//! defaulting, the controller (its allowed kinds, what it watches, how it
//! finds the primary pod, what to install when a kind is not served), the
//! generated RBAC rules, `ktune run`'s local replica plans and the fake API
//! server's workload controllers. Adding a kind whose replicas take one of
//! the [`Replicas`] shapes is one entry in `table.rs` plus a test.
//!
//! Pure data and pure functions: no I/O, no clock. Where a rule needs
//! rendezvous ports, the caller picks them (the kernel's free ports) and
//! passes them in ([`Environment::ports`], [`Environment::variables`]).
#![deny(missing_docs)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::todo,
    clippy::unimplemented,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod env;
mod example;
pub mod paths;
mod pods;
mod replicas;
mod table;

pub use env::{EnvVar, Environment, LOCALHOST};
pub use pods::PodIdentity;
pub use replicas::{
    JobIndex, Labelling, Lead, MAX_REPLICAS, Replica, ReplicaError, Replicas, Success, Typed,
    WorkflowEngine,
};
pub use table::KINDS;

/// One workload kind a trial may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialKind {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version (`v1`, `v2beta1`).
    pub version: &'static str,
    /// Kind (`PyTorchJob`).
    pub kind: &'static str,
    /// The resource's plural, its path segment and RBAC resource (`pytorchjobs`).
    pub plural: &'static str,
    /// What a cluster must install to serve it (`None`: built in).
    pub served_by: Option<&'static str>,
    /// The condition types its controller sets when a workload ends, from
    /// which Katib's default success and failure conditions are written;
    /// `None` for kinds Katib has no defaults for.
    pub conditions: Option<Conditions>,
    /// Katib's default `primaryPodLabels` (empty: none).
    pub primary_pod_labels: &'static [(&'static str, &'static str)],
    /// The label every pod of a workload carries with the workload's name,
    /// as its controller sets it; `None` where only `primaryPodLabels`
    /// select the pods.
    pub owner_label: Option<&'static str>,
    /// Where its replicas' pod templates live.
    pub replicas: Replicas,
    /// Which container of a replica runs the trial's program.
    pub container: MainContainer,
    /// The environment its replicas get for their rendezvous.
    pub environment: Environment,
}

/// The condition types a kind's controller sets when a workload succeeds
/// or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conditions {
    /// `Succeeded`, `Complete`, `Completed`.
    pub success: &'static str,
    /// `Failed`.
    pub failure: &'static str,
}

impl Conditions {
    /// Katib's default success condition (a GJSON query on the workload).
    #[must_use]
    pub fn success_condition(&self) -> String {
        condition_holds(self.success)
    }

    /// Katib's default failure condition.
    #[must_use]
    pub fn failure_condition(&self) -> String {
        condition_holds(self.failure)
    }
}

/// The GJSON query Katib uses for "condition `ty` is True".
fn condition_holds(ty: &str) -> String {
    format!(r#"status.conditions.#(type=="{ty}")#|#(status=="True")#"#)
}

/// Which container of a replica's pod template is the trial's: the one
/// named by the experiment's `primaryContainerName` when there is one,
/// else the kind's default, else (where the kind says so) the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MainContainer {
    /// The container the kind's operator configures (`pytorch`), if any.
    pub default: Option<&'static str>,
    /// Whether the first container runs when no container is so named
    /// (mpi-operator sets up the launcher's first container).
    pub else_first: bool,
}

impl MainContainer {
    /// Only the container named by `primaryContainerName`.
    pub const PRIMARY: Self = Self {
        default: None,
        else_first: false,
    };

    /// The container named `primary`, else the default, else the first:
    /// the candidates in order, as predicates on a container's name
    /// (`None` stands for "the first").
    #[must_use]
    pub fn candidates<'a>(&self, primary: &'a str) -> Vec<Option<&'a str>> {
        let mut out = vec![Some(primary)];
        out.extend(self.default.map(Some));
        if self.else_first {
            out.push(None);
        }
        out
    }
}

impl TrialKind {
    /// `group/version`, or `version` for the core group.
    #[must_use]
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// As Katib's `trialResources` spells it: `Kind.version.group`.
    #[must_use]
    pub fn trial_resource(&self) -> String {
        format!("{}.{}.{}", self.kind, self.version, self.group)
    }
}

/// The entry of exactly this group, version and kind.
#[must_use]
pub fn find(group: &str, version: &str, kind: &str) -> Option<&'static TrialKind> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.kind == kind)
}

/// The entry for an `apiVersion` and `kind`: exactly that one, else the
/// same kind of the same group at another version.
#[must_use]
pub fn in_group(api_version: &str, kind: &str) -> Option<&'static TrialKind> {
    let (group, version) = split_api_version(api_version);
    find(group, version, kind).or_else(|| KINDS.iter().find(|k| k.group == group && k.kind == kind))
}

/// The entry for a workload's `apiVersion` and `kind` as [`in_group`]
/// finds it, else the first of that kind in any group: Katib's defaulting
/// compares only the kind, and a workload may come without its apiVersion.
#[must_use]
pub fn lookup(api_version: &str, kind: &str) -> Option<&'static TrialKind> {
    in_group(api_version, kind).or_else(|| KINDS.iter().find(|k| k.kind == kind))
}

/// The entry for a workload object (its `apiVersion` and `kind`).
#[must_use]
pub fn of_workload(workload: &serde_json::Value) -> Option<&'static TrialKind> {
    let text = |key| {
        workload
            .get(key)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
    };
    lookup(text("apiVersion"), text("kind"))
}

/// What a cluster that does not serve a kind should install: what serves
/// the kind, else what serves its group (an unknown kind of a known
/// group), else its CustomResourceDefinition.
#[must_use]
pub fn install_hint(group: &str, version: &str, kind: &str) -> String {
    let served_by = find(group, version, kind)
        .or_else(|| KINDS.iter().find(|k| k.group == group))
        .and_then(|k| k.served_by);
    served_by.map_or_else(
        || "install the CustomResourceDefinition that defines it".to_owned(),
        |what| format!("install {what}"),
    )
}

/// `(group, version)` of an `apiVersion` (`batch/v1`, or `v1` for core).
#[must_use]
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// What the controller needs granted to run every kind of the table as a
/// trial: each API group once, in table order, with its plurals.
#[must_use]
pub fn rbac_grants() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut grants: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for kind in KINDS {
        match grants.iter_mut().find(|(group, _)| *group == kind.group) {
            Some((_, plurals)) if plurals.contains(&kind.plural) => {}
            Some((_, plurals)) => plurals.push(kind.plural),
            None => grants.push((kind.group, vec![kind.plural])),
        }
    }
    grants
}

#[cfg(test)]
mod tests;
