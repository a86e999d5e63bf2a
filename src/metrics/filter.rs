//! Katib's metric filters: regexes whose first capture group is a metric
//! name and second its value.
//!
//! Katib compiles them with Go's RE2, which reads a `{` that does not start
//! a repetition (`{2}`, `{2,}`, `{2,5}`) as a literal brace; Rust's `regex`
//! refuses it. Katib's own example filter
//! `{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}` relies on
//! this, so we escape such braces before compiling.

use regex::Regex;

/// Katib's default filter, used when `filter.metricsFormat` is empty.
pub const DEFAULT_FILTER: &str = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)";

/// Why a filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Not a regex.
    #[error("not a valid regex: {0}")]
    Syntax(String),
    /// Fewer than two capture groups.
    #[error("needs two capture groups: the metric name, then its value")]
    TooFewGroups,
}

/// Compiles a filter as Katib (Go RE2) reads it.
///
/// # Errors
/// [`FilterError`] when the pattern is not a regex or has fewer than two groups.
pub fn compile_filter(pattern: &str) -> Result<Regex, FilterError> {
    let regex =
        Regex::new(&go_compatible(pattern)).map_err(|e| FilterError::Syntax(e.to_string()))?;
    if regex.captures_len() < 3 {
        return Err(FilterError::TooFewGroups);
    }
    Ok(regex)
}

/// Escapes the braces that RE2 would read as literals.
fn go_compatible(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut in_class = false;
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            '\\' => {
                out.push(c);
                if let Some(&next) = chars.get(i + 1) {
                    out.push(next);
                    i += 1;
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A `]` right after `[` or `[^` is a literal member.
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i + 1) == Some(&']') {
                    out.push(']');
                    i += 1;
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '{' if !in_class => match repetition_len(&chars[i..]) {
                Some(len) => {
                    out.extend(&chars[i..i + len]);
                    i += len - 1;
                }
                None => out.push_str("\\{"),
            },
            '}' if !in_class => out.push_str("\\}"),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// The length of `{n}`, `{n,}` or `{n,m}` at the start of `s`, if it is one.
fn repetition_len(s: &[char]) -> Option<usize> {
    let mut i = 1;
    let digits = |from: usize| {
        s.iter()
            .skip(from)
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let n = digits(i);
    if n == 0 {
        return None;
    }
    i += n;
    if s.get(i) == Some(&',') {
        i += 1;
        i += digits(i);
    }
    (s.get(i) == Some(&'}')).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn katibs_brace_example_compiles_and_matches() {
        let re =
            compile_filter(r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}").unwrap();
        let caps = re
            .captures("{metricName: accuracy, metricValue: 0.9}")
            .unwrap();
        assert_eq!(&caps[1], "accuracy");
        assert_eq!(&caps[2], "0.9");
    }

    #[test]
    fn real_repetitions_and_classes_are_kept() {
        assert_eq!(
            go_compatible(r"a{2}b{1,}c{1,3}[{}]\{"),
            r"a{2}b{1,}c{1,3}[{}]\{"
        );
        assert_eq!(go_compatible("x{a}"), r"x\{a\}");
        assert!(compile_filter(DEFAULT_FILTER).is_ok());
        assert_eq!(
            compile_filter("(a)b").unwrap_err(),
            FilterError::TooFewGroups
        );
        assert!(matches!(
            compile_filter("(a)(b"),
            Err(FilterError::Syntax(_))
        ));
    }
}
