//! Console passwords: kept in the configuration only as Argon2 hashes.

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

/// Fewer characters than this make a password `hash-password` refuses.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// The most a configured hash may cost to check: memory (KiB), passes and lanes.
const MAX_MEMORY_KIB: u32 = 256 * 1024;
const MAX_PASSES: u32 = 16;
const MAX_LANES: u32 = 4;

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
        if argon2::Algorithm::try_from(parsed.algorithm).is_err() {
            return Err(format!(
                "an {} hash: callgate checks Argon2 hashes (`callgate admin hash-password`)",
                parsed.algorithm
            ));
        }
        if parsed.salt.is_none() || parsed.hash.is_none() {
            return Err("a hash without its salt or output: `callgate admin hash-password` makes a whole one".into());
        }
        let params = argon2::Params::try_from(&parsed).map_err(|e| format!("its cost: {e}"))?;
        // A sign-in checks the hash at the cost it names: a huge one would let a stranger
        // hold the machine's memory and cores by trying to sign in.
        let (m, t, p) = (params.m_cost(), params.t_cost(), params.p_cost());
        if m > MAX_MEMORY_KIB || t > MAX_PASSES || p > MAX_LANES {
            return Err(format!(
                "its cost (m={m}, t={t}, p={p}) is past what a sign-in may take \
                 (m={MAX_MEMORY_KIB} KiB, t={MAX_PASSES}, p={MAX_LANES} at most)"
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

    /// A hash of a random password at the same cost as this one: checking a password
    /// against it takes as long as against this one (a name that is no user's is answered in
    /// the same time as a wrong password).
    pub fn decoy_like(&self) -> PasswordHashText {
        let mut secret = [0u8; 24];
        let _ = getrandom::fill(&mut secret);
        let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let same_cost = argon2::PasswordHash::new(&self.0).ok().and_then(|h| {
            let algorithm = argon2::Algorithm::try_from(h.algorithm).ok()?;
            let version = h.version.and_then(|v| argon2::Version::try_from(v).ok())?;
            let params = argon2::Params::try_from(&h).ok()?;
            let mut salt = [0u8; 16];
            getrandom::fill(&mut salt).ok()?;
            let salt = SaltString::encode_b64(&salt).ok()?;
            let hash = argon2::Argon2::new(algorithm, version, params)
                .hash_password(secret.as_bytes(), &salt)
                .ok()?;
            Some(PasswordHashText(hash.to_string()))
        });
        same_cost.unwrap_or_else(|| PasswordHashText::of(&secret).expect("a long password"))
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
    fn a_decoy_costs_what_the_hash_it_copies_costs() {
        let cheap = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$Ny1Zk1KQyQ3fQmGfCm6H2w";
        let h: PasswordHashText = cheap.parse().unwrap();
        let decoy = h.decoy_like();
        assert!(
            decoy.as_str().starts_with("$argon2id$v=19$m=8,t=1,p=1$"),
            "{}",
            decoy.as_str()
        );
        assert!(!decoy.matches(""));
    }

    #[test]
    fn a_hash_too_costly_to_check_or_without_its_salt_is_refused() {
        let costly = "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$Ny1Zk1KQyQ3fQmGfCm6H2w";
        assert!(costly
            .parse::<PasswordHashText>()
            .unwrap_err()
            .contains("cost"));
        let bare = "$argon2id$v=19$m=8,t=1,p=1";
        assert!(bare
            .parse::<PasswordHashText>()
            .unwrap_err()
            .contains("salt"));
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
