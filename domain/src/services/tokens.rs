//! Token rules: making tokens (secret shown once, digest stored), listing
//! and revoking them, and telling who a request comes from.

use std::sync::Arc;

use chrono::TimeDelta;

use crate::ids::TokenId;
use crate::ports::{Clock, TokenStore};
use crate::token::{normalise_scopes, Principal, Scope, Token, TokenName, TokenSecret, TokenSpec, TokenStatus};
use crate::DomainError;

/// `last_used_at` is written at most this often per token.
pub const TOUCH_INTERVAL: TimeDelta = TimeDelta::minutes(1);

/// The shortest secret `--admin-token-file` may hold.
pub const MIN_SUPPLIED_SECRET_LEN: usize = 32;

pub struct TokenService {
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
}

impl TokenService {
    pub fn new(store: Arc<dyn TokenStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Makes a token; the secret is returned here and never again.
    pub async fn create(&self, spec: TokenSpec) -> Result<(Token, TokenSecret), DomainError> {
        let scopes = normalise_scopes(spec.scopes)?;
        let now = self.clock.now();
        if let Some(at) = spec.expires_at {
            if at <= now {
                return Err(DomainError::InvalidValue {
                    field: "expires_at".into(),
                    message: format!("expires_at must be in the future, got {at}"),
                });
            }
        }
        let token = Token {
            id: TokenId::new(),
            name: spec.name,
            scopes,
            created_at: now,
            last_used_at: None,
            expires_at: spec.expires_at,
            revoked_at: None,
        };
        let secret = TokenSecret::generate()?;
        self.store.insert(&token, &secret.digest()).await?;
        Ok((token, secret))
    }

    /// Every token, revoked and expired ones included, newest first.
    pub async fn list(&self) -> Result<Vec<Token>, DomainError> {
        self.store.list().await
    }

    pub async fn get(&self, id: TokenId) -> Result<Token, DomainError> {
        self.store.get(id).await?.ok_or_else(|| DomainError::TokenNotFound { id: id.to_string() })
    }

    /// Revokes a token at once; revoking a revoked token changes nothing.
    pub async fn revoke(&self, id: TokenId) -> Result<Token, DomainError> {
        if !self.store.revoke(id, self.clock.now()).await? {
            return Err(DomainError::TokenNotFound { id: id.to_string() });
        }
        self.get(id).await
    }

    /// The status of a token now.
    pub fn status(&self, token: &Token) -> TokenStatus {
        token.status(self.clock.now())
    }

    /// Whether some token can be used now: when none can, a loopback daemon
    /// makes a bootstrap token.
    pub async fn any_active(&self) -> Result<bool, DomainError> {
        let now = self.clock.now();
        Ok(self.store.list().await?.iter().any(|token| token.status(now) == TokenStatus::Active))
    }

    /// Who sends `supplied` (the bearer secret, if any): `UNAUTHENTICATED`
    /// unless it is the secret of an active token. Records the use at most
    /// once per [`TOUCH_INTERVAL`].
    pub async fn authenticate(&self, supplied: Option<&str>) -> Result<Principal, DomainError> {
        let Some(secret) = supplied.and_then(TokenSecret::from_supplied) else {
            return Err(DomainError::Unauthenticated {
                message: "this route needs a token: send Authorization: Bearer <token> (see `vm-system help security`)"
                    .into(),
            });
        };
        let token = self
            .store
            .by_digest(&secret.digest())
            .await?
            .ok_or_else(|| DomainError::Unauthenticated { message: "the bearer token is not valid".into() })?;
        let now = self.clock.now();
        match token.status(now) {
            TokenStatus::Active => {}
            TokenStatus::Revoked => {
                return Err(DomainError::Unauthenticated {
                    message: format!("token {:?} has been revoked", token.name.as_str()),
                })
            }
            TokenStatus::Expired => {
                return Err(DomainError::Unauthenticated {
                    message: format!("token {:?} has expired", token.name.as_str()),
                })
            }
        }
        if token.last_used_at.is_none_or(|at| now - at >= TOUCH_INTERVAL) {
            self.store.touch(token.id, now).await?;
        }
        Ok(Principal::of(&token))
    }

    /// Makes `secret` (from `--admin-token-file`) a valid admin token named
    /// `name`, unless it is one already. A revoked one stays revoked: the
    /// caller must choose a new secret.
    pub async fn install_admin(&self, secret: &TokenSecret, name: &str) -> Result<Token, DomainError> {
        if secret.expose().len() < MIN_SUPPLIED_SECRET_LEN {
            return Err(DomainError::validation(
                "secret",
                format!("an admin token secret needs at least {MIN_SUPPLIED_SECRET_LEN} characters"),
            ));
        }
        let digest = secret.digest();
        if let Some(token) = self.store.by_digest(&digest).await? {
            return match token.status(self.clock.now()) {
                TokenStatus::Active if token.allows(Scope::Admin) => Ok(token),
                TokenStatus::Active => Err(DomainError::validation(
                    "secret",
                    format!("this secret is token {:?}, which is not an admin token", token.name.as_str()),
                )),
                ended @ (TokenStatus::Revoked | TokenStatus::Expired) => Err(DomainError::validation(
                    "secret",
                    format!(
                        "this secret was token {:?}, which is {}; write a new secret",
                        token.name.as_str(),
                        ended.as_str()
                    ),
                )),
            };
        }
        let token = Token {
            id: TokenId::new(),
            name: TokenName::parse(name)?,
            scopes: vec![Scope::Admin],
            created_at: self.clock.now(),
            last_used_at: None,
            expires_at: None,
            revoked_at: None,
        };
        self.store.insert(&token, &digest).await?;
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::ports::store::MockTokenStore;
    use crate::services::fixtures::fixed_clock;
    use crate::Timestamp;

    fn a_token(scopes: Vec<Scope>) -> Token {
        Token {
            id: TokenId::new(),
            name: TokenName::parse("ci").unwrap(),
            scopes,
            created_at: fixed_clock().now() - TimeDelta::days(1),
            last_used_at: None,
            expires_at: None,
            revoked_at: None,
        }
    }

    fn service(store: MockTokenStore) -> TokenService {
        TokenService::new(Arc::new(store), fixed_clock())
    }

    fn a_spec(scopes: Vec<Scope>, expires_at: Option<Timestamp>) -> TokenSpec {
        TokenSpec { name: TokenName::parse("ci").unwrap(), scopes, expires_at }
    }

    #[test]
    fn create_stores_only_the_digest_and_returns_the_secret_once() {
        block_on(async {
            let mut store = MockTokenStore::new();
            let seen = Arc::new(std::sync::Mutex::new(None));
            let sink = seen.clone();
            store.expect_insert().times(1).returning(move |token, digest| {
                *sink.lock().unwrap() = Some((token.clone(), digest.clone()));
                Ok(())
            });
            let spec = a_spec(vec![Scope::Execute, Scope::Read, Scope::Execute], None);
            let (token, secret) = service(store).create(spec).await.unwrap();
            let (stored, digest) = seen.lock().unwrap().clone().unwrap();
            assert_eq!(stored, token);
            assert_eq!(digest, secret.digest());
            assert_ne!(digest.as_str(), secret.expose());
            assert_eq!(token.scopes, vec![Scope::Read, Scope::Execute]);
        });
    }

    #[test]
    fn create_refuses_a_past_expiry_and_no_scopes() {
        block_on(async {
            let past = a_spec(vec![Scope::Read], Some(fixed_clock().now()));
            let err = service(MockTokenStore::new()).create(past).await.unwrap_err();
            assert_eq!((err.code(), err.details()["field"].as_str()), ("INVALID_VALUE", Some("expires_at")));
            let none = a_spec(vec![], None);
            let err = service(MockTokenStore::new()).create(none).await.unwrap_err();
            assert_eq!((err.code(), err.details()["field"].as_str()), ("VALIDATION_ERROR", Some("scopes")));
        });
    }

    #[test]
    fn authenticate_refuses_missing_unknown_revoked_and_expired_tokens() {
        block_on(async {
            let svc = service(MockTokenStore::new());
            assert_eq!(svc.authenticate(None).await.unwrap_err().code(), "UNAUTHENTICATED");
            assert_eq!(svc.authenticate(Some("  ")).await.unwrap_err().code(), "UNAUTHENTICATED");

            for (revoked, expired) in [(false, false), (true, false), (false, true)] {
                let mut store = MockTokenStore::new();
                let mut token = a_token(vec![Scope::Admin]);
                if revoked {
                    token.revoked_at = Some(fixed_clock().now());
                }
                if expired {
                    token.expires_at = Some(fixed_clock().now());
                }
                let known = revoked || expired;
                store.expect_by_digest().returning(move |_| Ok(known.then(|| token.clone())));
                store.expect_touch().never();
                let err = service(store).authenticate(Some("vmsys_x")).await.unwrap_err();
                assert_eq!(err.code(), "UNAUTHENTICATED", "revoked={revoked} expired={expired}");
            }
        });
    }

    #[test]
    fn authenticate_records_use_at_most_once_a_minute() {
        block_on(async {
            for (last_used, touched) in
                [(None, 1), (Some(TimeDelta::seconds(59)), 0), (Some(TimeDelta::seconds(60)), 1)]
            {
                let mut store = MockTokenStore::new();
                let mut token = a_token(vec![Scope::Execute]);
                token.last_used_at = last_used.map(|ago| fixed_clock().now() - ago);
                store.expect_by_digest().returning(move |_| Ok(Some(token.clone())));
                store.expect_touch().times(touched).returning(|_, _| Ok(()));
                let principal = service(store).authenticate(Some("vmsys_x")).await.unwrap();
                assert_eq!(principal.name, "ci");
                assert!(principal.require(Scope::Read).is_ok());
                assert!(principal.require(Scope::Admin).is_err());
            }
        });
    }

    #[test]
    fn an_installed_admin_secret_is_inserted_once_and_a_revoked_one_refused() {
        block_on(async {
            let secret = TokenSecret::from_supplied(&"s".repeat(40)).unwrap();
            let mut store = MockTokenStore::new();
            store.expect_by_digest().returning(|_| Ok(None));
            store.expect_insert().times(1).returning(|_, _| Ok(()));
            let token = service(store).install_admin(&secret, "admin-token-file").await.unwrap();
            assert_eq!(token.scopes, vec![Scope::Admin]);

            let mut store = MockTokenStore::new();
            let mut revoked = a_token(vec![Scope::Admin]);
            revoked.revoked_at = Some(fixed_clock().now());
            store.expect_by_digest().returning(move |_| Ok(Some(revoked.clone())));
            store.expect_insert().never();
            assert!(service(store).install_admin(&secret, "admin-token-file").await.is_err());

            let short = TokenSecret::from_supplied("short").unwrap();
            assert!(service(MockTokenStore::new()).install_admin(&short, "x").await.is_err());
        });
    }

    #[test]
    fn revoking_an_unknown_token_is_token_not_found() {
        block_on(async {
            let mut store = MockTokenStore::new();
            store.expect_revoke().returning(|_, _| Ok(false));
            assert_eq!(service(store).revoke(TokenId::new()).await.unwrap_err().code(), "TOKEN_NOT_FOUND");
        });
    }
}
