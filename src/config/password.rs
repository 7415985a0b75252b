//! Console passwords: kept in the configuration only as Argon2 hashes.

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

/// Fewer characters than this make a password `hash-password` refuses.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// An Argon2 password hash in PHC form (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`),
/// checked when the configuration is read so a typo is named by file and line.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHashText(String);

impl PasswordHashText {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PasswordHashText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHashText(..)")
    }
}

impl std::str::FromStr for PasswordHashText {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parsed = argon2::PasswordHash::new(s).map_err(|e| {
            format!(
                "not a password hash in PHC form ({e}): `callgate admin hash-password` makes one"
            )
        })?;
        if !parsed.algorithm.as_str().starts_with("argon2") {
            return Err(format!(
                "an {} hash: callgate checks Argon2 hashes (`callgate admin hash-password`)",
                parsed.algorithm
            ));
        }
        Ok(PasswordHashText(s.to_string()))
    }
}

impl<'de> Deserialize<'de> for PasswordHashText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for PasswordHashText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl PasswordHashText {
    /// The hash of `password`, with a fresh random salt (Argon2id, the crate's default cost).
    pub fn of(password: &str) -> Result<PasswordHashText, String> {
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(format!(
                "a password needs at least {MIN_PASSWORD_CHARS} characters"
            ));
        }
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| format!("no random salt: {e}"))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        let hash = argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| e.to_string())?;
        Ok(PasswordHashText(hash.to_string()))
    }

    /// Whether `password` is the one hashed (slow on purpose: tens of milliseconds).
    pub fn matches(&self, password: &str) -> bool {
        argon2::PasswordHash::new(&self.0).is_ok_and(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_matches_its_password_and_no_other() {
        let h = PasswordHashText::of("correct horse battery").unwrap();
        assert!(h.matches("correct horse battery"));
        assert!(!h.matches("correct horse batterY"));
        assert_eq!(h.as_str().parse::<PasswordHashText>().unwrap(), h);
    }

    #[test]
    fn a_short_password_is_refused() {
        assert!(PasswordHashText::of("short")
            .unwrap_err()
            .contains("12 characters"));
    }

    #[test]
    fn a_hash_of_another_kind_is_named() {
        let e = "$5$rounds=5000$salt$hash"
            .parse::<PasswordHashText>()
            .unwrap_err();
        assert!(e.contains("hash-password"), "{e}");
    }
}
