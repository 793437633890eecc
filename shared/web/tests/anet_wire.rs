//! The Authorize.Net wire formats of the ConnectWise proxy: requests read in every format,
//! answers checked against the official XSD (`shared/devtools/fixtures/AnetApiSchema.xsd`,
//! parsed here with quick-xml), and card data kept out of every error and `Debug`.

use std::collections::HashSet;

use web::anet_wire::{
    AimStyle, Answer, AnswerKind, Call, Format, Request, TransactionAnswer, WireError, read,
    read_aim, write,
};

const XSD: &str = include_str!("../../devtools/fixtures/AnetApiSchema.xsd");
const XML_REQUEST: &str = include_str!("fixtures/anet/create_transaction_request.xml");
const BOM: &[u8] = b"\xEF\xBB\xBF";
const NUMBER: &str = "4111111111111111";
const CODE: &str = "987";

fn json_request(transaction_type: &str, payment: &str, expiry: &str) -> String {
    format!(
        r#"{{"createTransactionRequest":{{"merchantAuthentication":{{"name":"pb_login","transactionKey":"Pk7Hq2Lm9Xz4Wc3v"}},"refId":"ref-1","transactionRequest":{{"transactionType":"{transaction_type}","amount":"125.50","payment":{payment},"order":{{"invoiceNumber":"INV-7","description":"Support"}},"customer":{{"id":"C-9","email":"ap@example.com"}}}}}}}}"#
    )
    .replace("EXPIRY", expiry)
}

fn card_payment() -> String {
    format!(
        r#"{{"creditCard":{{"cardNumber":"{NUMBER}","expirationDate":"EXPIRY","cardCode":"{CODE}"}}}}"#
    )
}

fn charge_of(request: &Request) -> &web::anet_wire::ChargeCall {
    match &request.call {
        Call::Charge(charge) => charge,
        other => panic!("not a charge: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

#[test]
fn json_with_and_without_bom() {
    let body = json_request("authCaptureTransaction", &card_payment(), "2035-12");
    let mut with_bom = BOM.to_vec();
    with_bom.extend_from_slice(body.as_bytes());
    for (content_type, bytes) in [
        (Some("application/json"), body.as_bytes().to_vec()),
        (Some("application/json; charset=utf-8"), with_bom.clone()),
        (None, with_bom),
        (Some("text/plain"), body.as_bytes().to_vec()),
    ] {
        let request = read(content_type, &bytes).expect("a JSON request");
        assert_eq!(request.format, Format::Json);
        assert_eq!(request.ref_id.as_deref(), Some("ref-1"));
        let credentials = request.credentials.as_ref().expect("credentials");
        assert_eq!(credentials.login, "pb_login");
        assert_eq!(credentials.key.expose(), "Pk7Hq2Lm9Xz4Wc3v");
        let charge = charge_of(&request);
        assert_eq!(charge.amount, "125.50");
        assert_eq!(charge.card.number.expose(), NUMBER);
        assert_eq!((charge.card.exp_month, charge.card.exp_year), (12, 2035));
        assert_eq!(
            charge.card.code.as_ref().map(|c| c.expose().as_str()),
            Some(CODE)
        );
        assert_eq!(charge.invoice_number.as_deref(), Some("INV-7"));
        assert_eq!(charge.description.as_deref(), Some("Support"));
        assert_eq!(charge.email.as_deref(), Some("ap@example.com"));
        assert_eq!(charge.customer_id.as_deref(), Some("C-9"));
    }
}

#[test]
fn json_amount_as_a_number_is_read_as_sent() {
    let body = json_request("authCaptureTransaction", &card_payment(), "1235")
        .replace(r#""amount":"125.50""#, r#""amount":125.5"#);
    let request = read(Some("application/json"), body.as_bytes()).unwrap();
    assert_eq!(charge_of(&request).amount, "125.5");
}

#[test]
fn xml_as_the_python_sdk_sends_it() {
    // The fixture is itself valid against the XSD (order, required elements).
    let schema = Xsd::parse(XSD);
    let doc = parse_xml(XML_REQUEST.as_bytes());
    schema.check_xml(&doc).expect("the fixture meets the XSD");

    let request = read(Some("application/xml"), XML_REQUEST.as_bytes()).unwrap();
    assert_eq!(request.format, Format::Xml);
    assert_eq!(request.ref_id.as_deref(), Some("MerchantID-0001"));
    let credentials = request.credentials.as_ref().unwrap();
    assert_eq!(credentials.login, "pb_proxy_login");
    assert_eq!(credentials.key.expose(), "Pk7Hq2Lm9Xz4Wc3v");
    let charge = charge_of(&request);
    assert_eq!(charge.amount, "125.50");
    assert_eq!(charge.card.number.expose(), NUMBER);
    assert_eq!((charge.card.exp_month, charge.card.exp_year), (12, 2035));
    assert_eq!(charge.card.code.as_ref().unwrap().expose(), CODE);
    assert_eq!(charge.invoice_number.as_deref(), Some("INV-10101"));
    assert_eq!(
        charge.description.as_deref(),
        Some("Invoice 10101 & support")
    );
    assert_eq!(charge.email.as_deref(), Some("ap@example.com"));
    assert_eq!(charge.customer_id.as_deref(), Some("99999456654"));

    // Prefixed, with a BOM, and without a content type: the same.
    let prefixed = XML_REQUEST
        .replace(
            "<createTransactionRequest xmlns=",
            "<a:createTransactionRequest xmlns:a=",
        )
        .replace(
            "</createTransactionRequest>",
            "</a:createTransactionRequest>",
        );
    let mut bytes = BOM.to_vec();
    bytes.extend_from_slice(prefixed.as_bytes());
    assert_eq!(read(None, &bytes).unwrap(), request);
}

/// Bytes the `authorizenet` 1.1.6 package (PyPI) posted: its pyxb output, as it sends it.
#[test]
fn xml_captured_from_the_python_sdk() {
    let schema = Xsd::parse(XSD);
    let charge = include_bytes!("fixtures/anet/python_sdk_create_transaction.xml");
    schema
        .check_xml(&parse_xml(charge))
        .expect("the SDK meets the XSD");
    let request = read(Some("application/xml"), charge).unwrap();
    assert_eq!(
        request.credentials.as_ref().unwrap().login,
        "pb_proxy_login"
    );
    assert_eq!(request.ref_id.as_deref(), Some("MerchantID-0001"));
    let call = charge_of(&request);
    assert_eq!(call.amount, "125.5");
    assert_eq!(call.card.number.expose(), NUMBER);
    assert_eq!(call.card.code.as_ref().unwrap().expose(), CODE);
    assert_eq!(call.invoice_number.as_deref(), Some("INV-10101"));

    let test = include_bytes!("fixtures/anet/python_sdk_authenticate_test.xml");
    let request = read(Some("application/xml"), test).unwrap();
    assert_eq!(request.call, Call::Authenticate);
    assert_eq!(
        request.credentials.unwrap().key.expose(),
        "Pk7Hq2Lm9Xz4Wc3v"
    );
}

#[test]
fn xml_unknown_elements_are_skipped() {
    let body = XML_REQUEST.replace(
        "<amount>",
        "<somethingNew><deep>1</deep></somethingNew><amount>",
    );
    let request = read(Some("text/xml"), body.as_bytes()).unwrap();
    assert_eq!(charge_of(&request).amount, "125.50");
}

#[test]
fn authenticate_test_request_in_json_and_xml() {
    let json = r#"{"authenticateTestRequest":{"merchantAuthentication":{"name":"pb_login","transactionKey":"k"}}}"#;
    let request = read(Some("application/json"), json.as_bytes()).unwrap();
    assert_eq!(request.call, Call::Authenticate);
    assert_eq!(request.credentials.unwrap().login, "pb_login");

    let xml = r#"<?xml version="1.0" encoding="utf-8"?><authenticateTestRequest xmlns="AnetApi/xml/v1/schema/AnetApiSchema.xsd"><merchantAuthentication><name>pb_login</name><transactionKey>k</transactionKey></merchantAuthentication><clientId>sdk-python-1.1.6</clientId></authenticateTestRequest>"#;
    let request = read(Some("application/xml"), xml.as_bytes()).unwrap();
    assert_eq!(request.call, Call::Authenticate);
    assert_eq!(request.format, Format::Xml);
    assert_eq!(request.credentials.unwrap().key.expose(), "k");
}

#[test]
fn other_requests_types_and_payments_are_unsupported() {
    let card = card_payment();
    for (transaction_type, payment, what) in [
        ("authOnlyTransaction", card.as_str(), "authOnlyTransaction"),
        ("refundTransaction", card.as_str(), "refundTransaction"),
        (
            "authCaptureTransaction",
            r#"{"opaqueData":{"dataDescriptor":"COMMON.ACCEPT.INAPP.PAYMENT","dataValue":"x"}}"#,
            "opaqueData",
        ),
        (
            "authCaptureTransaction",
            r#"{"bankAccount":{"routingNumber":"121042882","accountNumber":"4444444444","nameOnAccount":"A"}}"#,
            "bankAccount",
        ),
    ] {
        let body = json_request(transaction_type, payment, "1235");
        let request = read(None, body.as_bytes()).unwrap();
        assert_eq!(request.call, Call::Unsupported(what.to_owned()));
    }
    let profile = json_request("authCaptureTransaction", "null", "1235").replace(
        r#""payment":null"#,
        r#""profile":{"customerProfileId":"1","paymentProfile":{"paymentProfileId":"2"}}"#,
    );
    assert_eq!(
        read(None, profile.as_bytes()).unwrap().call,
        Call::Unsupported("profile".to_owned())
    );
    let xml = XML_REQUEST.replace("authCaptureTransaction", "authOnlyTransaction");
    assert_eq!(
        read(None, xml.as_bytes()).unwrap().call,
        Call::Unsupported("authOnlyTransaction".to_owned())
    );
    let other = r#"{"getTransactionDetailsRequest":{"merchantAuthentication":{"name":"a","transactionKey":"b"},"transId":"1"}}"#;
    assert_eq!(
        read(None, other.as_bytes()).unwrap().call,
        Call::Unsupported("getTransactionDetailsRequest".to_owned())
    );
    let numeric_type = format!("x_type={NUMBER}&x_amount=1.00");
    for (form, what) in [
        ("x_type=AUTH_ONLY&x_amount=1.00", "AUTH_ONLY"),
        ("x_type=auth_only&x_amount=1.00", "AUTH_ONLY"),
        ("x_method=ECHECK&x_amount=1.00&x_bank_acct_num=1", "ECHECK"),
        (numeric_type.as_str(), "unrecognised"),
    ] {
        assert_eq!(
            read_aim(form.as_bytes()).unwrap().call,
            Call::Unsupported(what.to_owned())
        );
    }
}

#[test]
fn missing_credentials_are_none() {
    let body = json_request("authCaptureTransaction", &card_payment(), "1235");
    let without = body.replace(
        r#""merchantAuthentication":{"name":"pb_login","transactionKey":"Pk7Hq2Lm9Xz4Wc3v"},"#,
        "",
    );
    assert!(
        read(None, without.as_bytes())
            .unwrap()
            .credentials
            .is_none()
    );
    let no_key = body.replace(r#","transactionKey":"Pk7Hq2Lm9Xz4Wc3v""#, "");
    assert!(read(None, no_key.as_bytes()).unwrap().credentials.is_none());
    let session = body.replace(r#""transactionKey""#, r#""sessionToken""#);
    assert!(
        read(None, session.as_bytes())
            .unwrap()
            .credentials
            .is_none()
    );
    let xml = XML_REQUEST.replace("<transactionKey>Pk7Hq2Lm9Xz4Wc3v</transactionKey>", "");
    assert!(read(None, xml.as_bytes()).unwrap().credentials.is_none());
    let form = format!("x_login=pb_login&x_amount=1.00&x_card_num={NUMBER}&x_exp_date=1235");
    assert!(read_aim(form.as_bytes()).unwrap().credentials.is_none());
}

#[test]
fn expiry_formats() {
    for (sent, month, year) in [
        ("1235", 12, 2035),
        ("12/35", 12, 2035),
        ("12-35", 12, 2035),
        ("2035-12", 12, 2035),
        ("122035", 12, 2035),
        ("12/2035", 12, 2035),
        ("0430", 4, 2030),
        (" 04/30 ", 4, 2030),
    ] {
        let body = json_request("authCaptureTransaction", &card_payment(), sent);
        let request = read(None, body.as_bytes()).unwrap();
        let card = &charge_of(&request).card;
        assert_eq!((card.exp_month, card.exp_year), (month, year), "{sent}");
    }
    for bad in [
        "1335",
        "0035",
        "12/3",
        "2035/12",
        "20351",
        "XXXX",
        "12-2035-1",
        "1a35",
        "+1/35",
        "",
    ] {
        let body = json_request("authCaptureTransaction", &card_payment(), bad);
        let err = read(None, body.as_bytes()).unwrap_err();
        let field = if bad.is_empty() {
            assert!(matches!(err, WireError::Missing { .. }), "{bad}: {err:?}");
            continue;
        } else {
            "transactionRequest.payment.creditCard.expirationDate"
        };
        assert!(
            matches!(&err, WireError::Invalid { field: f, .. } if *f == field),
            "{bad}: {err:?}"
        );
        assert!(err.to_string().contains("expirationDate"), "{err}");
        let form = format!("x_amount=1.00&x_card_num={NUMBER}&x_exp_date={bad}");
        let err = read_aim(form.as_bytes()).unwrap_err();
        assert!(err.to_string().starts_with("x_exp_date"), "{err}");
    }
}

#[test]
fn aim_with_pipe_and_quote_is_answered_split_by_them() {
    let form = format!(
        "x_login=pb_login&x_tran_key=Pk7Hq2Lm9Xz4Wc3v&x_version=3.1&x_delim_data=TRUE\
         &x_delim_char=%7C&x_encap_char=%22&x_relay_response=FALSE&x_type=AUTH_CAPTURE&x_method=CC\
         &x_amount=125.50&x_card_num={NUMBER}&x_exp_date=12%2F35&x_card_code={CODE}\
         &x_invoice_num=INV-7&x_description=Support&x_email=ap%40example.com&x_cust_id=C-9\
         &cw_session=abc123&portal=new"
    );
    let request = read(Some("application/x-www-form-urlencoded"), form.as_bytes()).unwrap();
    assert_eq!(request, read_aim(form.as_bytes()).unwrap());
    let Format::Aim(style) = &request.format else {
        panic!("AIM")
    };
    assert_eq!(style.delim_char, '|');
    assert_eq!(style.encap_char, Some('"'));
    assert!(style.delim_data);
    assert_eq!(
        style.custom,
        [
            ("cw_session".to_owned(), "abc123".to_owned()),
            ("portal".to_owned(), "new".to_owned())
        ]
    );
    let credentials = request.credentials.as_ref().unwrap();
    assert_eq!(credentials.login, "pb_login");
    let charge = charge_of(&request);
    assert_eq!(charge.amount, "125.50");
    assert_eq!(charge.card.number.expose(), NUMBER);
    assert_eq!((charge.card.exp_month, charge.card.exp_year), (12, 2035));
    assert_eq!(charge.invoice_number.as_deref(), Some("INV-7"));
    assert_eq!(charge.email.as_deref(), Some("ap@example.com"));
    assert_eq!(charge.customer_id.as_deref(), Some("C-9"));

    let (content_type, body) = write(
        &request.format,
        AnswerKind::CreateTransaction,
        None,
        &approved(),
    );
    assert_eq!(content_type, "text/plain");
    let line = String::from_utf8(body).unwrap();
    assert!(!line.contains('\n'));
    let fields = aim_fields(&line, '|', Some('"'));
    assert_eq!(fields.len(), 57);
    assert_eq!(fields[0], "1");
    assert_eq!(fields[1], "1");
    assert_eq!(fields[2], "1");
    assert_eq!(fields[3], "This transaction has been approved.");
    assert_eq!(fields[4], "A1B2C3");
    assert_eq!(fields[5], "Y");
    assert_eq!(fields[6], "60123456789");
    assert_eq!(fields[7], "INV-7");
    assert_eq!(fields[8], "Support");
    assert_eq!(fields[9], "125.50");
    assert_eq!(fields[10], "CC");
    assert_eq!(fields[11], "auth_capture");
    assert_eq!(fields[12], "C-9");
    assert_eq!(fields[23], "ap@example.com");
    assert_eq!(fields[37], "");
    assert_eq!(fields[38], "M");
    assert_eq!(fields[39], "2");
    assert_eq!(fields[50], "XXXX1111");
    assert_eq!(fields[51], "Visa");
    assert_eq!(fields[53], "");
    assert_eq!(&fields[55..], ["abc123", "new"]);
}

#[test]
fn aim_defaults_comma_and_no_encapsulation() {
    let form = format!("x_login=l&x_tran_key=k&x_amount=5.00&x_card_num={NUMBER}&x_exp_date=0435");
    let request = read_aim(form.as_bytes()).unwrap();
    assert_eq!(
        request.format,
        Format::Aim(AimStyle {
            delim_data: true,
            delim_char: ',',
            encap_char: None,
            custom: Vec::new(),
        })
    );
    assert_eq!(charge_of(&request).card.exp_month, 4);
    let (_, body) = write(
        &request.format,
        AnswerKind::CreateTransaction,
        None,
        &declined(),
    );
    let line = String::from_utf8(body).unwrap();
    let fields: Vec<&str> = line.split(',').collect();
    assert_eq!(fields.len(), 55);
    assert_eq!(
        &fields[..4],
        ["2", "1", "2", "This transaction has been declined."]
    );
    assert_eq!(fields[6], "60123456790");
    assert_eq!(fields[50], "XXXX0015");
    assert_eq!(fields[51], "MasterCard");

    // No delimited data asked for, or a relay: the same line (we never relay).
    let relay = format!("{form}&x_delim_data=FALSE&x_relay_response=TRUE&x_relay_url=https://x");
    let request = read_aim(relay.as_bytes()).unwrap();
    let Format::Aim(style) = &request.format else {
        panic!("AIM")
    };
    assert!(!style.delim_data);
    let (_, again) = write(
        &request.format,
        AnswerKind::CreateTransaction,
        None,
        &declined(),
    );
    assert_eq!(String::from_utf8(again).unwrap(), line);
}

#[test]
fn aim_values_lose_the_delimiter_and_encapsulation_characters() {
    let style = Format::Aim(AimStyle {
        delim_data: true,
        delim_char: '|',
        encap_char: Some('"'),
        custom: vec![("note".to_owned(), "a|b\"c\r\nd".to_owned())],
    });
    let mut answer = approved();
    if let Some(t) = answer.transaction.as_mut() {
        t.description = Some("Invoice \"7\" | support".to_owned());
    }
    let (_, body) = write(&style, AnswerKind::CreateTransaction, None, &answer);
    let fields = aim_fields(std::str::from_utf8(&body).unwrap(), '|', Some('"'));
    assert_eq!(fields.len(), 56);
    assert_eq!(fields[8], "Invoice 7  support");
    assert_eq!(fields[55], "abcd");
}

#[test]
fn aim_errors_are_full_lines() {
    // A refusal without a transaction (bad proxy credentials).
    let style = Format::Aim(AimStyle::default());
    let (_, body) = write(&style, AnswerKind::CreateTransaction, None, &auth_failed());
    let line = String::from_utf8(body).unwrap();
    let fields: Vec<&str> = line.split(',').collect();
    assert_eq!(fields.len(), 55);
    assert_eq!(&fields[..3], ["3", "1", "13"]);
    assert_eq!(fields[6], "0");

    // An unreadable AIM post: its own delimiter, reason 33 for a blank field.
    let form = "x_delim_char=%7C&x_encap_char=%22&x_amount=1.00&x_exp_date=1235&portal=new";
    let err = read_aim(form.as_bytes()).unwrap_err();
    assert_eq!(err.to_string(), "x_card_num is missing");
    let (_, body) = write(&err.format(), AnswerKind::Error, None, &err.answer());
    let fields = aim_fields(std::str::from_utf8(&body).unwrap(), '|', Some('"'));
    assert_eq!(fields.len(), 56);
    assert_eq!(
        &fields[..4],
        ["3", "1", "33", "x_card_num cannot be left blank."]
    );
    assert_eq!(fields[55], "new");

    // Reason codes stay numeric whatever the caller's answer says.
    let refusal = Answer {
        ok: false,
        messages: unsuccessful(),
        transaction: Some(TransactionAnswer {
            response_code: 3,
            errors: vec![("PB1".to_owned(), "Only card sales.".to_owned())],
            ..TransactionAnswer::default()
        }),
    };
    let (_, body) = write(&style, AnswerKind::CreateTransaction, None, &refusal);
    assert!(body.starts_with(b"3,1,103,Only card sales.,,,0,"));

    let err = read_aim(b"x_exp_date=1235&x_card_num=4111111111111111").unwrap_err();
    let (_, body) = write(&err.format(), AnswerKind::Error, None, &err.answer());
    assert!(body.starts_with(b"3,1,5,A valid amount is required.,"));
}

// ---------------------------------------------------------------------------------------------
// Answers

fn transaction(code: u8) -> TransactionAnswer {
    TransactionAnswer {
        response_code: code,
        auth_code: "A1B2C3".to_owned(),
        avs_code: "Y".to_owned(),
        cvv_code: "M".to_owned(),
        cavv_code: "2".to_owned(),
        trans_id: "60123456789".to_owned(),
        account_number: "XXXX1111".to_owned(),
        account_type: "Visa".to_owned(),
        amount: Some("125.50".to_owned()),
        requested_amount: Some("125.50".to_owned()),
        invoice_number: Some("INV-7".to_owned()),
        description: Some("Support".to_owned()),
        customer_id: Some("C-9".to_owned()),
        email: Some("ap@example.com".to_owned()),
        messages: Vec::new(),
        errors: Vec::new(),
    }
}

fn ok_messages() -> Vec<(String, String)> {
    vec![("I00001".to_owned(), "Successful.".to_owned())]
}

fn unsuccessful() -> Vec<(String, String)> {
    vec![(
        "E00027".to_owned(),
        "The transaction was unsuccessful.".to_owned(),
    )]
}

fn approved() -> Answer {
    let mut t = transaction(1);
    t.messages = vec![(
        "1".to_owned(),
        "This transaction has been approved.".to_owned(),
    )];
    Answer {
        ok: true,
        messages: ok_messages(),
        transaction: Some(t),
    }
}

fn declined() -> Answer {
    let mut t = transaction(2);
    t.auth_code = "000000".to_owned();
    t.avs_code = "P".to_owned();
    t.cvv_code = String::new();
    t.cavv_code = String::new();
    t.trans_id = "60123456790".to_owned();
    t.account_number = "XXXX0015".to_owned();
    t.account_type = "MasterCard".to_owned();
    t.errors = vec![(
        "2".to_owned(),
        "This transaction has been declined.".to_owned(),
    )];
    Answer {
        ok: false,
        messages: unsuccessful(),
        transaction: Some(t),
    }
}

fn error() -> Answer {
    let mut t = transaction(3);
    t.auth_code = String::new();
    t.avs_code = "P".to_owned();
    t.trans_id = "0".to_owned();
    t.account_type = "AmericanExpress".to_owned();
    t.errors = vec![(
        "6".to_owned(),
        "The credit card number is invalid.".to_owned(),
    )];
    Answer {
        ok: false,
        messages: unsuccessful(),
        transaction: Some(t),
    }
}

/// Held for review, and the invoice's real balance charged rather than what was asked.
fn held() -> Answer {
    let mut t = transaction(4);
    t.amount = Some("99.00".to_owned());
    t.messages = vec![(
        "253".to_owned(),
        "Your order has been received. Thank you for your business!".to_owned(),
    )];
    Answer {
        ok: true,
        messages: ok_messages(),
        transaction: Some(t),
    }
}

fn auth_failed() -> Answer {
    Answer {
        ok: false,
        messages: vec![(
            "E00007".to_owned(),
            "User authentication failed due to invalid authentication values.".to_owned(),
        )],
        transaction: None,
    }
}

fn all_answers() -> Vec<(&'static str, AnswerKind, Option<&'static str>, Answer)> {
    vec![
        (
            "approved",
            AnswerKind::CreateTransaction,
            Some("ref-1"),
            approved(),
        ),
        (
            "declined",
            AnswerKind::CreateTransaction,
            Some("ref-1"),
            declined(),
        ),
        ("error", AnswerKind::CreateTransaction, None, error()),
        ("held", AnswerKind::CreateTransaction, Some("ref-1"), held()),
        (
            "no transaction",
            AnswerKind::CreateTransaction,
            None,
            auth_failed(),
        ),
        (
            "authenticated",
            AnswerKind::Authenticate,
            Some("r"),
            Answer {
                ok: true,
                messages: ok_messages(),
                transaction: None,
            },
        ),
        (
            "authentication failed",
            AnswerKind::Authenticate,
            None,
            auth_failed(),
        ),
        (
            "unreadable",
            AnswerKind::Error,
            None,
            WireError::UnknownFormat.answer(),
        ),
        ("no messages", AnswerKind::Error, None, Answer::default()),
    ]
}

#[test]
fn json_approved_is_the_published_shape() {
    let (content_type, body) = write(
        &Format::Json,
        AnswerKind::CreateTransaction,
        Some("ref-1"),
        &approved(),
    );
    assert_eq!(content_type, "application/json; charset=utf-8");
    let text = std::str::from_utf8(body.strip_prefix(BOM).expect("a BOM first")).unwrap();
    assert_eq!(
        text,
        r#"{"transactionResponse":{"responseCode":"1","authCode":"A1B2C3","avsResultCode":"Y","cvvResultCode":"M","cavvResultCode":"2","transId":"60123456789","refTransID":"","transHash":"","testRequest":"0","accountNumber":"XXXX1111","accountType":"Visa","messages":[{"code":"1","description":"This transaction has been approved."}],"transHashSha2":"","SupplementalDataQualificationIndicator":0},"refId":"ref-1","messages":{"resultCode":"Ok","message":[{"code":"I00001","text":"Successful."}]}}"#
    );
}

#[test]
fn json_answers() {
    let json = |kind, ref_id, answer: &Answer| -> serde_json::Value {
        let (_, body) = write(&Format::Json, kind, ref_id, answer);
        serde_json::from_slice(body.strip_prefix(BOM).expect("a BOM")).unwrap()
    };
    let v = json(AnswerKind::CreateTransaction, Some("ref-1"), &declined());
    assert_eq!(v["messages"]["resultCode"], "Error");
    assert_eq!(v["messages"]["message"][0]["code"], "E00027");
    assert_eq!(v["transactionResponse"]["responseCode"], "2");
    assert_eq!(v["transactionResponse"]["errors"][0]["errorCode"], "2");
    assert!(v["transactionResponse"].get("messages").is_none());

    let v = json(AnswerKind::CreateTransaction, None, &error());
    assert_eq!(v["transactionResponse"]["responseCode"], "3");
    assert_eq!(v["transactionResponse"]["transId"], "0");
    assert!(v.get("refId").is_none());

    let v = json(AnswerKind::CreateTransaction, None, &held());
    assert_eq!(v["transactionResponse"]["responseCode"], "4");
    assert_eq!(v["transactionResponse"]["messages"][0]["code"], "253");
    assert_eq!(
        v["transactionResponse"]["prePaidCard"]["requestedAmount"],
        "125.50"
    );
    assert_eq!(
        v["transactionResponse"]["prePaidCard"]["approvedAmount"],
        "99.00"
    );

    let v = json(AnswerKind::CreateTransaction, None, &auth_failed());
    assert_eq!(
        v,
        serde_json::json!({"messages": {"resultCode": "Error", "message": [{"code": "E00007",
            "text": "User authentication failed due to invalid authentication values."}]}})
    );
}

#[test]
fn xml_answers() {
    let xml = |kind, ref_id, answer: &Answer| -> String {
        let (content_type, body) = write(&Format::Xml, kind, ref_id, answer);
        assert_eq!(content_type, "application/xml; charset=utf-8");
        let rest = body
            .strip_prefix(BOM)
            .expect("a BOM first: the Python SDK drops 3 characters");
        assert!(rest.is_ascii(), "ASCII after the BOM");
        String::from_utf8(rest.to_vec()).unwrap()
    };
    let text = xml(AnswerKind::CreateTransaction, Some("ref-1"), &approved());
    assert!(text.starts_with(
        r#"<?xml version="1.0" encoding="utf-8"?><createTransactionResponse xmlns="AnetApi/xml/v1/schema/AnetApiSchema.xsd"><refId>ref-1</refId><messages><resultCode>Ok</resultCode><message><code>I00001</code><text>Successful.</text></message></messages><transactionResponse><responseCode>1</responseCode>"#
    ), "{text}");
    assert!(text.contains("<messages><message><code>1</code><description>This transaction has been approved.</description></message></messages>"));

    let declined = xml(AnswerKind::CreateTransaction, None, &declined());
    assert!(declined.contains("<errors><error><errorCode>2</errorCode><errorText>This transaction has been declined.</errorText></error></errors>"));
    let held = xml(AnswerKind::CreateTransaction, None, &held());
    assert!(held.contains("<responseCode>4</responseCode>"));
    assert!(held.contains("<prePaidCard><requestedAmount>125.50</requestedAmount><approvedAmount>99.00</approvedAmount></prePaidCard>"));
    let error = xml(AnswerKind::CreateTransaction, None, &error());
    assert!(error.contains("<responseCode>3</responseCode>"));

    // No transaction: the element the XSD requires is there, empty.
    let failed = xml(AnswerKind::CreateTransaction, None, &auth_failed());
    assert!(
        failed.ends_with("</messages><transactionResponse/></createTransactionResponse>"),
        "{failed}"
    );
    let err = xml(AnswerKind::Error, None, &WireError::UnknownFormat.answer());
    assert!(err.contains("<ErrorResponse xmlns=\"AnetApi/xml/v1/schema/AnetApiSchema.xsd\"><messages><resultCode>Error</resultCode><message><code>E00002</code>"), "{err}");

    // Characters beyond ASCII and markup come out as references.
    let mut answer = approved();
    answer.messages[0].1 = "Café <&> ok".to_owned();
    let text = xml(AnswerKind::Authenticate, None, &answer);
    assert!(
        text.contains("<text>Caf&#233; &lt;&amp;&gt; ok</text>"),
        "{text}"
    );
}

#[test]
fn xml_answers_meet_the_xsd() {
    let schema = Xsd::parse(XSD);
    for (case, kind, ref_id, answer) in all_answers() {
        let (_, body) = write(&Format::Xml, kind, ref_id, &answer);
        let doc = parse_xml(body.strip_prefix(BOM).unwrap());
        if let Err(problem) = schema.check_xml(&doc) {
            panic!("{case}: {problem}\n{}", String::from_utf8_lossy(&body));
        }
    }
    // The checker does catch what pyxb refuses.
    let (_, body) = write(
        &Format::Xml,
        AnswerKind::CreateTransaction,
        None,
        &approved(),
    );
    let text = String::from_utf8(body[3..].to_vec()).unwrap();
    let swapped = text.replace(
        "<authCode>A1B2C3</authCode><avsResultCode>Y</avsResultCode>",
        "<avsResultCode>Y</avsResultCode><authCode>A1B2C3</authCode>",
    );
    assert!(schema.check_xml(&parse_xml(swapped.as_bytes())).is_err());
    let no_messages = text.replace(
        "<messages><resultCode>Ok</resultCode><message><code>I00001</code><text>Successful.</text></message></messages>",
        "",
    );
    assert!(
        schema
            .check_xml(&parse_xml(no_messages.as_bytes()))
            .is_err()
    );
    let bad_enum = text.replace("<resultCode>Ok</resultCode>", "<resultCode>OK</resultCode>");
    assert!(schema.check_xml(&parse_xml(bad_enum.as_bytes())).is_err());
}

#[test]
fn json_answers_meet_the_xsd_in_the_published_order() {
    let schema = Xsd::parse(XSD);
    for (case, kind, ref_id, answer) in all_answers() {
        let (_, body) = write(&Format::Json, kind, ref_id, &answer);
        let value: OJ = serde_json::from_slice(body.strip_prefix(BOM).unwrap()).unwrap();
        let root = match kind {
            AnswerKind::Authenticate => "authenticateTestResponse",
            AnswerKind::CreateTransaction => "createTransactionResponse",
            AnswerKind::Error => "ErrorResponse",
        };
        if let Err(problem) = schema.check_json(root, &value) {
            panic!("{case}: {problem}\n{}", String::from_utf8_lossy(&body));
        }
    }
    // The checker does catch keys out of order.
    let bad: OJ = serde_json::from_str(
        r#"{"messages":{"resultCode":"Ok","message":[{"code":"I00001","text":"Successful."}]},"refId":"1"}"#,
    )
    .unwrap();
    assert!(schema.check_json("authenticateTestResponse", &bad).is_err());
}

// ---------------------------------------------------------------------------------------------
// Card data never shows

#[test]
fn card_data_is_in_no_error_and_no_debug() {
    let mut failures: Vec<Vec<u8>> = Vec::new();
    let json = json_request("authCaptureTransaction", &card_payment(), "1235");
    // Every way a request can fail, each with the number and code in it.
    failures.push(json.replace(r#""amount":"125.50","#, "").into_bytes());
    failures.push(json.replace("1235", "13/35").into_bytes());
    failures.push(
        json.replace(r#""transactionType":"authCaptureTransaction","#, "")
            .into_bytes(),
    );
    failures.push(json.replace("}}}", "").into_bytes());
    failures.push(
        json.replace(&format!("\"{NUMBER}\""), &format!("{NUMBER}x"))
            .into_bytes(),
    );
    failures.push(
        json.replace(&format!("\"{CODE}\""), &format!("\"{CODE}\n"))
            .into_bytes(),
    );
    failures.push(format!("[\"{NUMBER}\", \"{CODE}\"]").into_bytes());
    failures.push(format!("{{\"a\": \"{NUMBER}\", \"b\": \"{CODE}\"}}").into_bytes());
    let xml = XML_REQUEST.to_owned();
    failures.push(xml.replace("<amount>125.50</amount>", "").into_bytes());
    failures.push(xml.replace("2035-12", "35/2035").into_bytes());
    failures.push(xml.replace("</cardNumber>", "</cardNumbr>").into_bytes());
    failures.push(
        xml.replace(NUMBER, &format!("{NUMBER}&{CODE};"))
            .into_bytes(),
    );
    failures.push(
        xml.replace(NUMBER, &format!("{NUMBER}&#xFFFFFFF;"))
            .into_bytes(),
    );
    failures.push(xml.replace("</createTransactionRequest>", "").into_bytes());
    failures.push(format!("{xml}<{NUMBER}/>").into_bytes());
    failures.push(format!("{xml}{NUMBER}").into_bytes());
    let form = format!(
        "x_login=l&x_tran_key=k&x_amount=1.00&x_card_num={NUMBER}&x_exp_date=1235&x_card_code={CODE}&note={NUMBER}"
    );
    let aim_failures = [
        form.replace("x_amount=1.00&", ""),
        form.replace("x_exp_date=1235", "x_exp_date=9999"),
        form.replace("x_exp_date=1235", "x_exp_date="),
        form.replace(&format!("x_card_num={NUMBER}"), "x_card_num="),
    ];
    let mut seen = 0;
    let mut check = |err: WireError| {
        for text in [
            err.to_string(),
            format!("{err:?}"),
            format!("{:?}", err.answer()),
        ] {
            assert!(!text.contains(NUMBER) && !text.contains("411111"), "{text}");
            assert!(!text.contains(CODE), "{text}");
        }
        let (_, answer) = write(&err.format(), AnswerKind::Error, None, &err.answer());
        let answer = String::from_utf8_lossy(&answer);
        assert!(!answer.contains(NUMBER), "{answer}");
        seen += 1;
    };
    for body in &failures {
        for content_type in [None, Some("application/json"), Some("application/xml")] {
            match read(content_type, body) {
                Err(err) => check(err),
                Ok(_) => panic!("read a body of {} bytes", body.len()),
            }
        }
    }
    for body in &aim_failures {
        check(read_aim(body.as_bytes()).expect_err("an AIM failure"));
        check(read(Some("application/x-www-form-urlencoded"), body.as_bytes()).unwrap_err());
    }
    assert_eq!(seen, failures.len() * 3 + aim_failures.len() * 2);

    // Read requests print no card data either.
    let requests = [
        read(None, json.as_bytes()).unwrap(),
        read(None, XML_REQUEST.as_bytes()).unwrap(),
        read_aim(form.as_bytes()).unwrap(),
        read_aim(format!("x_type={NUMBER}").as_bytes()).unwrap(),
        read(None, format!("<{NUMBER}>{CODE}</{NUMBER}>").as_bytes()).unwrap(),
        read(
            None,
            format!("{{\"{NUMBER}\": {{\"{CODE}\": 1}}}}").as_bytes(),
        )
        .unwrap(),
    ];
    for request in requests {
        let debug = format!("{request:?} {:?}", request.call);
        assert!(!debug.contains(NUMBER) && !debug.contains(CODE), "{debug}");
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers: an AIM line's fields, an order-keeping JSON value, a small XML tree, and the XSD.

fn aim_fields(line: &str, delim: char, encap: Option<char>) -> Vec<String> {
    match encap {
        Some(e) => {
            let inner = line
                .strip_prefix(e)
                .and_then(|l| l.strip_suffix(e))
                .expect("encapsulated");
            inner
                .split(&format!("{e}{delim}{e}"))
                .map(str::to_owned)
                .collect()
        }
        None => line.split(delim).map(str::to_owned).collect(),
    }
}

/// JSON that keeps its keys' order.
#[derive(Debug, Clone, PartialEq)]
enum OJ {
    Scalar(String),
    Arr(Vec<OJ>),
    Obj(Vec<(String, OJ)>),
}

impl<'de> serde::Deserialize<'de> for OJ {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<OJ, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OJ;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, v: bool) -> Result<OJ, E> {
                Ok(OJ::Scalar(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<OJ, E> {
                Ok(OJ::Scalar(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<OJ, E> {
                Ok(OJ::Scalar(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<OJ, E> {
                Ok(OJ::Scalar(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<OJ, E> {
                Ok(OJ::Scalar(v.to_owned()))
            }
            fn visit_unit<E>(self) -> Result<OJ, E> {
                Ok(OJ::Scalar(String::new()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<OJ, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(OJ::Arr(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<OJ, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = a.next_entry::<String, OJ>()? {
                    entries.push(entry);
                }
                Ok(OJ::Obj(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// An XML element: local name, attributes, text, children.
struct El {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<El>,
}

impl El {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn local(name: &str) -> String {
    name.rsplit(':').next().unwrap_or_default().to_owned()
}

fn parse_xml(bytes: &[u8]) -> El {
    use quick_xml::events::{BytesStart, Event};
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    let mut reader = quick_xml::Reader::from_str(text);
    let element = |e: &BytesStart<'_>| El {
        name: local(e.name().as_ref()),
        attrs: e
            .attributes()
            .map(|a| a.expect("an attribute"))
            .map(|a| {
                let value = a
                    .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .expect("a value")
                    .into_owned();
                (AsRef::<str>::as_ref(&a.key).to_owned(), value)
            })
            .collect(),
        text: String::new(),
        children: Vec::new(),
    };
    let mut stack = vec![El {
        name: String::new(),
        attrs: Vec::new(),
        text: String::new(),
        children: Vec::new(),
    }];
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) => stack.push(element(&e)),
            Event::Empty(e) => {
                let el = element(&e);
                stack.last_mut().unwrap().children.push(el);
            }
            Event::End(_) => {
                let done = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(done);
            }
            Event::Text(t) => stack.last_mut().unwrap().text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().unwrap() {
                    Some(c) => c,
                    None => match &*r {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        _ => '\'',
                    },
                };
                stack.last_mut().unwrap().text.push(c);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut document = stack.pop().unwrap();
    assert_eq!(document.children.len(), 1, "one root element");
    document.children.pop().unwrap()
}

/// A content model particle.
enum Particle<'x> {
    El {
        name: String,
        min: u32,
        max: Option<u32>,
        decl: &'x El,
    },
    Group {
        choice: bool,
        items: Vec<Particle<'x>>,
        min: u32,
        max: Option<u32>,
    },
}

fn occurs(node: &El) -> (u32, Option<u32>) {
    let min = node.attr("minOccurs").map_or(1, |v| v.parse().unwrap());
    let max = match node.attr("maxOccurs") {
        Some("unbounded") => None,
        Some(v) => Some(v.parse().unwrap()),
        None => Some(1),
    };
    (min, max)
}

fn strip(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// The XSD: named complex and simple types and top-level elements.
struct Xsd {
    root: El,
}

/// What an element's content is.
enum Content<'x> {
    /// Text: a builtin or simple type (its enumeration, if any).
    Text(Vec<String>),
    /// Elements: the model (own particles, and the base's) of a complex type.
    Complex(&'x El),
    Any,
}

impl Xsd {
    fn parse(xsd: &str) -> Xsd {
        Xsd {
            root: parse_xml(xsd.as_bytes()),
        }
    }

    fn top(&self, kind: &str, name: &str) -> Option<&El> {
        self.root
            .children
            .iter()
            .find(|c| c.name == kind && c.attr("name") == Some(name))
    }

    /// The particles of a complex type: the base's then its own, or (`derived_first`, as
    /// Authorize.Net's JSON prints them) its own then the base's.
    fn model<'x>(&'x self, ct: &'x El, derived_first: bool) -> Vec<Particle<'x>> {
        let mut out = Vec::new();
        for child in &ct.children {
            match child.name.as_str() {
                "sequence" | "choice" => out.push(self.group(child)),
                "complexContent" => {
                    for ext in &child.children {
                        if ext.name != "extension" && ext.name != "restriction" {
                            continue;
                        }
                        let base = strip(ext.attr("base").unwrap());
                        let base_model = match self.top("complexType", base) {
                            Some(b) => self.model(b, false),
                            None => Vec::new(),
                        };
                        let own = self.model(ext, false);
                        if derived_first {
                            out.extend(own);
                            out.extend(base_model);
                        } else {
                            out.extend(base_model);
                            out.extend(own);
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn group<'x>(&'x self, node: &'x El) -> Particle<'x> {
        let (min, max) = occurs(node);
        let items = node
            .children
            .iter()
            .filter_map(|c| match c.name.as_str() {
                "element" => {
                    let (min, max) = occurs(c);
                    Some(Particle::El {
                        name: c.attr("name").unwrap().to_owned(),
                        min,
                        max,
                        decl: c,
                    })
                }
                "sequence" | "choice" => Some(self.group(c)),
                _ => None,
            })
            .collect();
        Particle::Group {
            choice: node.name == "choice",
            items,
            min,
            max,
        }
    }

    fn content<'x>(&'x self, decl: &'x El) -> Content<'x> {
        if let Some(ty) = decl.attr("type") {
            if ty.starts_with("xs:") {
                return Content::Text(Vec::new());
            }
            let name = strip(ty);
            if let Some(ct) = self.top("complexType", name) {
                return Content::Complex(ct);
            }
            let st = self.top("simpleType", name).expect("a declared type");
            return Content::Text(enumeration(st));
        }
        for child in &decl.children {
            match child.name.as_str() {
                "complexType" => return Content::Complex(child),
                "simpleType" => return Content::Text(enumeration(child)),
                _ => {}
            }
        }
        Content::Any
    }

    fn check_xml(&self, doc: &El) -> Result<(), String> {
        let decl = self
            .top("element", &doc.name)
            .ok_or("an unknown root element")?;
        if doc.attr("xmlns") != Some("AnetApi/xml/v1/schema/AnetApiSchema.xsd") {
            return Err("not in the API's namespace".to_owned());
        }
        self.check_element(decl, doc, &doc.name)
    }

    fn check_element(&self, decl: &El, el: &El, path: &str) -> Result<(), String> {
        match self.content(decl) {
            Content::Any => Ok(()),
            Content::Text(values) => {
                if !el.children.is_empty() {
                    return Err(format!("{path}: elements in a text element"));
                }
                if !values.is_empty() && !values.contains(&el.text) {
                    return Err(format!("{path}: {:?} is not one of {values:?}", el.text));
                }
                Ok(())
            }
            Content::Complex(ct) => {
                let model = self.model(ct, false);
                let names: Vec<&str> = el.children.iter().map(|c| c.name.as_str()).collect();
                if !matches_all(&model, &names) {
                    return Err(format!("{path}: children {names:?} do not meet the XSD"));
                }
                for child in &el.children {
                    let decl = find_decl(&model, &child.name).unwrap();
                    self.check_element(decl, child, &format!("{path}.{}", child.name))?;
                }
                Ok(())
            }
        }
    }

    /// A JSON answer as Authorize.Net prints one: the response element's members (its own,
    /// then `ANetApiResponse`'s), each object's keys in XSD order, a repeated element or a
    /// wrapper of one repeated element as an array; the JSON-only
    /// `SupplementalDataQualificationIndicator` allowed.
    fn check_json(&self, root: &str, value: &OJ) -> Result<(), String> {
        let decl = self.top("element", root).ok_or("an unknown root element")?;
        let Content::Complex(ct) = self.content(decl) else {
            return Err("not a complex type".to_owned());
        };
        let mut model = self.model(ct, true);
        // Authorize.Net's JSON leaves it out when there is no transaction (the published
        // E00007 answer); the XML must have it.
        relax(&mut model, "transactionResponse");
        self.check_object(model, value, root)
    }

    fn check_object(&self, model: Vec<Particle<'_>>, value: &OJ, path: &str) -> Result<(), String> {
        const JSON_ONLY: [&str; 1] = ["SupplementalDataQualificationIndicator"];
        let OJ::Obj(entries) = value else {
            return Err(format!("{path}: not an object"));
        };
        let mut names: Vec<&str> = Vec::new();
        for (key, member) in entries {
            if JSON_ONLY.contains(&key.as_str()) {
                continue;
            }
            let decl = find_decl(&model, key).ok_or(format!("{path}.{key}: not in the XSD"))?;
            let (_, max) = occurs(decl);
            match member {
                OJ::Arr(items) if max != Some(1) => {
                    names.extend(std::iter::repeat_n(key.as_str(), items.len()));
                    for item in items {
                        self.check_json_element(decl, item, &format!("{path}.{key}[]"))?;
                    }
                }
                OJ::Arr(items) => {
                    // A wrapper whose only content is one repeated element.
                    names.push(key);
                    let Content::Complex(ct) = self.content(decl) else {
                        return Err(format!("{path}.{key}: an array for a text element"));
                    };
                    let inner = self.model(ct, false);
                    let [Particle::Group { items: group, .. }] = inner.as_slice() else {
                        return Err(format!("{path}.{key}: an array for an object"));
                    };
                    let [
                        Particle::El {
                            decl: item_decl,
                            max,
                            ..
                        },
                    ] = group.as_slice()
                    else {
                        return Err(format!("{path}.{key}: an array for an object"));
                    };
                    if *max == Some(1) {
                        return Err(format!("{path}.{key}: an array for an object"));
                    }
                    for item in items {
                        self.check_json_element(item_decl, item, &format!("{path}.{key}[]"))?;
                    }
                }
                other => {
                    names.push(key);
                    self.check_json_element(decl, other, &format!("{path}.{key}"))?;
                }
            }
        }
        if !matches_all(&model, &names) {
            return Err(format!("{path}: keys {names:?} do not meet the XSD"));
        }
        Ok(())
    }

    fn check_json_element(&self, decl: &El, value: &OJ, path: &str) -> Result<(), String> {
        match (self.content(decl), value) {
            (Content::Any, _) => Ok(()),
            (Content::Text(values), OJ::Scalar(s)) => {
                if !values.is_empty() && !values.contains(s) {
                    return Err(format!("{path}: {s:?} is not one of {values:?}"));
                }
                Ok(())
            }
            (Content::Text(_), _) => Err(format!("{path}: not a scalar")),
            (Content::Complex(ct), value) => self.check_object(self.model(ct, false), value, path),
        }
    }
}

fn enumeration(simple: &El) -> Vec<String> {
    simple
        .children
        .iter()
        .filter(|c| c.name == "restriction")
        .flat_map(|r| r.children.iter())
        .filter(|c| c.name == "enumeration")
        .map(|c| c.attr("value").unwrap().to_owned())
        .collect()
}

fn relax(model: &mut [Particle<'_>], name: &str) {
    for particle in model {
        match particle {
            Particle::El { name: n, min, .. } if n == name => *min = 0,
            Particle::El { .. } => {}
            Particle::Group { items, .. } => relax(items, name),
        }
    }
}

fn find_decl<'x>(model: &[Particle<'x>], name: &str) -> Option<&'x El> {
    model.iter().find_map(|p| match p {
        Particle::El { name: n, decl, .. } if n == name => Some(*decl),
        Particle::El { .. } => None,
        Particle::Group { items, .. } => find_decl(items, name),
    })
}

/// Whether `names`, in order, are one reading of the model (a sequence of particles).
fn matches_all(model: &[Particle<'_>], names: &[&str]) -> bool {
    let mut at: HashSet<usize> = HashSet::from([0]);
    for particle in model {
        at = at
            .iter()
            .flat_map(|&start| ends(particle, names, start))
            .collect();
    }
    at.contains(&names.len())
}

/// Where a particle (with its occurrences) can end, starting at `start`.
fn ends(particle: &Particle<'_>, names: &[&str], start: usize) -> Vec<usize> {
    match particle {
        Particle::El { name, min, max, .. } => {
            let run = names[start..].iter().take_while(|n| **n == name).count();
            let most = max.map_or(run, |m| run.min(m as usize));
            (*min as usize..=most).map(|k| start + k).collect()
        }
        Particle::Group {
            choice,
            items,
            min,
            max,
        } => {
            let once = |from: usize| -> Vec<usize> {
                if *choice {
                    items.iter().flat_map(|p| ends(p, names, from)).collect()
                } else {
                    let mut at = vec![from];
                    for p in items {
                        let mut next: Vec<usize> =
                            at.iter().flat_map(|&s| ends(p, names, s)).collect();
                        next.sort_unstable();
                        next.dedup();
                        at = next;
                    }
                    at
                }
            };
            let mut result = if *min == 0 { vec![start] } else { Vec::new() };
            let mut frontier = vec![start];
            let limit = max.unwrap_or(names.len() as u32 + 1);
            for round in 1..=limit {
                let mut next: Vec<usize> = frontier.iter().flat_map(|&s| once(s)).collect();
                next.sort_unstable();
                next.dedup();
                if round >= *min {
                    result.extend(next.iter().copied());
                }
                if next == frontier || next.is_empty() {
                    break;
                }
                frontier = next;
            }
            result.sort_unstable();
            result.dedup();
            result
        }
    }
}
