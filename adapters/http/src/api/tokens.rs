//! `/tokens` (admin): make, list, read and revoke API tokens; `/whoami`.

use std::sync::Arc;

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;
use vm_domain::ids::TokenId;
use vm_domain::token::Token;

use super::Tag;
use crate::dto::{CreateTokenBody, CreatedTokenView, TokenView, WhoAmIView};
use crate::error::ApiResult;
use crate::guard::{Admin, Reader};
use crate::payload::JsonBody;
use crate::Services;

pub struct TokensApi(pub Arc<Services>);

#[derive(ApiResponse)]
pub enum TokenCreated {
    /// The token and its secret, shown this once.
    #[oai(status = 201)]
    Created(Json<CreatedTokenView>),
}

impl TokensApi {
    /// The token as the API shows it, with its status now.
    fn view(&self, token: Token) -> TokenView {
        let status = self.0.tokens.status(&token);
        TokenView::new(token, status)
    }
}

#[OpenApi(tag = "Tag::Tokens")]
impl TokensApi {
    /// Every token, revoked and expired ones included, newest first. Secrets are never listed.
    #[oai(path = "/tokens", method = "get", operation_id = "listTokens")]
    async fn list(&self, _caller: Admin) -> ApiResult<Json<Vec<TokenView>>> {
        let tokens = self.0.tokens.list().await?;
        Ok(Json(tokens.into_iter().map(|token| self.view(token)).collect()))
    }

    /// Make a token; the response holds its secret, which cannot be read again.
    #[oai(path = "/tokens", method = "post", operation_id = "createToken")]
    async fn create(&self, _caller: Admin, body: JsonBody<CreateTokenBody>) -> ApiResult<TokenCreated> {
        let (token, secret) = self.0.tokens.create(body.0.try_into()?).await?;
        Ok(TokenCreated::Created(Json(CreatedTokenView {
            secret: secret.expose().to_owned(),
            token: self.view(token),
        })))
    }

    /// A token, without its secret.
    #[oai(path = "/tokens/:id", method = "get", operation_id = "getToken")]
    async fn get(&self, _caller: Admin, id: Path<Uuid>) -> ApiResult<Json<TokenView>> {
        let token = self.0.tokens.get(TokenId::from(*id)).await?;
        Ok(Json(self.view(token)))
    }

    /// Revoke a token at once; it stays listed as `revoked`. Revoking twice is harmless.
    #[oai(path = "/tokens/:id", method = "delete", operation_id = "revokeToken")]
    async fn revoke(&self, _caller: Admin, id: Path<Uuid>) -> ApiResult<Json<TokenView>> {
        let token = self.0.tokens.revoke(TokenId::from(*id)).await?;
        Ok(Json(self.view(token)))
    }

    /// The token this request carries: its name and scopes.
    #[oai(path = "/whoami", method = "get", operation_id = "whoAmI")]
    async fn whoami(&self, caller: Reader) -> ApiResult<Json<WhoAmIView>> {
        Ok(Json(caller.0.into()))
    }
}
