//! Input quoted back in an answer (an error's message or `field`): escaped,
//! and cut at [`MAX_ECHO_CHARS`] so that a 900 KB code never becomes a 900 KB
//! error.

/// Most characters of a client's input an answer quotes back.
pub const MAX_ECHO_CHARS: usize = 64;

/// `text` escaped (control characters as `\n`, `\u{..}`) and, past
/// [`MAX_ECHO_CHARS`], cut with the length it had.
pub fn echo(text: &str) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for c in text.chars() {
        for e in c.escape_debug() {
            if shown == MAX_ECHO_CHARS {
                out.push_str(&format!("... ({} characters in all)", text.chars().count()));
                return out;
            }
            out.push(e);
            shown += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_quoted_whole_and_long_input_is_cut_with_its_length() {
        assert_eq!(echo("D110105000001"), "D110105000001");
        assert_eq!(echo("a\nb"), "a\\nb");
        let long = "x".repeat(900_000);
        let shown = echo(&long);
        assert_eq!(shown, format!("{}... (900000 characters in all)", "x".repeat(MAX_ECHO_CHARS)));
        let exact = "y".repeat(MAX_ECHO_CHARS);
        assert_eq!(echo(&exact), exact, "exactly the limit is not cut");
    }
}
