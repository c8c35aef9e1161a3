//! Single sign-on with an OpenID Connect provider (Cloud Foundry's UAA is one):
//! discovery, the authorization code flow with PKCE, ID token and bearer JWT
//! verification against the provider's keys, opaque bearer tokens through token
//! introspection, userinfo, and refreshing tokens. The provider is discovered on
//! first use, so svcdash starts while it is down.

mod bearer;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClientAuthMethod,
    CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreJsonWebKey, CoreJsonWebKeySet,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode,
    CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse, CoreSubjectIdentifierType, CoreTokenType,
};
use openidconnect::{
    AccessToken, AdditionalClaims, AdditionalProviderMetadata, AsyncHttpClient, AuthorizationCode, Client, ClientId,
    ClientSecret, CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, ExtraTokenFields,
    HttpClientError, HttpRequest, HttpResponse, IdToken, IdTokenClaims, IdTokenFields, IdTokenVerifier,
    IntrospectionUrl, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata,
    RedirectUrl, RefreshToken, Scope, StandardErrorResponse, StandardTokenResponse, TokenResponse, UserInfoClaims,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::RwLock;

use super::config::OidcConfig;

/// Claims beyond the standard ones (groups, UAA's `user_name`), read by name.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    claims: HashMap<String, Value>,
}
impl AdditionalClaims for OtherClaims {}
// Introspection answers carry them too.
impl ExtraTokenFields for OtherClaims {}

/// Discovery fields beyond OpenID Connect's own.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MoreMetadata {
    /// RFC 8414's token introspection endpoint (RFC 7662), if the provider has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    introspection_endpoint: Option<IntrospectionUrl>,
}
impl AdditionalProviderMetadata for MoreMetadata {}

type Metadata = ProviderMetadata<
    MoreMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type TokenFields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type Tokens = StandardTokenResponse<TokenFields, CoreTokenType>;
type Jwt = IdToken<OtherClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;
type Verifier = IdTokenVerifier<'static, CoreJsonWebKey>;
type OidcClient = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    bearer::Introspection,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// reqwest as the OpenID client's HTTP client. It never follows redirects: a
/// token endpoint that redirects could point svcdash at internal addresses.
#[derive(Clone)]
pub struct OidcHttp(reqwest::Client);

impl OidcHttp {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self(
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(15))
                .build()
                .context("building the HTTP client for the identity provider")?,
        ))
    }
}

impl<'c> AsyncHttpClient<'c> for OidcHttp {
    type Error = HttpClientError<reqwest::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + Sync + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request: reqwest::Request = request.try_into().map_err(Box::new)?;
            let response = self.0.execute(request).await.map_err(Box::new)?;
            let mut builder = axum::http::Response::builder().status(response.status()).version(response.version());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            builder.body(response.bytes().await.map_err(Box::new)?.to_vec()).map_err(HttpClientError::Http)
        })
    }
}

/// Who the provider says signed in (or owns a bearer token).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Identity {
    pub sub: String,
    pub name: String,
    pub groups: Vec<String>,
    /// When the token this came from expires (unix seconds), if it says.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// The provider's tokens for a session.
#[derive(Serialize, Deserialize)]
pub struct ProviderTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Unix seconds; unknown when the provider did not say.
    pub expires_at: Option<i64>,
}

/// A sign-in begun: where to send the browser, and what the callback must check.
pub struct Begun {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: SecretString,
}

struct Discovered {
    metadata: Metadata,
    client: OidcClient,
    keys_fetched: Instant,
}

pub struct Oidc {
    config: OidcConfig,
    /// Who bearer tokens must be issued for.
    audiences: bearer::Audiences,
    issuer: String,
    redirect_url: String,
    extra_scopes: Vec<String>,
    http: OidcHttp,
    discovered: RwLock<Option<Discovered>>,
}

/// The provider's keys are fetched again for an unknown key id, at most this often.
const KEYS_REFRESH_EVERY: Duration = Duration::from_secs(30);

impl Oidc {
    /// `extra_scopes` are asked for besides the configured ones (UAA: the Cloud
    /// Controller permissions scope).
    pub fn new(config: &OidcConfig, redirect_url: String, extra_scopes: Vec<String>) -> anyhow::Result<Self> {
        let issuer = config.issuer.clone().context("[auth.oidc] issuer is not set")?;
        IssuerUrl::new(issuer.clone()).context("[auth.oidc] issuer is not a URL")?;
        RedirectUrl::new(redirect_url.clone()).context("the public URL does not make a valid redirect URL")?;
        if config.client_secret.is_none() {
            anyhow::bail!("[auth.oidc] client_secret is not set");
        }
        Ok(Self {
            config: config.clone(),
            audiences: bearer::Audiences::new(&config.audiences, &config.client_id),
            issuer,
            redirect_url,
            extra_scopes,
            http: OidcHttp::new()?,
            discovered: RwLock::new(None),
        })
    }

    pub fn client_id(&self) -> &str {
        &self.config.client_id
    }

    pub fn redirect_url(&self) -> &str {
        &self.redirect_url
    }

    async fn discover(&self) -> anyhow::Result<Discovered> {
        let metadata = Metadata::discover_async(IssuerUrl::new(self.issuer.clone())?, &self.http)
            .await
            .map_err(|e| anyhow!("discovering the identity provider {}: {}", self.issuer, error_chain(&e)))?;
        let secret = self.config.client_secret.as_ref().map(|s| ClientSecret::new(s.expose_secret().to_owned()));
        let client =
            OidcClient::from_provider_metadata(metadata.clone(), ClientId::new(self.config.client_id.clone()), secret)
                .set_redirect_uri(RedirectUrl::new(self.redirect_url.clone())?);
        Ok(Discovered { metadata, client, keys_fetched: Instant::now() })
    }

    /// Runs `f` with the discovered provider, discovering it first if needed.
    async fn with<T>(&self, f: impl FnOnce(&Discovered) -> T) -> anyhow::Result<T> {
        if let Some(d) = self.discovered.read().await.as_ref() {
            return Ok(f(d));
        }
        let mut slot = self.discovered.write().await;
        if slot.is_none() {
            *slot = Some(self.discover().await?);
        }
        Ok(f(slot.as_ref().expect("just discovered")))
    }

    fn client(&self, d: &Discovered) -> OidcClient {
        d.client.clone()
    }

    /// Checks the provider's signatures on ID tokens and bearer JWTs: its keys and
    /// the asymmetric algorithms only. It holds no client secret, so no HMAC
    /// signature could check out even if one were allowed.
    fn verifier(&self, d: &Discovered) -> Verifier {
        IdTokenVerifier::new_public_client(
            ClientId::new(self.config.client_id.clone()),
            d.metadata.issuer().clone(),
            d.metadata.jwks().clone(),
        )
        .set_allowed_algs(bearer::SIGNING_ALGS)
    }

    /// Fetches the provider's keys again (a key rotation), unless that was just done.
    async fn refresh_keys(&self) -> anyhow::Result<bool> {
        let mut slot = self.discovered.write().await;
        let Some(d) = slot.as_mut() else { return Ok(false) };
        if d.keys_fetched.elapsed() < KEYS_REFRESH_EVERY {
            return Ok(false);
        }
        let keys = CoreJsonWebKeySet::fetch_async(d.metadata.jwks_uri(), &self.http)
            .await
            .map_err(|e| anyhow!("fetching the identity provider's keys: {}", error_chain(&e)))?;
        d.metadata = d.metadata.clone().set_jwks(keys);
        let secret = self.config.client_secret.as_ref().map(|s| ClientSecret::new(s.expose_secret().to_owned()));
        d.client = OidcClient::from_provider_metadata(
            d.metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            secret,
        )
        .set_redirect_uri(RedirectUrl::new(self.redirect_url.clone())?);
        d.keys_fetched = Instant::now();
        Ok(true)
    }

    /// Starts a sign-in: the provider's authorization URL with `state`, `nonce` and a PKCE challenge.
    pub async fn begin(&self) -> anyhow::Result<Begun> {
        let client = self.with(|d| self.client(d)).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request =
            client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
        for scope in self.config.scopes.iter().chain(&self.extra_scopes) {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(Begun {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: SecretString::from(verifier.secret().clone()),
        })
    }

    /// Completes a sign-in: trades the code for tokens, verifies the ID token
    /// (signature, issuer, audience, expiry, nonce) and reads who signed in.
    pub async fn finish(&self, code: &str, verifier: &str, nonce: &str) -> anyhow::Result<(Identity, ProviderTokens)> {
        let (client, id_tokens) = self.with(|d| (self.client(d), self.verifier(d))).await?;
        let tokens: Tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .context("the identity provider has no token endpoint")?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| anyhow!("the identity provider refused the sign-in code: {}", error_chain(&e)))?;
        let id_token = tokens.id_token().context("the identity provider sent no ID token")?;
        let expected = Nonce::new(nonce.to_owned());
        let claims =
            id_token.claims(&id_tokens, &expected).map_err(|e| anyhow!("the ID token is not valid: {e}"))?.clone();
        let identity = self.identity(&client, &claims, tokens.access_token()).await?;
        Ok((identity, provider_tokens(&tokens, None)))
    }

    /// New tokens for a session whose access token expired.
    pub async fn refresh(&self, refresh_token: &str) -> anyhow::Result<(Identity, ProviderTokens)> {
        let (client, verifier) = self.with(|d| (self.client(d), self.verifier(d))).await?;
        let tokens: Tokens = client
            .exchange_refresh_token(&RefreshToken::new(refresh_token.to_owned()))
            .context("the identity provider has no token endpoint")?
            .request_async(&self.http)
            .await
            .map_err(|e| anyhow!("the identity provider refused to refresh the sign-in: {}", error_chain(&e)))?;
        let identity = match tokens.id_token() {
            Some(id_token) => {
                let claims = id_token
                    .claims(&verifier, |_: Option<&Nonce>| Ok(()))
                    .map_err(|e| anyhow!("the refreshed ID token is not valid: {e}"))?
                    .clone();
                self.identity(&client, &claims, tokens.access_token()).await?
            }
            None => self.userinfo(&client, tokens.access_token()).await?,
        };
        Ok((identity, provider_tokens(&tokens, Some(refresh_token))))
    }

    /// Who owns a bearer token, if it was issued for svcdash (see [`bearer::Audiences::check`]).
    /// A JWT is verified against the provider's keys (signature, issuer, expiry);
    /// any other token is described by the provider's token introspection endpoint.
    pub async fn verify_bearer(&self, token: &str) -> Result<Identity, BearerError> {
        let Ok(jwt) = token.parse::<Jwt>() else { return self.introspect(token).await };
        let verifier = self.with(|d| self.verifier(d)).await.map_err(BearerError::Provider)?;
        match self.verify_jwt(&verifier, &jwt) {
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(
                openidconnect::SignatureVerificationError::NoMatchingKey,
            )) if self.refresh_keys().await.map_err(BearerError::Provider)? => {
                let verifier = self.with(|d| self.verifier(d)).await.map_err(BearerError::Provider)?;
                self.verify_jwt(&verifier, &jwt)
            }
            other => other,
        }
        .map_err(|e| BearerError::Invalid(anyhow!("the token is not valid: {}", error_chain(&e))))
    }

    fn verify_jwt(&self, verifier: &Verifier, jwt: &Jwt) -> Result<Identity, openidconnect::ClaimsVerificationError> {
        // Tokens minted for other clients (`cf`'s, a CLI's) count when listed in `audiences`.
        let verifier = verifier.clone().require_audience_match(false);
        let claims = jwt.claims(&verifier, |_: Option<&Nonce>| Ok(()))?;
        let aud: Vec<String> = claims.audiences().iter().map(|a| a.as_str().to_owned()).collect();
        let clients = bearer::clients(claims.authorized_party().map(|p| p.as_str()), claims.additional_claims());
        self.audiences.check(&aud, &clients).map_err(openidconnect::ClaimsVerificationError::InvalidAudience)?;
        Ok(self.identity_from_claims(claims.subject().as_str(), claims))
    }

    /// An opaque bearer token, as the provider's introspection endpoint describes
    /// it (asked with svcdash's client credentials). Never userinfo alone: it
    /// answers for a token issued to any client of the provider.
    async fn introspect(&self, token: &str) -> Result<Identity, BearerError> {
        let (client, endpoint) = self
            .with(|d| (self.client(d), d.metadata.additional_metadata().introspection_endpoint.clone()))
            .await
            .map_err(BearerError::Provider)?;
        let Some(endpoint) = endpoint else {
            return Err(BearerError::Invalid(anyhow!(
                "the token is not a JWT, and the identity provider offers no token introspection to check other \
                 tokens with: send a JWT issued for svcdash (an ID token, or a JWT access token)"
            )));
        };
        let token = AccessToken::new(token.to_owned());
        let answer: bearer::Introspection = client
            .clone()
            .set_introspection_url(endpoint)
            .introspect(&token)
            .set_token_type_hint("access_token")
            .request_async(&self.http)
            .await
            .map_err(|e| {
                BearerError::Provider(anyhow!(
                    "asking the identity provider to introspect a token: {}",
                    error_chain(&e)
                ))
            })?;
        let now = chrono::Utc::now().timestamp();
        let accepted = bearer::accept(&answer, &self.audiences, &self.config.groups_claim, now)
            .map_err(|why| BearerError::Invalid(anyhow!("the token is not valid: {why}")))?;
        if accepted.has_groups || client.user_info(token.clone(), None).is_err() {
            return Ok(accepted.identity);
        }
        // Accepted: userinfo may now say who the user is and which groups they are in.
        let info = self.userinfo(&client, &token).await.map_err(BearerError::Invalid)?;
        if info.sub != accepted.identity.sub {
            return Err(BearerError::Invalid(anyhow!(
                "userinfo describes another user than the token's introspection"
            )));
        }
        Ok(Identity { expires_at: accepted.identity.expires_at, ..info })
    }

    async fn identity(
        &self,
        client: &OidcClient,
        claims: &IdTokenClaims<OtherClaims, CoreGenderClaim>,
        access_token: &AccessToken,
    ) -> anyhow::Result<Identity> {
        // The ID token may leave claims to userinfo (groups especially).
        if claims.additional_claims().claims.contains_key(&self.config.groups_claim) {
            return Ok(self.identity_from_claims(claims.subject().as_str(), claims));
        }
        match self.userinfo(client, access_token).await {
            Ok(identity) if identity.sub == claims.subject().as_str() => Ok(identity),
            Ok(_) => Err(anyhow!("userinfo describes another user than the ID token")),
            // A provider without userinfo: the ID token is all there is.
            Err(_) if client.user_info(access_token.clone(), None).is_err() => {
                Ok(self.identity_from_claims(claims.subject().as_str(), claims))
            }
            Err(e) => Err(e),
        }
    }

    async fn userinfo(&self, client: &OidcClient, access_token: &AccessToken) -> anyhow::Result<Identity> {
        let info: UserInfoClaims<OtherClaims, CoreGenderClaim> = client
            .user_info(access_token.clone(), None)
            .context("the identity provider has no userinfo endpoint")?
            .request_async(&self.http)
            .await
            .map_err(|e| anyhow!("the identity provider does not accept the token: {}", error_chain(&e)))?;
        let name = info
            .preferred_username()
            .map(|n| n.as_str().to_owned())
            .or_else(|| string_claim(info.additional_claims(), "user_name"))
            .or_else(|| info.email().map(|e| e.as_str().to_owned()))
            .or_else(|| info.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned()))
            .unwrap_or_else(|| info.subject().as_str().to_owned());
        Ok(Identity {
            sub: info.subject().as_str().to_owned(),
            name,
            groups: groups(info.additional_claims(), &self.config.groups_claim),
            expires_at: None,
        })
    }

    fn identity_from_claims(&self, sub: &str, claims: &IdTokenClaims<OtherClaims, CoreGenderClaim>) -> Identity {
        let name = claims
            .preferred_username()
            .map(|n| n.as_str().to_owned())
            .or_else(|| string_claim(claims.additional_claims(), "user_name"))
            .or_else(|| claims.email().map(|e| e.as_str().to_owned()))
            .or_else(|| claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned()))
            .unwrap_or_else(|| sub.to_owned());
        Identity {
            sub: sub.to_owned(),
            name,
            groups: groups(claims.additional_claims(), &self.config.groups_claim),
            expires_at: Some(claims.expiration().timestamp()),
        }
    }
}

/// Why a bearer token was not accepted.
#[derive(Debug)]
pub enum BearerError {
    /// The token is not valid: 401.
    Invalid(anyhow::Error),
    /// The provider could not be reached or understood: 500, logged.
    Provider(anyhow::Error),
}

fn provider_tokens(tokens: &Tokens, old_refresh: Option<&str>) -> ProviderTokens {
    ProviderTokens {
        access_token: tokens.access_token().secret().clone(),
        // Providers that do not rotate refresh tokens send none on refresh.
        refresh_token: tokens.refresh_token().map(|t| t.secret().clone()).or(old_refresh.map(str::to_owned)),
        expires_at: tokens.expires_in().map(|d| chrono::Utc::now().timestamp() + d.as_secs() as i64),
    }
}

fn string_claim(claims: &OtherClaims, name: &str) -> Option<String> {
    claims.claims.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// A groups claim is a list of strings (or, from some providers, one string).
fn groups(claims: &OtherClaims, name: &str) -> Vec<String> {
    match claims.claims.get(name) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
