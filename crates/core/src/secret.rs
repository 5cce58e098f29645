//! Secret values (tokens, passwords, docker `auth` strings) that never print and are wiped on drop.
//!
//! `Debug` and `Display` show `[redacted]`; the only way to the value is [`SecretString::expose`],
//! so every place that reveals a secret is greppable. Serialization is deliberately not
//! implemented: code that writes a secret into a document must call `expose` and say so.

use std::fmt;

use zeroize::Zeroizing;

/// A string whose value never appears in `Debug`/`Display` output and is zeroized on drop.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a value. The `String` is moved, not copied, so no unzeroized copy is left behind.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The secret value. Call only where the value must leave the process (a request, a file).
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length of the value in bytes (safe to log: it reveals no content).
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self::new(value.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = SecretString::from("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "SecretString([redacted])");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{s:#?}"), "SecretString([redacted])");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            password: SecretString,
        }
        let h = Holder { password: s.clone() };
        assert!(!format!("{h:?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2-very-secret");
        assert_eq!(s.len(), 19);
    }
}
