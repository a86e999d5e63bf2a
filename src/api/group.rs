//! The API group the Experiment and Trial resources are served under, and
//! the resource types themselves.
//!
//! One controller process serves one group, chosen at start-up:
//! `ktune.dev` (ktune's own, the default) or `kubeflow.org` (Katib's, so
//! that ktune replaces a Katib installation and Katib's SDK, YAML and
//! kubectl habits work unchanged). The spec and status types are the same
//! for both — Katib's v1beta1 fields — so the group is not a compile-time
//! constant but the resources' [`Resource::DynamicType`]: every
//! `Api<Experiment>` is made for a group, and every object carries its
//! `apiVersion`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::core::DynamicResourceScope;
use serde::{Deserialize, Serialize};

use super::experiment::{ExperimentSpec, ExperimentStatus};
use super::trial::{TrialSpec, TrialStatus};

/// The version both groups serve.
pub const VERSION: &str = "v1beta1";

/// Which group the Experiment and Trial resources belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ApiGroup {
    /// `ktune.dev`: ktune's own group.
    #[default]
    Ktune,
    /// `kubeflow.org`: Katib's group, for a drop-in replacement of Katib.
    Kubeflow,
}

impl ApiGroup {
    /// Both groups.
    pub const ALL: [Self; 2] = [Self::Ktune, Self::Kubeflow];

    /// The group's name (`ktune.dev`, `kubeflow.org`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ktune => "ktune.dev",
            Self::Kubeflow => "kubeflow.org",
        }
    }

    /// `group/v1beta1`.
    #[must_use]
    pub const fn api_version(self) -> &'static str {
        match self {
            Self::Ktune => "ktune.dev/v1beta1",
            Self::Kubeflow => "kubeflow.org/v1beta1",
        }
    }

    /// The group whose `group/v1beta1` this is.
    #[must_use]
    pub fn from_api_version(api_version: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|g| g.api_version() == api_version)
    }

    /// Whether this is Katib's group, whose objects must look as Katib's
    /// controller writes them (defaults stored in the spec, …).
    #[must_use]
    pub const fn is_katib(self) -> bool {
        matches!(self, Self::Kubeflow)
    }
}

impl fmt::Display for ApiGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A group name that is neither of the two.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown API group {0:?}: ktune serves ktune.dev or kubeflow.org")]
pub struct UnknownGroup(String);

impl FromStr for ApiGroup {
    type Err = UnknownGroup;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|g| g.name() == s)
            .ok_or_else(|| UnknownGroup(s.to_owned()))
    }
}

/// Declares a namespaced v1beta1 resource of either group: the object
/// (`apiVersion`, `kind`, metadata, spec, status) and its [`Resource`]
/// impl with the group as its dynamic type.
macro_rules! grouped_resource {
    ($(#[$doc:meta])* $name:ident, $spec:ty, $status:ty, $plural:literal) => {
        $(#[$doc])*
        #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// `ktune.dev/v1beta1` or `kubeflow.org/v1beta1` (empty in an
            /// object built here before it is given a group).
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub api_version: String,
            /// The kind, as sent.
            #[serde(default, skip_serializing_if = "String::is_empty")]
            pub kind: String,
            /// The object's metadata.
            #[serde(default)]
            pub metadata: ObjectMeta,
            /// What the user asked for.
            #[serde(default)]
            pub spec: $spec,
            /// What the controller observed.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub status: Option<$status>,
        }

        impl $name {
            /// A new object of `group` named `name`.
            #[must_use]
            pub fn new(group: ApiGroup, name: &str, spec: $spec) -> Self {
                Self {
                    api_version: group.api_version().to_owned(),
                    kind: stringify!($name).to_owned(),
                    metadata: ObjectMeta {
                        name: Some(name.to_owned()),
                        ..ObjectMeta::default()
                    },
                    spec,
                    status: None,
                }
            }

            /// The group its `apiVersion` names (`None` when it names
            /// neither, or nothing).
            #[must_use]
            pub fn group(&self) -> Option<ApiGroup> {
                ApiGroup::from_api_version(&self.api_version)
            }
        }

        impl Resource for $name {
            type DynamicType = ApiGroup;
            // Namespaced; `Api::namespaced_with` takes the group.
            type Scope = DynamicResourceScope;

            fn kind(_: &ApiGroup) -> Cow<'_, str> {
                Cow::Borrowed(stringify!($name))
            }

            fn group(group: &ApiGroup) -> Cow<'_, str> {
                Cow::Borrowed(group.name())
            }

            fn version(_: &ApiGroup) -> Cow<'_, str> {
                Cow::Borrowed(VERSION)
            }

            fn api_version(group: &ApiGroup) -> Cow<'_, str> {
                Cow::Borrowed(group.api_version())
            }

            fn plural(_: &ApiGroup) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }

            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

grouped_resource!(
    /// An Experiment: what to tune, how to search, and how to run one
    /// trial (Katib v1beta1's fields; see [`ExperimentSpec`]).
    Experiment,
    ExperimentSpec,
    ExperimentStatus,
    "experiments"
);

grouped_resource!(
    /// A Trial: one configuration of an Experiment, run as one workload
    /// (Katib v1beta1's fields; see [`TrialSpec`]).
    Trial,
    TrialSpec,
    TrialStatus,
    "trials"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_parse_print_and_name_their_api_version() {
        for group in ApiGroup::ALL {
            assert_eq!(group.name().parse::<ApiGroup>(), Ok(group));
            assert_eq!(ApiGroup::from_api_version(group.api_version()), Some(group));
            assert_eq!(Experiment::api_version(&group), group.api_version());
            assert_eq!(
                Trial::url_path(&group, Some("ns")),
                format!("/apis/{}/namespaces/ns/trials", group.api_version())
            );
        }
        let err = "katib.io".parse::<ApiGroup>().unwrap_err();
        assert!(err.to_string().contains("ktune.dev or kubeflow.org"));
        assert_eq!(ApiGroup::from_api_version("kubeflow.org/v1"), None);
    }

    #[test]
    fn a_new_object_names_its_group_and_kind_when_serialised() {
        let trial = Trial::new(ApiGroup::Kubeflow, "t", TrialSpec::default());
        let value = serde_json::to_value(&trial).unwrap();
        assert_eq!(value["apiVersion"], "kubeflow.org/v1beta1");
        assert_eq!(value["kind"], "Trial");
        assert_eq!(value["metadata"]["name"], "t");
        assert_eq!(trial.group(), Some(ApiGroup::Kubeflow));
        let back: Trial = serde_json::from_value(value).unwrap();
        assert_eq!(back, trial);
    }
}
