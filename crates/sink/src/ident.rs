//! SQL identifiers (table and column names) from flags and mapping files: validated against
//! `^[A-Za-z_][A-Za-z0-9_]{0,62}$`, then quoted for the backend. Values never go through here;
//! they are always bound as parameters.

use std::fmt;

/// Why a name cannot be used as a table or column name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} name `{name}` is not allowed: use 1 to 63 ASCII letters, digits or `_`, not starting with a digit"
)]
pub struct IdentError {
    /// What the name was for ("table", "column", ...).
    pub what: &'static str,
    /// The rejected name.
    pub name: String,
}

/// A validated SQL identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident(String);

impl Ident {
    /// Validates `name`; `what` names its role in the error ("table", "column").
    pub fn new(name: &str, what: &'static str) -> Result<Ident, IdentError> {
        let mut chars = name.chars();
        let ok = match chars.next() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                name.len() <= 63 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            }
            _ => false,
        };
        if ok {
            Ok(Ident(name.to_owned()))
        } else {
            Err(IdentError {
                what,
                name: name.to_owned(),
            })
        }
    }

    /// A name written in this crate's source (a literal known to be valid).
    pub(crate) fn known(name: &'static str) -> Ident {
        debug_assert!(Ident::new(name, "column").is_ok(), "{name}");
        Ident(name.to_owned())
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Double-quoted (PostgreSQL, SQLite). Safe because the name holds no quote character.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }

    /// Back-quoted (MySQL, MariaDB).
    pub fn backquoted(&self) -> String {
        format!("`{}`", self.0)
    }

    /// Whether two names denote the same column on every backend (MySQL compares
    /// column names without regard to case).
    pub fn same_as(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_plain_names_and_rejects_the_rest() {
        for ok in ["readings", "_t", "data_hora", "T1", &"a".repeat(63)] {
            assert!(Ident::new(ok, "table").is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "a-b",
            "a b",
            "x\"y",
            "x`y",
            "t;drop",
            "é",
            &"a".repeat(64),
            "Robert'); DROP TABLE x;--",
        ] {
            let err = Ident::new(bad, "column").unwrap_err();
            assert!(err.to_string().starts_with("column name"), "{err}");
        }
    }

    proptest! {
        #[test]
        fn a_valid_name_never_contains_quotes_or_separators(s in "\\PC{0,80}") {
            if let Ok(id) = Ident::new(&s, "column") {
                prop_assert!(!id.quoted()[1..id.quoted().len() - 1].contains(['"', '`', ';', ' ', '\'']));
            }
        }
    }
}
