//! Demo data: the orgs `demo` and `acme`, one admin who belongs to both, API keys and ledger
//! invoices in two currencies. Written only where absent, so restarts keep what people changed.

use app::Services;
use app::ledger::{NewInvoice, NewInvoiceError};
use app::orgs::{NewOrg, SetUpOrgError};
use app::ports::LedgerWriteError;
use domain::{Currency, Email, OrgSettings, OrgSlug, Secret, token_hash};
use time::{Date, Duration};

pub struct Seeded {
    pub admin_email: String,
    pub admin_password: String,
    pub api_keys: Vec<(String, String)>,
    pub demo_invoice: String,
}

struct DemoOrg {
    slug: &'static str,
    name: &'static str,
    currency: Currency,
    key_env: &'static str,
    invoices: &'static [(&'static str, &'static str, &'static str, &'static str, i64)],
}

const ORGS: [DemoOrg; 2] = [
    DemoOrg {
        slug: "demo",
        name: "Demo IT Services",
        currency: Currency::Usd,
        key_env: "DEMO_API_KEY",
        // number, customer id, customer name, total, days since issue
        invoices: &[
            ("INV-1001", "cust-harbor", "Harbor Dental", "1250.00", 20),
            ("INV-1002", "cust-harbor", "Harbor Dental", "89.95", 5),
            (
                "INV-1003",
                "cust-lakeside",
                "Lakeside Accounting",
                "430.10",
                40,
            ),
        ],
    },
    DemoOrg {
        slug: "acme",
        name: "Acme Managed Services",
        currency: Currency::Aud,
        key_env: "ACME_API_KEY",
        invoices: &[
            ("A-2001", "cust-koala", "Koala Logistics", "2200.00", 10),
            ("A-2002", "cust-koala", "Koala Logistics", "310.45", 2),
        ],
    },
];

pub const ADMIN_EMAIL: &str = "admin@demo.test";
/// Local only: the local stack is never deployed, and the password is printed at start.
const DEFAULT_ADMIN_PASSWORD: &str = "paybridge-demo-admin";

fn default_key(slug: &str) -> String {
    format!("pbk_{slug}_local_only_never_deployed_0000000000")
}

pub async fn seed(services: &Services, today: Date) -> Result<Seeded, Box<dyn std::error::Error>> {
    let admin_password =
        std::env::var("DEMO_ADMIN_PASSWORD").unwrap_or_else(|_| DEFAULT_ADMIN_PASSWORD.into());
    let mut api_keys = Vec::new();
    for demo in &ORGS {
        let slug = OrgSlug::parse(demo.slug)?;
        if services.orgs.get_org(&slug).await?.is_none() {
            let new = NewOrg {
                slug: slug.clone(),
                name: demo.name.into(),
                settings: OrgSettings {
                    default_currency: demo.currency,
                    ..OrgSettings::default()
                },
                admin_email: Email::parse(ADMIN_EMAIL)?,
                admin_name: "Demo Admin".into(),
                admin_password: Some(Secret::new(admin_password.clone())),
            };
            let created = app::orgs::create_org(
                services.orgs.as_ref(),
                services.users.as_ref(),
                services.clock.as_ref(),
                services.ids.as_ref(),
                new,
            )
            .await;
            match created {
                Ok(_) | Err(SetUpOrgError::SlugTaken(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let key = std::env::var(demo.key_env).unwrap_or_else(|_| default_key(demo.slug));
        if services
            .api_keys
            .find_api_key(&token_hash(&key))
            .await?
            .is_none()
        {
            app::orgs::issue_api_key(
                services.api_keys.as_ref(),
                services.clock.as_ref(),
                services.ids.as_ref(),
                &slug,
                "local stack",
                Some(Secret::new(key.clone())),
            )
            .await?;
        }
        api_keys.push((demo.key_env.to_owned(), key));
        for (number, customer_id, customer_name, total, age) in demo.invoices {
            let issue_date = today - Duration::days(*age);
            let invoice = NewInvoice {
                invoice_number: (*number).into(),
                customer_id: (*customer_id).into(),
                customer_name: (*customer_name).into(),
                total: (*total).into(),
                currency: None,
                issue_date,
                due_date: issue_date + Duration::days(30),
            };
            let added = app::ledger::add_invoice(
                services.ledger.as_ref(),
                services.clock.as_ref(),
                &slug,
                demo.currency,
                &invoice,
            )
            .await;
            match added {
                Ok(_) | Err(NewInvoiceError::Write(LedgerWriteError::Exists(_))) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Seeded {
        admin_email: ADMIN_EMAIL.into(),
        admin_password,
        api_keys,
        demo_invoice: ORGS[0].invoices[0].0.into(),
    })
}
