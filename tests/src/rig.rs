//! One world per gateway, for the suites that run once per gateway: the org `demo` configured
//! (through the admin API) for the sandbox, for Stripe on localstripe, or for Authorize.Net on
//! its double, with a webhook secret; tokens made as each gateway's browser script makes them;
//! notifications signed in each gateway's scheme.

use serde_json::{Value, json};

use crate::{World, call};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sandbox,
    Stripe,
    AuthorizeNet,
}

/// The Authorize.Net merchant the double knows (the Transaction Key is 16 characters).
const ANET_LOGIN: &str = "paybridgeTest1";
const ANET_KEY: &str = "4kJd9Wq2Lp7Xz3Mn";

/// What a test card does, whatever the gateway's own test numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Card {
    /// Approved.
    Approve,
    /// Declined by the bank (a generic, soft decline).
    Decline,
}

pub struct Rig {
    pub world: World,
    pub kind: Kind,
    /// The org's Stripe key (Stripe only).
    stripe_key: String,
    /// The org's webhook signing secret for its gateway.
    webhook_secret: String,
    /// The Authorize.Net double (Authorize.Net only).
    pub anet: Option<devtools::AnetDouble>,
}

impl Rig {
    /// The world, with demo on the gateway of `kind`.
    pub async fn new(kind: Kind) -> Rig {
        let anet = (kind == Kind::AuthorizeNet).then(|| {
            let double = devtools::AnetDouble::start();
            double.add_merchant(ANET_LOGIN, ANET_KEY);
            double
        });
        let endpoints = gateways::Endpoints {
            stripe: match kind {
                Kind::Stripe => devtools::localstripe::shared_for_tests(),
                _ => gateways::stripe::STRIPE_API,
            }
            .to_owned(),
            authorize_net: anet.as_ref().map(devtools::AnetDouble::endpoint),
        };
        let world = World::with_gateways_at(endpoints).await;
        let stripe_key = format!("sk_test_pb{}", ulid::Ulid::new().to_string().to_lowercase());
        let webhook_secret = match kind {
            Kind::Sandbox => world.rotate_webhook_secret("demo", None).await,
            Kind::Stripe => {
                let secret = format!("whsec_{}", ulid::Ulid::new());
                let body = json!({
                    "gateway": "stripe",
                    "credentials": {"secret_key": stripe_key},
                    "webhook_secret": secret,
                });
                let (status, view) = world
                    .admin("PUT", "/api/orgs/demo/gateway", Some(body))
                    .await;
                assert_eq!(status, http::StatusCode::OK, "{view}");
                secret
            }
            Kind::AuthorizeNet => {
                // A Signature Key: 128 hex characters, as Authorize.Net shows it.
                let secret = format!("{:032X}", ulid::Ulid::new().0).repeat(4);
                let body = json!({
                    "gateway": "authorize-net",
                    "credentials": {"api_login_id": ANET_LOGIN, "transaction_key": ANET_KEY,
                        "environment": "sandbox"},
                    "webhook_secret": secret,
                });
                let (status, view) = world
                    .admin("PUT", "/api/orgs/demo/gateway", Some(body))
                    .await;
                assert_eq!(status, http::StatusCode::OK, "{view}");
                secret
            }
        };
        Rig {
            world,
            kind,
            stripe_key,
            webhook_secret,
            anet,
        }
    }

    /// The gateway's name on payments.
    pub fn gateway(&self) -> &'static str {
        match self.kind {
            Kind::Sandbox => "sandbox",
            Kind::Stripe => "stripe",
            Kind::AuthorizeNet => "authorize-net",
        }
    }

    /// The gateway's name of its refund notice.
    pub fn refund_event(&self) -> &'static str {
        match self.kind {
            Kind::Sandbox | Kind::Stripe => "charge.refunded",
            Kind::AuthorizeNet => "net.authorize.payment.refund.created",
        }
    }

    /// The day's batch settles at the gateway (Authorize.Net refunds only settled charges; the
    /// others need nothing).
    pub fn settle(&self) {
        if let Some(double) = &self.anet {
            double.settle();
        }
    }

    /// A single-use token for a card that does `card`, as the gateway's script in the payer's
    /// browser makes it.
    pub async fn card(&self, card: Card) -> String {
        match self.kind {
            Kind::Sandbox => {
                let number = match card {
                    Card::Approve => "4242424242424242",
                    Card::Decline => "4000000000000002",
                };
                self.world.card_token(number).await
            }
            Kind::Stripe => {
                let number = match card {
                    Card::Approve => "4242424242424242",
                    // localstripe declines this one when charged (0002 only when attached).
                    Card::Decline => "4000000000000341",
                };
                let pm = self
                    .stripe(
                        "/v1/payment_methods",
                        &[
                            ("type", "card"),
                            ("card[number]", number),
                            ("card[exp_month]", "12"),
                            ("card[exp_year]", "2030"),
                            ("card[cvc]", "123"),
                        ],
                    )
                    .await;
                pm["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{pm}"))
                    .to_owned()
            }
            Kind::AuthorizeNet => {
                // Authorize.Net's sandbox declines 4222222222222 when the amount is 2.00 (the
                // suites' declined invoices are).
                let number = match card {
                    Card::Approve => "4111111111111111",
                    Card::Decline => "4222222222222",
                };
                let double = self.anet.as_ref().expect("the double");
                double.tokenize_card(number, 12, 2030, "123")
            }
        }
    }

    /// Calls localstripe as Stripe.js does (the org's key as basic auth, a form body).
    async fn stripe(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let endpoint = devtools::localstripe::shared_for_tests();
        let response = reqwest::Client::new()
            .post(format!("{endpoint}{path}"))
            .basic_auth(&self.stripe_key, Some(""))
            .form(form)
            .send()
            .await
            .unwrap();
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
    }

    /// Saves a card that does `card` for the signed-in payer of demo: the method's id.
    pub async fn save_card(&self, cookie: &str, card: Card) -> String {
        let token = self.card(card).await;
        self.world.save_token(cookie, &token, "card").await
    }

    /// The gateway's notice that a payment's charge has `refunded` (minor units, all refunds
    /// together), as the gateway would send it, signed: the path, headers and body to post.
    /// `refund_ref` is the gateway's id of the refund.
    pub fn refund_notice(
        &self,
        charge: &str,
        reference: &str,
        refunded: u64,
        refund_ref: &str,
    ) -> (String, Vec<(String, String)>, Vec<u8>) {
        if let Some(double) = &self.anet {
            // Authorize.Net's notification names the refund's transaction, nothing more.
            let body = double.notification("net.authorize.payment.refund.created", refund_ref);
            let value = devtools::AnetDouble::sign_webhook(&self.webhook_secret, &body);
            return (
                "/webhooks/demo/authorize-net".to_owned(),
                vec![("X-ANET-Signature".to_owned(), value)],
                body,
            );
        }
        let now = self.world.services.clock.now().unix_timestamp();
        let (header, body) = match self.kind {
            Kind::AuthorizeNet => unreachable!("answered above"),
            Kind::Sandbox => (
                "Paybridge-Signature",
                json!({
                    "id": format!("evt_{refund_ref}"), "object": "event", "type": "charge.refunded",
                    "created": now,
                    "data": {"object": {"id": charge, "object": "charge", "reference": reference,
                        "amount": refunded, "currency": "USD", "amount_refunded": refunded,
                        "status": "refunded"}},
                }),
            ),
            Kind::Stripe => (
                "Stripe-Signature",
                json!({
                    "id": format!("evt_{refund_ref}"), "object": "event", "type": "charge.refunded",
                    "created": now,
                    "data": {"object": {"id": "ch_x", "object": "charge", "payment_intent": charge,
                        "amount_refunded": refunded, "currency": "usd", "refunded": true,
                        "metadata": {}}},
                }),
            ),
        };
        let body = body.to_string().into_bytes();
        let secret = domain::Secret::new(self.webhook_secret.clone());
        let value = gateways::signature::header_value(std::slice::from_ref(&secret), now, &body);
        (
            format!("/webhooks/demo/{}", self.gateway()),
            vec![(header.to_owned(), value)],
            body,
        )
    }

    /// Posts a signed notification to the webhook function: its status and answer.
    pub async fn deliver(
        &self,
        (path, headers, body): (String, Vec<(String, String)>, Vec<u8>),
    ) -> (http::StatusCode, Value) {
        let router = self.world.local_router();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let (status, _, text) = crate::call_text(
            &router,
            "POST",
            &path,
            &headers,
            Some(("application/json", String::from_utf8(body).unwrap())),
        )
        .await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

impl World {
    /// Calls the admin API of demo with its key.
    pub async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (http::StatusCode, Value) {
        let auth = format!("Bearer {}", World::demo_key());
        let (status, _, answer) = call(
            &self.local_router(),
            method,
            path,
            &[("authorization", &auth)],
            body,
        )
        .await;
        (status, answer)
    }
}
