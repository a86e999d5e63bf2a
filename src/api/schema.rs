//! Schema overrides for fields whose content is any Kubernetes object.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose fields the API server must keep as they are (a trial's
/// workload, a collector container): embedding every workload kind's schema
/// would make the CRD huge and tie it to one Kubernetes version.
#[must_use]
pub fn preserve_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}
