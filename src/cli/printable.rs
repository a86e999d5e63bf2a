//! Text from an experiment file, a trial or a store reaches a terminal only
//! with its control characters escaped: a name such as `"\e]0;pwned\a"` or
//! a metric printed by a trial must not move the cursor, retitle the window
//! or hide what ktune prints after it. Newlines and tabs stay (they are how
//! ktune lays out its own output); every other control character is shown
//! as a Rust-style escape (`\u{1b}`).

use std::borrow::Cow;
use std::io::Write;

/// Whether `c` is kept as it is in printed text.
fn kept(c: char) -> bool {
    !c.is_control() || c == '\n' || c == '\t'
}

/// `text` with every control character but newline and tab escaped.
#[must_use]
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if text.chars().all(kept) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if kept(c) {
            out.push(c);
        } else {
            out.extend(c.escape_unicode());
        }
    }
    Cow::Owned(out)
}

/// A writer that escapes control characters (but newline and tab) on the
/// way through, for commands that print user-controlled text line by line.
/// C0 controls and DEL are single bytes in UTF-8, so a write split anywhere
/// is escaped the same; C1 controls (two bytes) are left to
/// [`escape_controls`], as terminals in UTF-8 mode do not act on them.
#[derive(Debug)]
pub struct Printable<W>(pub W);

impl<W: Write> Write for Printable<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut start = 0;
        for (i, &b) in buf.iter().enumerate() {
            let control = (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f;
            if control {
                self.0.write_all(&buf[start..i])?;
                write!(self.0, "\\u{{{b:x}}}")?;
                start = i + 1;
            }
        }
        self.0.write_all(&buf[start..])?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_layout_kept() {
        assert_eq!(escape_controls("plain\tname\n"), "plain\tname\n");
        assert_eq!(
            escape_controls("a\u{1b}]0;x\u{7}b\rc\u{9b}"),
            "a\\u{1b}]0;x\\u{7}b\\u{d}c\\u{9b}"
        );
    }

    #[test]
    fn the_writer_escapes_what_passes_through() {
        let mut out = Printable(Vec::new());
        writeln!(out, "name \u{1b}[2J\u{7f} ok").unwrap();
        assert_eq!(
            String::from_utf8(out.0).unwrap(),
            "name \\u{1b}[2J\\u{7f} ok\n"
        );
    }
}
