//! `TokenStore`: round trips by digest and by id, newest-first listing with
//! revoked tokens, revoking once, touching, expired tokens, unique digests.

use vm_domain::ids::TokenId;
use vm_domain::token::{Scope, SecretDigest, Token, TokenName, TokenSecret, TokenStatus};
use vm_domain::Timestamp;

use crate::harness::Harness;
use crate::seed::at;

/// An active, never used `read` token named `name`, created at `created_at`.
fn token(name: &str, created_at: Timestamp) -> Token {
    Token {
        id: TokenId::new(),
        name: TokenName::parse(name).expect("a valid name"),
        scopes: vec![Scope::Read],
        created_at,
        last_used_at: None,
        expires_at: None,
        revoked_at: None,
    }
}

/// The digest of a new random secret.
fn digest() -> SecretDigest {
    TokenSecret::generate().expect("random bytes").digest()
}

/// `token` stored under a new digest, which is returned.
async fn stored(h: &Harness, token: &Token) -> SecretDigest {
    let digest = digest();
    h.tokens.insert(token, &digest).await.expect("the token is stored");
    digest
}

fn ids(tokens: &[Token]) -> Vec<TokenId> {
    tokens.iter().map(|t| t.id).collect()
}

contract!(a_token_reads_back_by_digest_and_by_id_as_it_was_inserted, async |h: &Harness| {
    let mut used = token("ci-bot@host:1", at(1));
    used.scopes = vec![Scope::Execute, Scope::Read, Scope::Admin];
    used.last_used_at = Some(at(2));
    used.expires_at = Some(at(1_000));
    used.revoked_at = Some(at(3));
    let fresh = token("fresh", at(4));

    for t in [&used, &fresh] {
        let digest = stored(h, t).await;

        assert_eq!(h.tokens.by_digest(&digest).await.unwrap().as_ref(), Some(t));
        assert_eq!(h.tokens.get(t.id).await.unwrap().as_ref(), Some(t));
    }
    let read_back = h.tokens.get(used.id).await.unwrap().unwrap();
    assert_eq!(read_back.scopes, [Scope::Execute, Scope::Read, Scope::Admin], "scopes keep their order");
    assert_eq!(read_back.last_used_at.unwrap().timestamp_subsec_micros(), 123_456, "microseconds are kept");
});

contract!(an_unknown_digest_or_id_reads_as_nothing, async |h: &Harness| {
    stored(h, &token("known", at(1))).await;

    assert_eq!(h.tokens.by_digest(&digest()).await.unwrap(), None);
    assert_eq!(h.tokens.get(TokenId::new()).await.unwrap(), None);
});

contract!(tokens_are_listed_newest_first_revoked_ones_included_and_ties_by_latest_insertion, async |h: &Harness| {
    assert!(h.tokens.list().await.unwrap().is_empty());
    let a = token("a", at(1));
    let b = token("b", at(3));
    let c = token("c", at(2));
    let d = token("d", at(3));
    for t in [&a, &b, &c, &d] {
        stored(h, t).await;
    }
    assert!(h.tokens.revoke(c.id, at(4)).await.unwrap());

    let listed = h.tokens.list().await.unwrap();

    assert_eq!(ids(&listed), [d.id, b.id, c.id, a.id]);
    assert_eq!(listed[2].revoked_at, Some(at(4)));
});

contract!(revoking_sets_revoked_at_once_and_again_changes_nothing, async |h: &Harness| {
    let doomed = token("doomed", at(1));
    let kept = token("kept", at(1));
    let digest = stored(h, &doomed).await;
    stored(h, &kept).await;

    assert!(h.tokens.revoke(doomed.id, at(5)).await.unwrap());
    let revoked = Token { revoked_at: Some(at(5)), ..doomed.clone() };
    assert_eq!(h.tokens.get(doomed.id).await.unwrap(), Some(revoked.clone()));

    assert!(h.tokens.revoke(doomed.id, at(9)).await.unwrap(), "a revoked token is still found");
    assert_eq!(h.tokens.get(doomed.id).await.unwrap(), Some(revoked.clone()), "the first revoked_at stays");
    assert_eq!(h.tokens.by_digest(&digest).await.unwrap(), Some(revoked));
    assert_eq!(h.tokens.get(kept.id).await.unwrap(), Some(kept), "the other token is untouched");
});

contract!(revoking_or_touching_an_unknown_token_finds_nothing_and_adds_nothing, async |h: &Harness| {
    let missing = TokenId::new();

    assert!(!h.tokens.revoke(missing, at(1)).await.unwrap());
    h.tokens.touch(missing, at(1)).await.unwrap();

    assert_eq!(h.tokens.get(missing).await.unwrap(), None);
    assert!(h.tokens.list().await.unwrap().is_empty());
});

contract!(touching_sets_last_used_at_and_nothing_else, async |h: &Harness| {
    let mut used = token("used", at(1));
    used.expires_at = Some(at(100));
    let other = token("other", at(1));
    stored(h, &used).await;
    stored(h, &other).await;

    h.tokens.touch(used.id, at(5)).await.unwrap();
    let once = Token { last_used_at: Some(at(5)), ..used.clone() };
    assert_eq!(h.tokens.get(used.id).await.unwrap(), Some(once));

    h.tokens.touch(used.id, at(7)).await.unwrap();
    let twice = Token { last_used_at: Some(at(7)), ..used.clone() };
    assert_eq!(h.tokens.get(used.id).await.unwrap(), Some(twice));
    assert_eq!(h.tokens.get(other.id).await.unwrap(), Some(other));
});

contract!(expired_tokens_are_still_returned_and_the_domain_calls_them_expired, async |h: &Harness| {
    let mut expired = token("expired", at(0));
    expired.expires_at = Some(at(1));
    let digest = stored(h, &expired).await;

    let by_digest = h.tokens.by_digest(&digest).await.unwrap().expect("an expired token is found");
    assert_eq!(by_digest, expired);
    assert_eq!(by_digest.status(at(2)), TokenStatus::Expired);
    assert_eq!(h.tokens.get(expired.id).await.unwrap(), Some(expired.clone()));
    assert_eq!(h.tokens.list().await.unwrap(), [expired]);
});

contract!(a_second_token_with_the_same_digest_is_an_internal_error_and_the_first_stays, async |h: &Harness| {
    let first = token("first", at(1));
    let second = token("second", at(2));
    let digest = stored(h, &first).await;

    let err = h.tokens.insert(&second, &digest).await.unwrap_err();

    assert_eq!(err.code(), "INTERNAL");
    assert_eq!(h.tokens.by_digest(&digest).await.unwrap(), Some(first.clone()));
    assert_eq!(h.tokens.get(second.id).await.unwrap(), None);
    assert_eq!(h.tokens.list().await.unwrap(), [first]);
});
