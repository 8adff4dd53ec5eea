//! What every agent's verbs share: their arguments as text, an exact
//! argument count, numbers (decimal or `0x` hex), and locking that survives
//! a verb that panicked while holding a lock (the agent keeps answering).

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking over the data if a panicking holder poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An argument as text (invalid UTF-8 replaced, never refused).
pub fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

/// Exactly `N` arguments, as text; else an error naming `verb`.
pub fn words<const N: usize>(verb: &str, args: &[Vec<u8>]) -> Result<[String; N], String> {
    let texts: Vec<String> = args.iter().map(|a| text(a)).collect();
    texts
        .try_into()
        .map_err(|got: Vec<String>| format!("{verb} takes {N} arguments, got {}", got.len()))
}

/// A number, decimal or `0x` hex.
pub fn parse_number(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("{text:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_counts_are_checked() {
        let two = [b"a".to_vec(), b"b".to_vec()];
        assert_eq!(
            words::<2>("x", &two),
            Ok(["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            words::<1>("x", &two),
            Err("x takes 1 arguments, got 2".to_string())
        );
    }

    #[test]
    fn numbers_are_decimal_or_hex() {
        assert_eq!(parse_number("42"), Ok(42));
        assert_eq!(parse_number("0x2a"), Ok(42));
        assert!(parse_number("-1").is_err());
        assert!(parse_number("0x").is_err());
        assert!(parse_number("99999999999999999999").is_err());
    }
}
