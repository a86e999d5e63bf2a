//! The dashboard's own stylesheet and script, embedded in the binary so
//! `ktune ui` works offline (no CDN, no npm).

/// The stylesheet.
pub const STYLE_CSS: &str = include_str!("assets/style.css");
/// The script: live refresh from server-sent events, and hover text.
pub const APP_JS: &str = include_str!("assets/app.js");
