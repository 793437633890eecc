//! Shared helpers of the end-to-end tests: a fresh table with an org and an API key, and a way
//! to call a router as a client would.

use std::sync::Arc;

use app::Services;
use app::system::FixedClock;
use domain::{Email, OrgSettings, OrgSlug, Secret};
use store::Store;
use time::{OffsetDateTime, macros::datetime};

pub const NOW: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);

pub struct World {
    pub store: Store,
    pub services: Arc<Services>,
}

impl World {
    /// A new table on DynamoDB Local with the orgs `demo` (USD) and `acme` (AUD), each with an
    /// API key: `demo_key()` and `acme_key()`.
    pub async fn new() -> World {
        let store = devtools::test_store().await;
        let services = runtime::services_over(store.clone(), Arc::new(FixedClock(NOW)));
        let world = World {
            store,
            services: Arc::new(services),
        };
        for (slug, currency) in [
            ("demo", domain::Currency::Usd),
            ("acme", domain::Currency::Aud),
        ] {
            let s = &world.services;
            app::orgs::create_org(
                s.orgs.as_ref(),
                s.users.as_ref(),
                s.clock.as_ref(),
                s.ids.as_ref(),
                app::orgs::NewOrg {
                    slug: OrgSlug::parse(slug).unwrap(),
                    name: format!("{slug} IT"),
                    settings: OrgSettings {
                        default_currency: currency,
                        ..OrgSettings::default()
                    },
                    admin_email: Email::parse(&format!("admin@{slug}.test")).unwrap(),
                    admin_name: "Admin".into(),
                    admin_password: Some(Secret::new("a long enough password".into())),
                },
            )
            .await
            .unwrap();
            app::orgs::issue_api_key(
                s.api_keys.as_ref(),
                s.clock.as_ref(),
                s.ids.as_ref(),
                &OrgSlug::parse(slug).unwrap(),
                "tests",
                Some(Secret::new(Self::key(slug))),
            )
            .await
            .unwrap();
        }
        world
    }

    pub fn key(slug: &str) -> String {
        format!("pbk_{slug}_test_key_000000000000000000000000000")
    }

    pub fn demo_key() -> String {
        Self::key("demo")
    }

    pub fn acme_key() -> String {
        Self::key("acme")
    }
}
