//! The dashboard's own stylesheet and script, embedded in the binary so
//! `ktune ui` works offline (no CDN, no npm).

/// The stylesheet.
pub const STYLE_CSS: &str = include_str!("assets/style.css");
/// The script: live refresh from server-sent events, and hover text.
pub const APP_JS: &str = include_str!("assets/app.js");

/// The tab icon (pages link it, so browsers do not ask for a missing
/// `/favicon.ico`).
pub const FAVICON_SVG: &str = include_str!("assets/favicon.svg");
