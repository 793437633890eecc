//! An org's accounting connection: where its invoices and balances come from (the built-in
//! ledger, Xero or ConnectWise Manage) and where its payments are written back. The admin
//! chooses in the settings; secrets are sealed at rest and never shown again. Xero needs the
//! admin's consent in the browser (OAuth2 authorization code): its settings are saved first,
//! awaiting consent (the ledger serves meanwhile), and the consent finishes the connection.

use std::collections::BTreeMap;

use domain::{OrgSlug, Secret, token_hash};
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use crate::Services;
use crate::ports::{AccountingError, ConnectionCheck, StoreError};

pub const LEDGER: &str = "ledger";
pub const XERO: &str = "xero";
pub const CONNECTWISE: &str = "connectwise";
/// Xero's settings saved, the admin's consent not given yet.
const XERO_PENDING: &str = "xero_pending";
/// How long a consent link may take to come back.
const CONSENT_FOR: Duration = Duration::minutes(15);

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Invalid(String),
    #[error("the consent link is unknown, used or expired: start again from the settings")]
    BadConsent,
    #[error(transparent)]
    Unavailable(#[from] AccountingError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The connection as an admin sees it: never a secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConnectionView {
    /// ledger, xero or connectwise
    pub system: String,
    /// built_in, awaiting_consent or connected
    pub state: &'static str,
    /// The settings that are not secret (account codes, site, company, tenant).
    pub settings: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

/// Which fields each system takes: (name, required, secret).
fn fields(system: &str) -> &'static [(&'static str, bool, bool)] {
    match system {
        XERO => &[
            ("client_id", true, false),
            ("client_secret", true, true),
            ("payment_account", true, false),
            ("surcharge_account", false, false),
            // Given only for a connection made elsewhere (a Xero custom connection, tests);
            // otherwise the consent flow fills them in.
            ("tenant_id", false, false),
            ("tenant_name", false, false),
            ("access_token", false, true),
            ("refresh_token", false, true),
            ("access_expires_at", false, false),
        ],
        CONNECTWISE => &[
            ("site", true, false),
            ("codebase", true, false),
            ("company", true, false),
            ("public_key", true, true),
            ("private_key", true, true),
            ("client_id", true, false),
            ("currency", false, false),
        ],
        _ => &[],
    }
}

const TOKENS: [&str; 4] = [
    "tenant_id",
    "access_token",
    "refresh_token",
    "access_expires_at",
];

/// The org's connection, without its secrets.
pub async fn view(s: &Services, org: &OrgSlug) -> Result<ConnectionView, SetupError> {
    let Some(config) = s.accounting_configs.accounting_config(org).await? else {
        return Ok(ConnectionView {
            system: LEDGER.to_owned(),
            state: "built_in",
            settings: BTreeMap::new(),
            updated_at: None,
        });
    };
    let (system, state) = match config.system.as_str() {
        XERO_PENDING => (XERO, "awaiting_consent"),
        other => (other, "connected"),
    };
    let stored: Map<String, Value> =
        serde_json::from_str(config.credentials.expose()).unwrap_or_default();
    let settings = fields(system)
        .iter()
        .filter(|(_, _, secret)| !secret)
        .filter_map(|(name, _, _)| {
            let value = stored.get(*name)?.as_str()?;
            Some(((*name).to_owned(), value.to_owned()))
        })
        .collect();
    Ok(ConnectionView {
        system: system.to_owned(),
        state,
        settings,
        updated_at: Some(config.updated_at),
    })
}

/// Sets the org's accounting system. `ledger` goes back to the built-in ledger; Xero without
/// tokens waits for the admin's consent ([`start_consent`]).
pub async fn configure(
    s: &Services,
    org: &OrgSlug,
    system: &str,
    settings: &Value,
) -> Result<ConnectionView, SetupError> {
    let now = s.clock.now();
    if system == LEDGER {
        s.accounting_configs.delete_accounting_config(org).await?;
        s.accounting.forget(org);
        return view(s, org).await;
    }
    if fields(system).is_empty() {
        return Err(SetupError::Invalid(format!(
            "system: one of {LEDGER}, {XERO}, {CONNECTWISE}"
        )));
    }
    let given = checked_settings(system, settings)?;
    let stored_as = if system == XERO {
        let tokens = TOKENS.iter().filter(|t| given.contains_key(**t)).count();
        match tokens {
            0 => XERO_PENDING,
            4 => XERO,
            _ => {
                return Err(SetupError::Invalid(format!(
                    "settings: give all of {} or none (and connect with Xero's consent)",
                    TOKENS.join(", ")
                )));
            }
        }
    } else {
        system
    };
    let text = Value::Object(given).to_string();
    s.accounting_configs
        .put_accounting_config(org, stored_as, &Secret::new(text), now)
        .await?;
    s.accounting.forget(org);
    tracing::info!(org = %org, system = stored_as, "accounting connection set");
    view(s, org).await
}

/// The settings with only the known fields, each a short single-line string; a message names
/// the field, never its value.
fn checked_settings(system: &str, settings: &Value) -> Result<Map<String, Value>, SetupError> {
    let Value::Object(given) = settings else {
        return Err(SetupError::Invalid("settings: an object".into()));
    };
    let known = fields(system);
    if let Some(other) = given
        .keys()
        .find(|k| !known.iter().any(|(name, _, _)| name == k))
    {
        return Err(SetupError::Invalid(format!(
            "settings: unknown field {other:?} for {system}"
        )));
    }
    let mut out = Map::new();
    for (name, required, _) in known {
        match given.get(*name) {
            Some(Value::String(v))
                if (1..=512).contains(&v.trim().len()) && !v.chars().any(char::is_control) =>
            {
                out.insert((*name).to_owned(), Value::String(v.trim().to_owned()));
            }
            None | Some(Value::Null) if !required => {}
            _ => {
                return Err(SetupError::Invalid(format!(
                    "settings.{name}: a string of 1 to 512 characters"
                )));
            }
        }
    }
    if let Some(Value::String(site)) = out.get("site")
        && !secure_url(site)
    {
        return Err(SetupError::Invalid(
            "settings.site: an https:// URL (http:// only on this machine)".into(),
        ));
    }
    if let Some(Value::String(at)) = out.get("access_expires_at")
        && OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_err()
    {
        return Err(SetupError::Invalid(
            "settings.access_expires_at: an RFC 3339 time".into(),
        ));
    }
    Ok(out)
}

/// https, or http to a loopback address (a local double).
fn secure_url(url: &str) -> bool {
    if let Some(rest) = url.strip_prefix("https://") {
        return !rest.is_empty();
    }
    url.strip_prefix("http://").is_some_and(|rest| {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        host == "127.0.0.1" || host == "localhost"
    })
}

/// Starts Xero's consent: the URL to send the admin's browser to. The state names the org and
/// carries a single-use secret (kept only as its hash) that the way back must show.
pub async fn start_consent(
    s: &Services,
    org: &OrgSlug,
    redirect_uri: &str,
) -> Result<String, SetupError> {
    let config = s
        .accounting_configs
        .accounting_config(org)
        .await?
        .filter(|c| c.system == XERO_PENDING || c.system == XERO)
        .ok_or_else(|| SetupError::Invalid("save Xero's settings first".into()))?;
    let mut stored: Map<String, Value> = serde_json::from_str(config.credentials.expose())
        .map_err(|_| SetupError::Invalid("the saved settings are unreadable".into()))?;
    let client_id = stored
        .get("client_id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let state = format!("{org}.{}", s.ids.secret().expose());
    let now = s.clock.now();
    stored.insert("consent_state".into(), Value::String(token_hash(&state)));
    stored.insert(
        "consent_until".into(),
        Value::from((now + CONSENT_FOR).unix_timestamp()),
    );
    let text = Secret::new(Value::Object(stored).to_string());
    if !s
        .accounting_configs
        .update_accounting_credentials(org, config.version, &text, now)
        .await?
    {
        return Err(SetupError::Invalid(
            "the connection changed meanwhile: try again".into(),
        ));
    }
    Ok(s.accounting_connect
        .authorize_url(&client_id, redirect_uri, &state))
}

/// Finishes Xero's consent: the code for the first tokens, the first organisation it covers
/// as the tenant. Answers the org and the organisation's name.
pub async fn finish_consent(
    s: &Services,
    state: &str,
    code: &str,
    redirect_uri: &str,
) -> Result<(OrgSlug, String), SetupError> {
    let org = state
        .split_once('.')
        .and_then(|(org, _)| OrgSlug::parse(org).ok())
        .ok_or(SetupError::BadConsent)?;
    let now = s.clock.now();
    let config = s
        .accounting_configs
        .accounting_config(&org)
        .await?
        .ok_or(SetupError::BadConsent)?;
    let mut stored: Map<String, Value> =
        serde_json::from_str(config.credentials.expose()).map_err(|_| SetupError::BadConsent)?;
    let expected = stored.get("consent_state").and_then(Value::as_str);
    let until = stored.get("consent_until").and_then(Value::as_i64);
    let matches = expected.is_some_and(|h| subtle_eq(h.as_bytes(), token_hash(state).as_bytes()));
    if !matches || until.is_none_or(|u| u < now.unix_timestamp()) {
        return Err(SetupError::BadConsent);
    }
    let text = |name: &str| {
        stored
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let consent = s
        .accounting_connect
        .exchange(
            &text("client_id"),
            &Secret::new(text("client_secret")),
            code,
            redirect_uri,
            now,
        )
        .await?;
    let (tenant_id, tenant_name) = consent
        .tenants
        .first()
        .cloned()
        .ok_or_else(|| SetupError::Invalid("the consent covers no Xero organisation".into()))?;
    stored.remove("consent_state");
    stored.remove("consent_until");
    let rfc3339 = consent
        .access_expires_at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| StoreError(e.to_string()))?;
    for (name, value) in [
        ("tenant_id", tenant_id),
        ("tenant_name", tenant_name.clone()),
        ("access_token", consent.access_token.expose().clone()),
        ("refresh_token", consent.refresh_token.expose().clone()),
        ("access_expires_at", rfc3339),
    ] {
        stored.insert(name.into(), Value::String(value));
    }
    s.accounting_configs
        .put_accounting_config(
            &org,
            XERO,
            &Secret::new(Value::Object(stored).to_string()),
            now,
        )
        .await?;
    s.accounting.forget(&org);
    tracing::info!(org = %org, "Xero connected");
    Ok((org, tenant_name))
}

/// Constant-time equality of two hashes.
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One cheap authenticated call with the org's connection.
pub async fn test(s: &Services, org: &OrgSlug) -> Result<ConnectionCheck, AccountingError> {
    s.accounting.test_connection(org).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_short_fields_are_kept_and_secrets_are_never_quoted() {
        let ok = serde_json::json!({"site": "https://na.myconnectwise.net", "codebase": "v4_6_release/",
            "company": "acme", "public_key": "pub", "private_key": "priv", "client_id": "c"});
        assert_eq!(checked_settings(CONNECTWISE, &ok).unwrap().len(), 6);
        let mut bad = ok.clone();
        bad["site"] = "http://example.com".into();
        assert!(checked_settings(CONNECTWISE, &bad).is_err());
        bad["site"] = "http://127.0.0.1:9/".into();
        assert!(checked_settings(CONNECTWISE, &bad).is_ok());
        let mut bad = ok.clone();
        bad["private_key"] = "line\nbreak-secret".into();
        let e = checked_settings(CONNECTWISE, &bad).unwrap_err().to_string();
        assert!(e.contains("private_key") && !e.contains("secret"), "{e}");
        let mut bad = ok;
        bad["password"] = "x".into();
        assert!(checked_settings(CONNECTWISE, &bad).is_err());
    }
}
