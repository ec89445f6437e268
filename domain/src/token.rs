//! API tokens: who may call the API and with which scopes. A token's secret
//! is shown once, when it is made; the store keeps only its SHA-256 digest.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::TokenId;
use crate::{DomainError, Timestamp};

/// What a token may do. Each scope includes the ones below it:
/// `admin` ⊇ `execute` ⊇ `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every `GET`.
    Read,
    /// Sessions and executions: create, close, run.
    Execute,
    /// Templates and what hangs off them, and tokens.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Execute, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Execute => "execute",
            Self::Admin => "admin",
        }
    }

    /// `read`, `execute` or `admin`; anything else is a `VALIDATION_ERROR`
    /// naming `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Self, DomainError> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == raw.trim()).ok_or_else(|| {
            DomainError::validation(field, format!("unknown scope {raw:?}; scopes are read, execute and admin"))
        })
    }

    /// Whether holding `self` allows what `required` guards.
    pub fn covers(self, required: Scope) -> bool {
        self >= required
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token's name: 1–64 characters of letters, digits, `.`, `_`, `-`, `@`, `:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenName(String);

impl TokenName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(DomainError::validation("name", "name is required"));
        }
        if name.chars().count() > Self::MAX_LEN {
            return Err(DomainError::validation("name", format!("name is longer than {} characters", Self::MAX_LEN)));
        }
        if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "._-@:".contains(*c))) {
            return Err(DomainError::validation(
                "name",
                format!("name may hold letters, digits and . _ - @ : only, not {bad:?}"),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// Wraps a name already stored by this type.
    pub fn from_stored(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Scopes as a token holds them: at least one, sorted, no duplicates.
pub fn normalise_scopes(scopes: impl IntoIterator<Item = Scope>) -> Result<Vec<Scope>, DomainError> {
    let mut scopes: Vec<Scope> = scopes.into_iter().collect();
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(DomainError::validation("scopes", "scopes must name at least one of read, execute, admin"));
    }
    Ok(scopes)
}

/// Whether a token can be used right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenStatus {
    Active,
    Expired,
    Revoked,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

/// What it takes to make a token, parsed. The token service sorts and
/// deduplicates the scopes (at least one is needed) and checks that
/// `expires_at` is in the future, by its clock.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSpec {
    pub name: TokenName,
    pub scopes: Vec<Scope>,
    /// `None`: the token never expires.
    pub expires_at: Option<Timestamp>,
}

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub id: TokenId,
    pub name: TokenName,
    pub scopes: Vec<Scope>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl Token {
    pub fn status(&self, now: Timestamp) -> TokenStatus {
        if self.revoked_at.is_some() {
            TokenStatus::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            TokenStatus::Expired
        } else {
            TokenStatus::Active
        }
    }

    /// Whether one of the token's scopes covers `required`.
    pub fn allows(&self, required: Scope) -> bool {
        self.scopes.iter().any(|scope| scope.covers(required))
    }
}

/// What prefixes every secret, so that secret scanners and people can tell
/// one at a glance.
pub const SECRET_PREFIX: &str = "vmsys_";

/// A token's secret: the prefix and 256 random bits in hex. It exists in
/// clear only in the response that creates it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// 32 bytes from the operating system's random source.
    pub fn generate() -> Result<Self, DomainError> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|err| DomainError::internal(format!("no random bytes: {err}")))?;
        Ok(Self(format!("{SECRET_PREFIX}{}", hex::encode(bytes))))
    }

    /// A secret someone supplies (a header, a file). Surrounding whitespace
    /// is dropped; an empty one is `None`.
    pub fn from_supplied(raw: &str) -> Option<Self> {
        let trimmed = raw.trim();
        (!trimmed.is_empty()).then(|| Self(trimmed.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the store keeps: the SHA-256 digest of the secret, in hex.
    /// Secrets are 256 random bits, so a fast digest is as good as a slow
    /// password hash here.
    pub fn digest(&self) -> SecretDigest {
        SecretDigest(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(…)")
    }
}

/// The hex SHA-256 digest of a secret: what the store looks tokens up by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretDigest(String);

impl SecretDigest {
    pub fn from_stored(hex: impl Into<String>) -> Self {
        Self(hex.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who is calling: a token, or everyone when authentication is off.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The token's name, or `auth-off`.
    pub name: String,
    pub token_id: Option<TokenId>,
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// The caller of a daemon that runs with `--auth=off`: may do anything.
    pub fn unauthenticated_admin() -> Self {
        Self { name: "auth-off".into(), token_id: None, scopes: vec![Scope::Admin] }
    }

    pub fn of(token: &Token) -> Self {
        Self { name: token.name.to_string(), token_id: Some(token.id), scopes: token.scopes.clone() }
    }

    /// `FORBIDDEN` unless one of the caller's scopes covers `required`.
    pub fn require(&self, required: Scope) -> Result<(), DomainError> {
        if self.scopes.iter().any(|scope| scope.covers(required)) {
            return Ok(());
        }
        Err(DomainError::Forbidden {
            message: format!(
                "token {:?} lacks the {required} scope (it has {})",
                self.name,
                self.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
            required_scope: Some(required.as_str().to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_include_the_ones_below() {
        assert!(Scope::Admin.covers(Scope::Execute));
        assert!(Scope::Admin.covers(Scope::Read));
        assert!(Scope::Execute.covers(Scope::Read));
        assert!(!Scope::Execute.covers(Scope::Admin));
        assert!(!Scope::Read.covers(Scope::Execute));
    }

    #[test]
    fn scopes_are_normalised_and_checked() {
        let scopes = normalise_scopes([Scope::Execute, Scope::Read, Scope::Execute]).unwrap();
        assert_eq!(scopes, vec![Scope::Read, Scope::Execute]);
        assert_eq!(normalise_scopes([]).unwrap_err().code(), "VALIDATION_ERROR");
        assert_eq!(Scope::parse(" execute ", "scopes").unwrap(), Scope::Execute);
        assert_eq!(Scope::parse("root", "scopes").unwrap_err().code(), "VALIDATION_ERROR");
    }

    #[test]
    fn secrets_are_random_prefixed_and_digested() {
        let a = TokenSecret::generate().unwrap();
        let b = TokenSecret::generate().unwrap();
        assert_ne!(a, b);
        assert!(a.expose().starts_with(SECRET_PREFIX));
        assert_eq!(a.expose().len(), SECRET_PREFIX.len() + 64);
        assert_eq!(a.digest(), TokenSecret::from_supplied(&format!(" {}\n", a.expose())).unwrap().digest());
        assert_ne!(a.digest(), b.digest());
        assert!(!format!("{a:?}").contains(&a.expose()[SECRET_PREFIX.len()..]));
    }

    #[test]
    fn names_are_short_and_plain() {
        assert!(TokenName::parse("ci-bot@host:1").is_ok());
        assert!(TokenName::parse("  ").is_err());
        assert!(TokenName::parse("has space").is_err());
        assert!(TokenName::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn a_principal_needs_a_covering_scope() {
        let reader = Principal { name: "r".into(), token_id: None, scopes: vec![Scope::Read] };
        assert!(reader.require(Scope::Read).is_ok());
        let err = reader.require(Scope::Execute).unwrap_err();
        assert_eq!(err.code(), "FORBIDDEN");
        assert!(err.to_string().contains("execute"));
    }
}
