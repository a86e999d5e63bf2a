//! Requests on a resource: its collection (list, watch, create, delete
//! many) and its objects (get, replace, patch, delete), as JSON or as
//! kubectl's Table; a pod's `log` subresource goes to [`super::logs`].

use super::{App, Query, delete_opts, json_response, list_opts, ok, truthy};
use crate::patch::{self, PatchType};
use crate::resource::ResourceType;
use crate::status::ApiError;
use crate::store::{Sub, ns_name};
use crate::table;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Value, json};

/// One request on a resource path.
pub(super) struct Call<'a> {
    pub(super) app: &'a App,
    pub(super) method: &'a Method,
    pub(super) uri: &'a Uri,
    pub(super) headers: &'a HeaderMap,
    pub(super) body: Bytes,
    pub(super) q: &'a Query,
}

impl Call<'_> {
    fn no_route(&self) -> ApiError {
        ApiError::no_route(self.uri.path())
    }

    fn method_not_allowed(&self, on: &str) -> ApiError {
        ApiError::method_not_allowed(format!("{} is not allowed on {on}", self.method))
    }
}

/// The resource a request is on, and how it wants the answer.
struct On<'a> {
    rt: ResourceType,
    ns: Option<&'a str>,
    /// kubectl asked for a Table.
    as_table: bool,
    /// `dryRun=All`: check, do not write.
    dry_run: bool,
}

/// Routes `rest` (after `/api/v1` or `/apis/<group>/<version>`): an
/// optional `namespaces/<ns>`, the plural, a name, a subresource.
pub(super) async fn resource(
    call: Call<'_>,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    let store = &call.app.store;
    let (ns, rest) = match rest {
        ["namespaces", ns, plural, ..] if store.find_type(group, version, plural).is_some() => {
            (Some(*ns), &rest[2..])
        }
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, s] => (*p, Some(*n), Some(*s)),
        _ => return Err(call.no_route()),
    };
    let rt = store
        .find_type(group, version, plural)
        .ok_or_else(|| call.no_route())?;
    let unscoped = rt.namespaced && ns.is_none() && (name.is_some() || *call.method != Method::GET);
    if (ns.is_some() && !rt.namespaced) || unscoped {
        return Err(call.no_route());
    }
    let sub = match sub {
        None => Sub::Main,
        Some("status") if rt.status_subresource => Sub::Status,
        Some("log")
            if rt.group.is_empty() && rt.plural == "pods" && *call.method == Method::GET =>
        {
            let (ns, name) = (ns.unwrap_or_default(), name.unwrap_or_default());
            return super::logs::pod_log(call.app, &rt, ns, name, call.q).await;
        }
        Some(_) => return Err(call.no_route()),
    };
    let on = On {
        as_table: call
            .headers
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("as=Table")),
        dry_run: call.q.get("dryRun").is_some_and(|d| d == "All"),
        rt,
        ns,
    };
    match name {
        None => collection(&call, &on),
        Some(name) => object(&call, &on, name, sub),
    }
}

/// A list, as JSON or as a Table.
fn list_response(on: &On<'_>, list: &Value) -> Result<Response, ApiError> {
    if !on.as_table {
        return ok(list);
    }
    let items = list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let meta = list.get("metadata").cloned().unwrap_or(json!({}));
    ok(&table::table(&on.rt, &items, meta, true))
}

/// The collection: list, watch, create, delete what a selector matches.
fn collection(call: &Call<'_>, on: &On<'_>) -> Result<Response, ApiError> {
    let store = &call.app.store;
    match *call.method {
        Method::GET if truthy(call.q, "watch") => {
            super::watch::watch(call.app, &on.rt, on.ns, call.q, on.as_table)
        }
        Method::GET => list_response(on, &store.list(&on.rt, on.ns, &list_opts(call.q)?)?),
        Method::POST => {
            let obj = patch::parse_body(&call.body)?;
            let created = store.create(&on.rt, on.ns, obj, on.dry_run)?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        Method::DELETE => delete_collection(call, on),
        _ => Err(call.method_not_allowed("a collection")),
    }
}

/// Deletes every object the request's selectors match.
fn delete_collection(call: &Call<'_>, on: &On<'_>) -> Result<Response, ApiError> {
    let store = &call.app.store;
    let opts = delete_opts(call.q, &call.body)?;
    let list = store.list(&on.rt, on.ns, &list_opts(call.q)?)?;
    let mut deleted = Vec::new();
    for item in list
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (ins, iname) = ns_name(item);
        let ins = on.rt.namespaced.then_some(ins.as_str());
        match store.delete(&on.rt, ins, &iname, &opts, on.dry_run) {
            Ok(o) => deleted.push(o),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let rv = store.resource_version().to_string();
    ok(&json!({
        "apiVersion": on.rt.api_version(),
        "kind": format!("{}List", on.rt.kind),
        "metadata": {"resourceVersion": rv},
        "items": deleted,
    }))
}

/// One object: get, replace, patch, delete.
fn object(call: &Call<'_>, on: &On<'_>, name: &str, sub: Sub) -> Result<Response, ApiError> {
    let store = &call.app.store;
    let (rt, ns) = (&on.rt, on.ns);
    match *call.method {
        Method::GET => {
            let obj = store.get(rt, ns, name)?;
            if !on.as_table {
                return ok(&obj);
            }
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(json!(""));
            ok(&table::table(
                rt,
                &[obj],
                json!({"resourceVersion": rv}),
                true,
            ))
        }
        Method::PUT => {
            let obj = patch::parse_body(&call.body)?;
            ok(&store.update(rt, ns, name, obj, sub, on.dry_run)?)
        }
        Method::PATCH => {
            let ct = call
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|c| c.to_str().ok())
                .unwrap_or_default();
            let pt = PatchType::from_content_type(ct)?;
            let (obj, created) = store.patch(rt, ns, name, pt, &call.body, sub, on.dry_run)?;
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &obj))
        }
        Method::DELETE if sub == Sub::Main => {
            let opts = delete_opts(call.q, &call.body)?;
            ok(&store.delete(rt, ns, name, &opts, on.dry_run)?)
        }
        _ => Err(call.method_not_allowed(call.uri.path())),
    }
}
