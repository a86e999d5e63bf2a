//! Experiment addresses. `ktune run` stores an experiment under its name,
//! served at `/experiments/NAME`; the controller stores one under
//! `namespace/name/uid`, served at `/experiments/NAMESPACE/NAME` — the
//! newest of that namespace and name. An older one (deleted and created
//! again) is picked with `?uid=`, and its own links keep its whole key
//! (`/experiments/NAMESPACE%2FNAME%2FUID`, which always works), so they
//! never lead to its newer namesake.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::data::url_encode;

tokio::task_local! {
    /// The controller keys a newer experiment of the same namespace and
    /// name supersedes, while a request is served (links are built deep
    /// in the page code, which has no store).
    static SUPERSEDED: BTreeSet<String>;
}

/// A controller key's namespace, name and uid (`None` for a `ktune run` name).
#[must_use]
pub fn controller_key(key: &str) -> Option<(&str, &str, &str)> {
    let mut parts = key.split('/');
    let (ns, name, uid) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && ![ns, name, uid].contains(&"")).then_some((ns, name, uid))
}

/// Whether a newer experiment of `key`'s namespace and name supersedes it
/// (in the request being served).
fn is_superseded(key: &str) -> bool {
    SUPERSEDED.try_with(|s| s.contains(key)).unwrap_or(false)
}

/// An experiment's part of its URLs, after `/experiments/`.
#[must_use]
pub fn experiment_path(key: &str) -> String {
    match controller_key(key) {
        Some((ns, name, _)) if !is_superseded(key) => {
            format!("{}/{}", url_encode(ns), url_encode(name))
        }
        _ => url_encode(key),
    }
}

/// How the experiments list names an experiment and the address it links
/// to (after `/experiments/`): a superseded one by its uid, `?uid=`.
#[must_use]
pub fn listed(key: &str) -> (String, String) {
    match controller_key(key) {
        Some((ns, name, uid)) if is_superseded(key) => (
            format!("{ns}/{name} (earlier, uid {uid})"),
            format!(
                "{}/{}?uid={}",
                url_encode(ns),
                url_encode(name),
                url_encode(uid)
            ),
        ),
        Some((ns, name, _)) => (
            format!("{ns}/{name}"),
            format!("{}/{}", url_encode(ns), url_encode(name)),
        ),
        None => (key.to_owned(), url_encode(key)),
    }
}

/// Runs `serve` with the superseded keys known to the link builders.
pub async fn scope<F: Future>(superseded: BTreeSet<String>, serve: F) -> F::Output {
    SUPERSEDED.scope(superseded, serve).await
}

/// The newest controller key of each namespace and name, given every
/// stored key with its creation time.
fn newest<'a>(keys: &'a [(String, i64)], ns: &str, name: &str) -> Option<&'a str> {
    keys.iter()
        .filter(|(k, _)| controller_key(k).is_some_and(|(n, m, _)| n == ns && m == name))
        .max_by_key(|(k, at)| (*at, k.as_str()))
        .map(|(k, _)| k.as_str())
}

/// The controller keys that a newer one of the same namespace and name
/// supersedes (one pass: the newest of each pair is kept aside).
#[must_use]
pub fn superseded(keys: &[(String, i64)]) -> BTreeSet<String> {
    let mut newest: HashMap<(&str, &str), (i64, &str)> = HashMap::new();
    for (key, at) in keys {
        if let Some((ns, name, _)) = controller_key(key) {
            let best = newest.entry((ns, name)).or_insert((*at, key.as_str()));
            *best = (*best).max((*at, key.as_str()));
        }
    }
    let newest: HashSet<&str> = newest.into_values().map(|(_, k)| k).collect();
    keys.iter()
        .filter(|(k, _)| controller_key(k).is_some() && !newest.contains(k.as_str()))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Where a request for `{base}/experiments/REST?QUERY` is served when
/// REST starts with `NAMESPACE/NAME` of stored controller keys: the path
/// after `/experiments/` with the key in one segment, and the query
/// without `uid`. `None` leaves the request as it is (a `ktune run` name
/// wins: it is a stored key itself).
#[must_use]
pub fn resolve(rest: &str, query: Option<&str>, keys: &[(String, i64)]) -> Option<String> {
    let mut segments = rest.split('/');
    let ns = decode(segments.next()?)?;
    let name = decode(segments.next()?)?;
    if ns.contains('/') || keys.iter().any(|(k, _)| *k == ns) {
        return None;
    }
    let uid = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("uid="))
        .and_then(decode);
    let key = match uid {
        Some(uid) => format!("{ns}/{name}/{uid}"),
        None => newest(keys, &ns, &name)?.to_owned(),
    };
    let mut path = url_encode(&key);
    for segment in segments {
        path.push('/');
        path.push_str(segment);
    }
    let kept: Vec<&str> = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|pair| !pair.starts_with("uid=") && !pair.is_empty())
        .collect();
    if !kept.is_empty() {
        path.push('?');
        path.push_str(&kept.join("&"));
    }
    Some(path)
}

/// Percent-decodes one path segment or query value (`None` when it is not UTF-8).
fn decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<(String, i64)> {
        vec![
            ("default/wine/u1".to_owned(), 1),
            ("default/wine/u2".to_owned(), 2),
            ("team/other/u3".to_owned(), 3),
            ("local".to_owned(), 4),
        ]
    }

    #[test]
    fn namespace_and_name_serve_the_newest_and_uid_an_older_one() {
        let keys = keys();
        assert_eq!(
            resolve("default/wine", None, &keys).as_deref(),
            Some("default%2Fwine%2Fu2")
        );
        assert_eq!(
            resolve(
                "default/wine/trials/wine-0001",
                Some("uid=u1&page=2"),
                &keys
            )
            .as_deref(),
            Some("default%2Fwine%2Fu1/trials/wine-0001?page=2")
        );
        assert_eq!(resolve("local/trials", None, &keys), None);
        assert_eq!(resolve("default%2Fwine%2Fu1", None, &keys), None);
        assert_eq!(resolve("default/missing", None, &keys), None);
    }

    #[tokio::test]
    async fn links_name_namespace_and_name_except_for_a_superseded_experiment() {
        let superseded = superseded(&keys());
        assert_eq!(superseded.iter().collect::<Vec<_>>(), ["default/wine/u1"]);
        scope(superseded, async {
            assert_eq!(experiment_path("default/wine/u2"), "default/wine");
            assert_eq!(experiment_path("default/wine/u1"), "default%2Fwine%2Fu1");
            assert_eq!(experiment_path("local"), "local");
            assert_eq!(
                listed("default/wine/u1"),
                (
                    "default/wine (earlier, uid u1)".to_owned(),
                    "default/wine?uid=u1".to_owned()
                )
            );
            assert_eq!(listed("default/wine/u2").0, "default/wine");
        })
        .await;
    }
}
