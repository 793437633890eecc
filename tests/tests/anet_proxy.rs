//! The Authorize.Net-compatible proxy (ConnectWise's portal), over the sandbox gateway: proxy
//! credentials issued once and revocable, a legacy AIM post answered split by the caller's
//! delimiter and encapsulation, the invoice's balance charged whatever amount was sent, a
//! JSON request replayed by its refId without a second charge, an unknown or paid invoice
//! refused with no charge, wrong credentials E00007 (and throttled), and no card number in the
//! table or a log line.

use http::StatusCode;
use paybridge_tests::{World, call_text, logs};
use serde_json::{Value, json};

const CARD: &str = "4242424242424242";

async fn issue(world: &World) -> (String, String) {
    let (status, issued) = world
        .admin(
            "POST",
            "/api/orgs/demo/anet-credentials",
            Some(json!({"label": "ConnectWise portal"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    assert!(
        issued["api_url"]
            .as_str()
            .unwrap()
            .ends_with("/anet/demo/xml/v1/request.api")
    );
    (
        issued["api_login_id"].as_str().unwrap().to_owned(),
        issued["transaction_key"].as_str().unwrap().to_owned(),
    )
}

/// An AIM post, as the legacy SDKs and (we infer) ConnectWise send it.
async fn aim(world: &World, fields: &[(&str, &str)]) -> Vec<String> {
    let body = serde_urlencoded::to_string(fields).unwrap();
    let (status, headers, text) = call_text(
        &world.local_router(),
        "POST",
        "/anet/demo/gateway/transact.dll",
        &[],
        Some(("application/x-www-form-urlencoded", body)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        headers[http::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    // "|" between fields, each wrapped in '"'.
    text.trim_end()
        .split('|')
        .map(|f| {
            f.strip_prefix('"')
                .and_then(|f| f.strip_suffix('"'))
                .unwrap_or_else(|| panic!("not encapsulated: {f:?} in {text}"))
                .to_owned()
        })
        .collect()
}

fn aim_fields<'a>(login: &'a str, key: &'a str, invoice: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("x_login", login),
        ("x_tran_key", key),
        ("x_version", "3.1"),
        ("x_type", "AUTH_CAPTURE"),
        ("x_method", "CC"),
        ("x_amount", "1.00"),
        ("x_card_num", CARD),
        ("x_exp_date", "12/30"),
        ("x_card_code", "123"),
        ("x_invoice_num", invoice),
        ("x_delim_data", "TRUE"),
        ("x_delim_char", "|"),
        ("x_encap_char", "\""),
        ("x_relay_response", "FALSE"),
    ]
}

/// A JSON request as Authorize.Net's API takes it (keys in the XSD's order).
async fn json_call(world: &World, body: Value) -> Value {
    let (status, _, text) = call_text(
        &world.local_router(),
        "POST",
        "/anet/demo/xml/v1/request.api",
        &[],
        Some(("application/json", body.to_string())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let text = text
        .strip_prefix('\u{feff}')
        .expect("a byte-order mark first, as Authorize.Net sends");
    serde_json::from_str(text).unwrap()
}

fn sale(login: &str, key: &str, ref_id: &str, invoice: &str, amount: &str) -> Value {
    json!({"createTransactionRequest": {
        "merchantAuthentication": {"name": login, "transactionKey": key},
        "refId": ref_id,
        "transactionRequest": {
            "transactionType": "authCaptureTransaction",
            "amount": amount,
            "payment": {"creditCard": {"cardNumber": CARD, "expirationDate": "2030-12", "cardCode": "123"}},
            "order": {"invoiceNumber": invoice, "description": "ConnectWise invoice"},
            "customer": {"email": "pat@harbor.test"}
        }
    }})
}

async fn charges(world: &World) -> usize {
    world.sandbox().charges(1000).await.unwrap().len()
}

#[tokio::test]
async fn the_proxy_charges_the_real_balance_once_and_refuses_what_it_cannot() {
    let (captured, _logging) = logs::capture();
    let world = World::new().await;
    world.add_invoice("demo", "INV-CW1", "250.00").await;
    world.add_invoice("demo", "INV-CW2", "80.00").await;
    let (login, key) = issue(&world).await;
    let (_, listed) = world
        .admin("GET", "/api/orgs/demo/anet-credentials", None)
        .await;
    assert_eq!(listed[0]["api_login_id"], login.as_str());
    assert!(listed[0].get("transaction_key").is_none(), "{listed}");

    // AIM: 1.00 was posted; the invoice's balance is charged, and the line says so.
    let line = aim(&world, &aim_fields(&login, &key, "INV-CW1")).await;
    assert!(line.len() >= 55, "{line:?}");
    assert_eq!(line[0], "1", "approved: {line:?}");
    assert_eq!(line[7], "INV-CW1");
    assert_eq!(line[9], "250.00", "the amount charged");
    assert_eq!(line[50], "XXXX4242");
    assert_eq!(line[53], "1.00", "the amount asked for");
    assert_eq!(world.balance("demo", "INV-CW1").await, "0.00");
    assert_eq!(charges(&world).await, 1);

    // JSON with a refId: charged once, however often it is sent.
    let first = json_call(&world, sale(&login, &key, "cw-77", "INV-CW2", "9.99")).await;
    assert_eq!(first["messages"]["resultCode"], "Ok", "{first}");
    assert_eq!(first["refId"], "cw-77");
    assert_eq!(first["transactionResponse"]["responseCode"], "1", "{first}");
    assert_eq!(first["transactionResponse"]["accountNumber"], "XXXX4242");
    let again = json_call(&world, sale(&login, &key, "cw-77", "INV-CW2", "9.99")).await;
    assert_eq!(again, first);
    assert_eq!(charges(&world).await, 2);
    assert_eq!(world.balance("demo", "INV-CW2").await, "0.00");

    // Paid or unknown invoices: an error answer, no charge.
    for invoice in ["INV-CW2", "INV-NOPE"] {
        let answer = json_call(&world, sale(&login, &key, "cw-78", invoice, "5.00")).await;
        assert_eq!(answer["messages"]["resultCode"], "Error", "{answer}");
        assert_eq!(
            answer["transactionResponse"]["responseCode"], "3",
            "{answer}"
        );
        let text = answer["transactionResponse"]["errors"][0]["errorText"].to_string();
        assert!(text.contains(invoice), "{text}");
    }
    assert_eq!(charges(&world).await, 2);

    // authOnly is not something the proxy does: said clearly.
    let mut auth_only = sale(&login, &key, "cw-79", "INV-CW1", "5.00");
    auth_only["createTransactionRequest"]["transactionRequest"]["transactionType"] =
        json!("authOnlyTransaction");
    let answer = json_call(&world, auth_only).await;
    assert_eq!(answer["messages"]["resultCode"], "Error");
    let text = answer["transactionResponse"]["errors"][0]["errorText"].to_string();
    assert!(text.contains("authOnlyTransaction"), "{text}");

    // Wrong credentials: Authorize.Net's E00007, on the API and on AIM.
    let wrong = json_call(
        &world,
        sale(&login, "0000000000000000", "cw-80", "INV-CW1", "5.00"),
    )
    .await;
    assert_eq!(wrong["messages"]["message"][0]["code"], "E00007", "{wrong}");
    let line = aim(&world, &aim_fields("nobody", "0000000000000000", "INV-CW1")).await;
    assert_eq!(line[0], "3", "{line:?}");
    let test = json_call(
        &world,
        json!({"authenticateTestRequest": {"merchantAuthentication": {"name": login, "transactionKey": key}}}),
    )
    .await;
    assert_eq!(test["messages"]["resultCode"], "Ok", "{test}");

    // Revoked: refused from the next request.
    let (status, _) = world
        .admin(
            "DELETE",
            &format!("/api/orgs/demo/anet-credentials/{login}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let test = json_call(
        &world,
        json!({"authenticateTestRequest": {"merchantAuthentication": {"name": login, "transactionKey": key}}}),
    )
    .await;
    assert_eq!(test["messages"]["message"][0]["code"], "E00007");

    // No card number anywhere it could stay.
    let items = world.table_text().await;
    assert!(!items.contains(CARD), "a card number is in the table");
    assert!(!items.contains(&key), "a transaction key is in the table");
    logs::assert_absent(&captured.text(), "the card number", CARD);
    logs::assert_absent(&captured.text(), "the transaction key", &key);
}

#[tokio::test]
async fn wrong_credentials_are_throttled_per_address() {
    let world = World::new().await;
    let (login, key) = issue(&world).await;
    let router = world.local_router();
    let client: std::net::SocketAddr = "198.51.100.7:5000".parse().unwrap();
    let authenticate = |key: String| {
        let router = router.clone();
        let login = login.clone();
        async move {
            let body = json!({"authenticateTestRequest": {"merchantAuthentication": {"name": login, "transactionKey": key}}});
            let (status, _, answer) = paybridge_tests::call_from(
                &router,
                Some(client),
                "POST",
                "/anet/demo/xml/v1/request.api",
                &[],
                Some(body),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            // call_from reads JSON: a BOM makes it a string.
            let text = answer
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| answer.to_string());
            let text = text.trim_start_matches('\u{feff}').to_owned();
            let answer: Value = serde_json::from_str(&text).unwrap();
            answer["messages"]["message"][0]["code"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    for _ in 0..app::anet_proxy::FAILURES_PER_CLIENT {
        assert_eq!(authenticate("0000000000000000".into()).await, "E00007");
    }
    // Past the limit, even the right key is refused from that address for a while.
    assert_eq!(authenticate(key.clone()).await, "E00007");
}

/// Authorize.Net's own Python SDK (PyPI `authorizenet`, which parses answers strictly against
/// the XSD with pyxb), pointed at the proxy with the org's proxy credentials, charges a demo
/// invoice: it sent 1.00, the invoice's balance was charged, and the SDK read the answer
/// without falling back to its lenient parser. Its `authenticateTestRequest` passes; a wrong
/// key gets E00007.
#[tokio::test]
async fn authorize_nets_python_sdk_pays_a_demo_invoice_through_the_proxy() {
    let world = World::new().await;
    world.add_invoice("demo", "INV-SDK", "125.50").await;
    let (login, key) = issue(&world).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/anet/demo/xml/v1/request.api",
        listener.local_addr().unwrap()
    );
    let router = world
        .local_router()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let run = |key: String| {
        let (url, login) = (url.clone(), login.clone());
        tokio::task::spawn_blocking(move || {
            devtools::anet_sdk::run_script(
                SDK_SCRIPT,
                &[
                    ("PROXY_URL", &url),
                    ("LOGIN", &login),
                    ("KEY", &key),
                    ("INVOICE", "INV-SDK"),
                ],
            )
        })
    };
    let out = run(key.clone()).await.unwrap().unwrap();
    let answer: Value = serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("{out}"));
    assert_eq!(answer["authenticate"], "Ok", "{answer}");
    assert_eq!(answer["strict"], true, "pyxb read every answer: {answer}");
    assert_eq!(answer["result"], "Ok", "{answer}");
    assert_eq!(answer["response_code"], "1", "{answer}");
    assert_eq!(answer["account_number"], "XXXX4242");
    assert_eq!(answer["approved_amount"], "125.50", "{answer}");
    assert_eq!(world.balance("demo", "INV-SDK").await, "0.00");
    assert_eq!(charges(&world).await, 1);
    let charged = world.sandbox().charges(10).await.unwrap();
    assert_eq!(charged[0].amount.amount_string(), "125.50");

    let out = run("0000000000000000".into()).await.unwrap().unwrap();
    let answer: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(answer["authenticate_code"], "E00007", "{answer}");
    server.abort();
}

const SDK_SCRIPT: &str = r#"
import json, os
from decimal import Decimal
from authorizenet import apicontractsv1
from authorizenet.apicontrollers import authenticateTestController, createTransactionController

url, login, key = os.environ["PROXY_URL"], os.environ["LOGIN"], os.environ["KEY"]
auth = apicontractsv1.merchantAuthenticationType()
auth.name = login
auth.transactionKey = key
out = {}

test = apicontractsv1.authenticateTestRequest()
test.merchantAuthentication = auth
controller = authenticateTestController(test)
controller.setenvironment(url)
controller.execute()
answer = controller.getresponse()
out["authenticate"] = str(answer.messages.resultCode)
out["authenticate_code"] = str(answer.messages.message[0]["code"].text)
strict = getattr(controller, "_response", None) is not None

if out["authenticate"] == "Ok":
    card = apicontractsv1.creditCardType()
    card.cardNumber = "4242424242424242"
    card.expirationDate = "2030-12"
    card.cardCode = "123"
    payment = apicontractsv1.paymentType()
    payment.creditCard = card
    order = apicontractsv1.orderType()
    order.invoiceNumber = os.environ["INVOICE"]
    order.description = "ConnectWise portal"
    request = apicontractsv1.transactionRequestType()
    request.transactionType = "authCaptureTransaction"
    request.amount = Decimal("1.00")
    request.payment = payment
    request.order = order
    sale = apicontractsv1.createTransactionRequest()
    sale.merchantAuthentication = auth
    sale.refId = "sdk-1"
    sale.transactionRequest = request
    controller = createTransactionController(sale)
    controller.setenvironment(url)
    controller.execute()
    strict = strict and getattr(controller, "_response", None) is not None
    answer = controller.getresponse()
    out["result"] = str(answer.messages.resultCode)
    t = answer.transactionResponse
    out["response_code"] = str(t.responseCode)
    out["account_number"] = str(t.accountNumber)
    out["trans_id"] = str(t.transId)
    if hasattr(t, "prePaidCard"):
        # pyxb gives a decimal back normalised ("125.5").
        out["approved_amount"] = "%.2f" % Decimal(str(t.prePaidCard.approvedAmount))
out["strict"] = strict
print(json.dumps(out))
"#;

/// The proxy charges through the org's own gateway: an org on Authorize.Net gets a
/// `createTransactionRequest` with the card at its merchant account (checked against the XSD by
/// the double), an org on Stripe a PaymentMethod made from the card (Stripe's raw card API) and a
/// PaymentIntent, each for the invoice's balance.
#[tokio::test]
async fn the_proxy_charges_through_the_orgs_own_gateway() {
    use paybridge_tests::rig::{Kind, Rig};
    for kind in [Kind::AuthorizeNet, Kind::Stripe] {
        let rig = Rig::new(kind).await;
        let world = &rig.world;
        world.add_invoice("demo", "INV-GW1", "310.00").await;
        let (login, key) = issue(world).await;
        let mut fields = aim_fields(&login, &key, "INV-GW1");
        let number = if kind == Kind::AuthorizeNet {
            "4111111111111111"
        } else {
            CARD
        };
        fields.retain(|(k, _)| *k != "x_card_num");
        fields.push(("x_card_num", number));
        let line = aim(world, &fields).await;
        assert_eq!(line[0], "1", "{kind:?}: {line:?}");
        assert_eq!(line[9], "310.00", "{kind:?}");
        assert_eq!(world.balance("demo", "INV-GW1").await, "0.00", "{kind:?}");
        if let Some(double) = &rig.anet {
            let sent = double.requests_of("createTransactionRequest");
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0]["transactionRequest"]["amount"], "310.00");
            assert_eq!(
                sent[0]["transactionRequest"]["payment"]["creditCard"]["expirationDate"],
                "2030-12"
            );
            // The gateway's transaction id is the one the caller gets.
            assert_eq!(line[6], double.transactions()[0].trans_id, "{line:?}");
        }
    }
}
