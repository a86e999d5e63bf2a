//! Metric collection. For now: Katib's metric filters (the regexes that find
//! `name=value` pairs in text), compiled with Go RE2's leniencies.

pub mod filter;
