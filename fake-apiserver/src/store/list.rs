//! Lists: label and field selectors, and paging with `limit` and an
//! opaque `continue` token (the last key returned, hex-encoded).

use super::Store;
use super::meta::with_type;
use crate::resource::ResourceType;
use crate::select::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use serde_json::{Value, json};

/// List options.
#[derive(Debug, Default, Clone)]
pub struct ListOpts {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (0 = all).
    pub limit: usize,
    /// `continue`.
    pub continue_token: Option<String>,
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The (namespace, name) a `continue` token resumes after.
fn resume_after(token: Option<&str>) -> Result<Option<(String, String)>, ApiError> {
    let Some(token) = token else {
        return Ok(None);
    };
    let invalid = || ApiError::bad_request("invalid continue token");
    let key = unhex(token).ok_or_else(invalid)?;
    let (ns, name) = key.split_once('\u{0}').ok_or_else(invalid)?;
    Ok(Some((ns.to_string(), name.to_string())))
}

impl Store {
    /// Lists objects (all namespaces when `ns` is None).
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        opts: &ListOpts,
    ) -> Result<Value, ApiError> {
        let st = self.lock();
        let start = resume_after(opts.continue_token.as_deref())?;
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0usize;
        if let Some(objs) = st.objects.get(&rt.key()) {
            for ((ons, oname), obj) in objs {
                if ns.is_some_and(|n| n != ons)
                    || start
                        .as_ref()
                        .is_some_and(|(sn, sname)| (ons, oname) <= (sn, sname))
                    || !opts.labels.matches(obj)
                    || !opts.fields.matches(obj)
                {
                    continue;
                }
                if opts.limit > 0 && items.len() >= opts.limit {
                    remaining += 1;
                    continue;
                }
                if opts.limit > 0 && items.len() + 1 == opts.limit {
                    next = Some(hex(&format!("{ons}\u{0}{oname}")));
                }
                items.push(with_type(obj.clone(), rt));
            }
        }
        let mut meta = json!({"resourceVersion": st.rv.to_string()});
        if remaining > 0
            && let Some(n) = next
        {
            meta["continue"] = json!(n);
            meta["remainingItemCount"] = json!(remaining);
        }
        Ok(json!({
            "apiVersion": rt.api_version(),
            "kind": format!("{}List", rt.kind),
            "metadata": meta,
            "items": items,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::cm_type;
    use super::*;

    #[test]
    fn continue_token_round_trips() {
        assert_eq!(unhex(&hex("ns\u{0}name")).as_deref(), Some("ns\u{0}name"));
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn list_pages_with_limit_and_continue() {
        let s = Store::new(100);
        let rt = cm_type();
        for i in 0..5 {
            s.create(
                &rt,
                Some("default"),
                json!({"metadata": {"name": format!("c{i}")}}),
                false,
            )
            .unwrap();
        }
        let mut opts = ListOpts {
            limit: 2,
            ..Default::default()
        };
        let mut names = Vec::new();
        loop {
            let l = s.list(&rt, Some("default"), &opts).unwrap();
            for i in l["items"].as_array().unwrap() {
                names.push(i["metadata"]["name"].as_str().unwrap().to_string());
            }
            match l["metadata"]["continue"].as_str() {
                Some(c) => opts.continue_token = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(names, ["c0", "c1", "c2", "c3", "c4"]);
    }
}
