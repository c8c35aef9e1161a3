//! Which of the provider's tokens svcdash takes as bearer tokens: only those
//! issued for svcdash (by audience and by the client they were issued to),
//! JWTs signed with one of the provider's private keys, and opaque tokens only
//! as the provider's token introspection endpoint describes them.

use openidconnect::core::{CoreJwsSigningAlgorithm, CoreTokenType};
use openidconnect::{StandardTokenIntrospectionResponse, TokenIntrospectionResponse};

use super::{Identity, OtherClaims, groups, string_claim};

/// Signature algorithms accepted on ID tokens and bearer JWTs: asymmetric ones
/// only, whatever the provider advertises. An HMAC (HS*) signature is keyed by
/// the client secret, which is not the provider's alone to hold; `none` signs nothing.
pub const SIGNING_ALGS: [CoreJwsSigningAlgorithm; 10] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EcdsaP521Sha512,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// What the provider's introspection endpoint says of a token.
pub type Introspection = StandardTokenIntrospectionResponse<OtherClaims, CoreTokenType>;

/// The audiences (client ids) a bearer token may be issued for.
#[derive(Debug, Clone)]
pub struct Audiences(Vec<String>);

impl Audiences {
    /// `[auth.oidc] audiences`, or svcdash's own client id when none are listed.
    pub fn new(listed: &[String], client_id: &str) -> Self {
        if listed.is_empty() { Self(vec![client_id.to_owned()]) } else { Self(listed.to_vec()) }
    }

    fn accepts(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }

    /// A token is issued for svcdash when its audience (`aud`), if it names one,
    /// includes an accepted audience, and every client it says it was issued to
    /// (`azp`, `client_id`, UAA's `cid`) is accepted. A token naming neither is not.
    pub fn check(&self, aud: &[String], clients: &[(&'static str, String)]) -> Result<(), String> {
        if aud.is_empty() && clients.is_empty() {
            return Err("the token names neither its audience nor its client".into());
        }
        if !aud.is_empty() && !aud.iter().any(|a| self.accepts(a)) {
            return Err(format!("the token is for {aud:?}, not for svcdash ({:?})", self.0));
        }
        if let Some((claim, client)) = clients.iter().find(|(_, c)| !self.accepts(c)) {
            return Err(format!("the token was issued to client {client:?} ({claim}), not to one of {:?}", self.0));
        }
        Ok(())
    }
}

/// The clients a token says it was issued to: `azp` (given apart when the
/// library reads it as a standard claim), `client_id` (RFC 9068, RFC 7662) and
/// `cid` (UAA).
pub fn clients(azp: Option<&str>, claims: &OtherClaims) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    let azp = azp.map(str::to_owned).or_else(|| string_claim(claims, "azp"));
    for (name, value) in
        [("azp", azp), ("client_id", string_claim(claims, "client_id")), ("cid", string_claim(claims, "cid"))]
    {
        if let Some(value) = value {
            found.push((name, value));
        }
    }
    found
}

/// An opaque token the introspection endpoint vouched for.
#[derive(Debug, PartialEq)]
pub struct Introspected {
    pub identity: Identity,
    /// Whether the answer carried the user's groups; without them the caller asks userinfo.
    pub has_groups: bool,
}

/// Accepts an introspection answer only for an active bearer token issued for
/// svcdash that names its user; `now` in unix seconds.
pub fn accept(
    answer: &Introspection,
    audiences: &Audiences,
    groups_claim: &str,
    now: i64,
) -> Result<Introspected, String> {
    if !answer.active() {
        return Err("the identity provider says the token is not active (expired, revoked or unknown)".into());
    }
    match answer.token_type() {
        None | Some(CoreTokenType::Bearer) => {}
        Some(other) => return Err(format!("the token is a {} token, not a bearer token", other.as_ref())),
    }
    let expires_at = answer.exp().map(|t| t.timestamp());
    if expires_at.is_some_and(|at| at <= now) {
        return Err("the token has expired".into());
    }
    if answer.nbf().is_some_and(|t| t.timestamp() > now) {
        return Err("the token is not valid yet".into());
    }
    let extra = answer.extra_fields();
    // `client_id` is a field of the answer itself, so never among `extra`.
    let mut parties = clients(None, extra);
    parties.extend(answer.client_id().map(|id| ("client_id", id.as_str().to_owned())));
    audiences.check(answer.aud().map(Vec::as_slice).unwrap_or_default(), &parties)?;
    let sub = answer.sub().ok_or("the token does not name a user (no sub)")?.to_owned();
    let name = answer
        .username()
        .map(str::to_owned)
        .or_else(|| string_claim(extra, "preferred_username"))
        .or_else(|| string_claim(extra, "user_name"))
        .or_else(|| string_claim(extra, "email"))
        .unwrap_or_else(|| sub.clone());
    Ok(Introspected {
        has_groups: extra.claims.contains_key(groups_claim),
        identity: Identity { name, groups: groups(extra, groups_claim), expires_at, sub },
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn audiences() -> Audiences {
        Audiences::new(&["svcdash".into(), "cf".into()], "svcdash")
    }

    fn answer(body: serde_json::Value) -> Introspection {
        serde_json::from_value(body).unwrap()
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn the_client_id_is_the_audience_when_none_is_listed() {
        let only_own = Audiences::new(&[], "svcdash");
        assert!(only_own.check(&["svcdash".into()], &[]).is_ok());
        assert!(only_own.check(&["cf".into()], &[]).is_err());
    }

    #[test]
    fn a_token_is_for_svcdash_by_audience_and_by_client() {
        let a = audiences();
        let own = |c: &str| vec![("azp", c.to_owned())];
        // By audience alone, by client alone, or both consistent.
        assert_eq!(a.check(&["cloud_controller".into(), "cf".into()], &[]), Ok(()));
        assert_eq!(a.check(&[], &[("client_id", "cf".into())]), Ok(()));
        assert_eq!(a.check(&["svcdash".into()], &own("svcdash")), Ok(()));
        // Another client's token, even when svcdash is among its audiences.
        assert!(a.check(&["other".into()], &[]).unwrap_err().contains("not for svcdash"));
        assert!(a.check(&["svcdash".into(), "other".into()], &own("other")).unwrap_err().contains("\"other\" (azp)"));
        assert!(a.check(&["svcdash".into()], &[("cid", "other".into())]).is_err());
        assert!(a.check(&[], &[("client_id", "other".into())]).is_err());
        // A token that names nobody is for nobody.
        assert!(a.check(&[], &[]).is_err());
    }

    #[test]
    fn clients_are_read_from_azp_client_id_and_cid() {
        let claims: OtherClaims = serde_json::from_value(json!({"client_id": "cf", "cid": "cf", "x": 1})).unwrap();
        assert_eq!(
            clients(Some("cli"), &claims),
            [("azp", "cli".to_owned()), ("client_id", "cf".to_owned()), ("cid", "cf".to_owned())]
        );
        assert_eq!(clients(None, &OtherClaims::default()), []);
    }

    #[test]
    fn an_active_answer_for_svcdash_names_the_user() {
        let a = answer(json!({
            "active": true, "client_id": "cf", "sub": "u-1", "username": "alice", "exp": NOW + 60,
            "token_type": "Bearer", "groups": ["team-a"], "scope": "openid",
        }));
        let got = accept(&a, &audiences(), "groups", NOW).unwrap();
        assert_eq!(
            got,
            Introspected {
                identity: Identity {
                    sub: "u-1".into(),
                    name: "alice".into(),
                    groups: vec!["team-a".into()],
                    expires_at: Some(NOW + 60),
                },
                has_groups: true,
            }
        );
        // Without groups in the answer, the caller asks userinfo for them.
        let a = answer(json!({"active": true, "aud": "svcdash", "sub": "u-1", "user_name": "alice"}));
        let got = accept(&a, &audiences(), "groups", NOW).unwrap();
        assert!(!got.has_groups);
        assert_eq!((got.identity.name.as_str(), got.identity.expires_at), ("alice", None));
    }

    #[test]
    fn other_answers_are_refused() {
        let refused = |body: serde_json::Value| accept(&answer(body), &audiences(), "groups", NOW).unwrap_err();
        assert!(refused(json!({"active": false})).contains("not active"));
        assert!(refused(json!({"active": true, "client_id": "other", "sub": "u"})).contains("\"other\""));
        assert!(refused(json!({"active": true, "aud": ["api"], "client_id": "cf", "sub": "u"})).contains("not for"));
        assert!(refused(json!({"active": true, "sub": "u"})).contains("neither"));
        assert!(refused(json!({"active": true, "client_id": "cf"})).contains("no sub"));
        assert!(refused(json!({"active": true, "client_id": "cf", "sub": "u", "exp": NOW})).contains("expired"));
        assert!(
            refused(json!({"active": true, "client_id": "cf", "sub": "u", "nbf": NOW + 5})).contains("not valid yet")
        );
        assert!(
            refused(json!({"active": true, "client_id": "cf", "sub": "u", "token_type": "refresh_token"}))
                .contains("not a bearer token")
        );
    }
}
