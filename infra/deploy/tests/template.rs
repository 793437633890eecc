//! infra/template.yaml against the code: the table against the store's one definition, every
//! route against its function's router and the OpenAPI document, the events against the
//! routes, the environment against `runtime::Config`, the zips against the package script,
//! and the tick's metric against the line the tick logs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use paybridge_deploy::{Route, functions, properties, routes, sample_path, template};
use serde_json::{Value, json};

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_table_is_the_stores_one_definition() {
    let t = template();
    let differences = paybridge_deploy::table_differences(
        properties(&t, "Table"),
        &store::table::cloudformation_properties(),
    );
    assert!(
        differences.is_empty(),
        "infra/template.yaml's Table differs from store::table::cloudformation_properties():\n{}",
        differences.join("\n")
    );
}

#[test]
fn the_table_is_protected_and_encrypted_with_the_stacks_key() {
    let t = template();
    let table = properties(&t, "Table");
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(table["TimeToLiveSpecification"]["Enabled"], true);
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(table["DeletionProtectionEnabled"], true);
    assert_eq!(table["SSESpecification"]["SSEType"], "KMS");
    assert_eq!(
        table["SSESpecification"]["KMSMasterKeyId"],
        json!({"Fn::GetAtt": ["Key", "Arn"]})
    );
    assert_eq!(t["Resources"]["Table"]["DeletionPolicy"], "Retain");
    assert_eq!(properties(&t, "Key")["EnableKeyRotation"], true);
}

/// The workspace's function crates: functions/<name>.
fn function_crates() -> BTreeSet<String> {
    std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn one_function_per_crate_and_the_package_script_builds_each() {
    let t = template();
    let binaries: BTreeSet<String> = functions(&t).into_iter().map(|f| f.binary).collect();
    assert_eq!(
        binaries,
        function_crates(),
        "template functions vs functions/"
    );
    let script = std::fs::read_to_string(root().join("infra/package.sh")).unwrap();
    let line = script
        .lines()
        .find(|l| l.starts_with("FUNCTIONS=("))
        .expect("infra/package.sh lists FUNCTIONS=(...)");
    let packaged: BTreeSet<String> = line
        .trim_start_matches("FUNCTIONS=(")
        .trim_end_matches(')')
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        packaged, binaries,
        "infra/package.sh FUNCTIONS vs the template"
    );
}

#[test]
fn each_function_has_its_own_role_log_group_memory_and_timeout() {
    let t = template();
    let fns = functions(&t);
    let roles: BTreeSet<&str> = fns.iter().map(|f| f.role.as_str()).collect();
    let groups: BTreeSet<&str> = fns.iter().map(|f| f.log_group.as_str()).collect();
    assert_eq!(roles.len(), fns.len(), "one role per function");
    assert_eq!(groups.len(), fns.len(), "one log group per function");
    for f in &fns {
        assert!(
            (128..=10240).contains(&f.memory_mb),
            "{}: memory {}",
            f.binary,
            f.memory_mb
        );
        let p = properties(&t, &f.logical_id);
        assert_eq!(p["LoggingConfig"]["LogFormat"], "JSON", "{}", f.binary);
        let group = properties(&t, &f.log_group);
        assert!(group["RetentionInDays"].is_object() || group["RetentionInDays"].is_u64());
        assert!(
            group["KmsKeyId"].is_object(),
            "{}: encrypted logs",
            f.binary
        );
        if f.binary == "auto-pay-tick" {
            // Done before the next tick (every 5 minutes) is due.
            assert!(f.timeout_s < 300, "tick timeout {}", f.timeout_s);
            assert_eq!(
                p["ReservedConcurrentExecutions"]["Fn::If"][1], 1,
                "one tick at a time"
            );
        } else {
            // API Gateway gives up after 30 s.
            assert!(
                (1..30).contains(&f.timeout_s),
                "{}: timeout {}",
                f.binary,
                f.timeout_s
            );
        }
    }
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Handler"], "bootstrap");
    assert_eq!(globals["Architectures"], json!([{"Ref": "Architecture"}]));
    assert_eq!(t["Parameters"]["Architecture"]["Default"], "arm64");
}

#[test]
fn route_keys_are_unique() {
    let mut seen = BTreeSet::new();
    for route in routes(&template()) {
        assert!(seen.insert(route.key()), "{} twice", route.key());
    }
}

#[test]
fn every_api_operation_of_the_openapi_document_is_a_route() {
    let mapped: BTreeSet<String> = routes(&template()).iter().map(Route::key).collect();
    let doc = serde_json::to_value(web::openapi()).unwrap();
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                let key = format!("{} {path}", method.to_uppercase());
                if !mapped.contains(&key) {
                    missing.push(key);
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "API operations without a route in infra/template.yaml: {missing:?}"
    );
}

/// The function's router, as its main.rs serves it.
fn router_of(function: &str, services: Arc<app::Services>) -> axum::Router {
    match function {
        "admin" => web::admin::router(services),
        "pay-now" => web::pay_now::router(services),
        "invite" => web::invite::router(services),
        "accept-invite" => web::accept::router(services),
        "portal" => web::portal::router(services),
        "save-method" => web::methods::router(services),
        "webhook" => web::webhook::router(services),
        "anet-proxy" => web::anet_proxy::router(services),
        other => panic!("no router for {other}"),
    }
}

#[tokio::test]
async fn every_route_is_served_by_the_function_it_names() {
    let world = paybridge_tests::World::new().await;
    let mut unserved = Vec::new();
    for route in routes(&template()) {
        let router = router_of(&route.function, world.services.clone());
        let path = sample_path(&route.path);
        let body = matches!(route.method.as_str(), "POST" | "PUT" | "PATCH").then(|| json!({}));
        let (status, _, answer) =
            paybridge_tests::call(&router, &route.method, &path, &[], body).await;
        let fallback = answer.to_string().contains("no such route");
        if status == http::StatusCode::METHOD_NOT_ALLOWED || fallback {
            unserved.push(format!("{} -> {}: {status}", route.key(), route.function));
        }
    }
    assert!(
        unserved.is_empty(),
        "routes their function's router does not serve:\n{}",
        unserved.join("\n")
    );
}

#[test]
fn every_route_has_an_event_and_every_event_a_route() {
    let mapped: BTreeMap<String, Route> = routes(&template())
        .into_iter()
        .map(|r| (r.key(), r))
        .collect();
    let mut covered = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("events")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".apigw-v2.json") {
            continue;
        }
        let event: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let key = event["routeKey"].as_str().unwrap_or_default().to_owned();
        let route = mapped
            .get(&key)
            .unwrap_or_else(|| panic!("events/{name}: {key} is no route of the template"));
        assert_eq!(event["requestContext"]["routeKey"], key, "{name}");
        // The raw path fits the route's pattern, segment by segment.
        let raw = event["rawPath"].as_str().unwrap();
        let (pattern, actual): (Vec<&str>, Vec<&str>) =
            (route.path.split('/').collect(), raw.split('/').collect());
        assert_eq!(
            pattern.len(),
            actual.len(),
            "{name}: {raw} vs {}",
            route.path
        );
        for (p, a) in pattern.iter().zip(&actual) {
            if p.starts_with('{') {
                assert_eq!(
                    event["pathParameters"][p.trim_matches(|c| c == '{' || c == '}')],
                    *a,
                    "{name}: path parameter {p}"
                );
            } else {
                assert_eq!(p, a, "{name}: {raw} vs {}", route.path);
            }
        }
        covered.insert(key);
    }
    let missing: Vec<&String> = mapped.keys().filter(|k| !covered.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "routes without an event in events/: {missing:?}"
    );
}

#[test]
fn the_environment_is_what_the_runtime_reads_and_secrets_are_references() {
    let t = template();
    let env = t["Globals"]["Function"]["Environment"]["Variables"]
        .as_object()
        .unwrap()
        .clone();
    for f in functions(&t) {
        assert!(
            properties(&t, &f.logical_id)["Environment"].is_null(),
            "{}: one environment for all, in Globals",
            f.binary
        );
    }
    // The sealing key is never a value of the template: the functions get the KMS ciphertext of
    // its data key (a NoEcho parameter, which only their roles can decrypt) and the KMS key.
    assert!(env.get("SEALING_KEY").is_none(), "no raw sealing key");
    assert_eq!(
        env["SEALING_KEY_CIPHERTEXT"],
        json!({"Ref": "SealingKeyCiphertext"})
    );
    assert_eq!(t["Parameters"]["SealingKeyCiphertext"]["NoEcho"], true);
    assert_eq!(
        env["SEALING_KMS_KEY_ID"],
        json!({"Fn::GetAtt": ["SealingKmsKey", "Arn"]})
    );
    for (name, parameter) in t["Parameters"].as_object().unwrap() {
        let lower = name.to_lowercase();
        let secretish = ["password", "token", "apikey"]
            .iter()
            .any(|w| lower.contains(w))
            || (lower.contains("key") && !lower.contains("secret"));
        // A KMS ciphertext is no secret to whoever cannot decrypt it; still never echoed.
        let ciphertext = lower.ends_with("ciphertext") && parameter["NoEcho"] == true;
        assert!(
            !secretish || ciphertext || parameter["Type"] != "String",
            "{name}: secrets are not parameters"
        );
    }
    // What runtime::Config asks for on Lambda, with the template's variables set.
    let asked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut values: BTreeMap<String, String> = env
        .keys()
        .map(|k| (k.clone(), format!("sample-{}", k.to_lowercase())))
        .collect();
    values.insert("MAIL_FROM".into(), "billing@example.com".into());
    values.insert("PUBLIC_URL".into(), "https://pay.example.com".into());
    values.insert("LOG_FORMAT".into(), "json".into());
    // A KMS CiphertextBlob's shape (parsed only: the decryption happens in runtime::services).
    values.insert("SEALING_KEY_CIPHERTEXT".into(), "AQICAHhYc2FtcGxl".into());
    values.insert("AWS_LAMBDA_RUNTIME_API".into(), "127.0.0.1:9001".into());
    let seen = asked.clone();
    let config = runtime::Config::from_lookup(move |name| {
        seen.lock().unwrap().insert(name.to_owned());
        values.get(name).cloned()
    })
    .expect("the template's environment starts a function on Lambda");
    assert!(config.on_lambda);
    assert!(matches!(
        config.sealing_key,
        Some(runtime::SealingKeySource::Kms { .. })
    ));
    let asked = asked.lock().unwrap();
    for name in env.keys() {
        // RUST_LOG is read by the log filter at start.
        assert!(
            asked.contains(name) || name == "RUST_LOG",
            "{name} is set by the template but read by nobody"
        );
    }
}

#[test]
fn the_tick_runs_every_five_minutes_with_retries_and_a_dead_letter_queue() {
    let t = template();
    let schedule = properties(&t, "TickSchedule");
    assert_eq!(schedule["ScheduleExpression"], "rate(5 minutes)");
    assert_eq!(
        schedule["Target"]["Arn"],
        json!({"Fn::GetAtt": ["AutoPayTickFunction", "Arn"]})
    );
    assert!(schedule["Target"]["RetryPolicy"]["MaximumRetryAttempts"].as_u64() > Some(0));
    assert_eq!(
        schedule["Target"]["DeadLetterConfig"]["Arn"],
        json!({"Fn::GetAtt": ["TickDeadLetterQueue", "Arn"]})
    );
    // The scheduler's input parses as the scheduled event the tick is given.
    let input = schedule["Target"]["Input"].as_str().unwrap();
    let event: Value = serde_json::from_str(input).unwrap();
    assert_eq!(event["detail-type"], "Scheduled Event");
    let tick = properties(&t, "AutoPayTickFunction");
    assert_eq!(
        tick["DeadLetterQueue"]["TargetArn"],
        json!({"Fn::GetAtt": ["TickDeadLetterQueue", "Arn"]})
    );
}

/// The tick's JSON log line, in the format `runtime::init_tracing` gives it on Lambda.
fn json_lines() -> (
    paybridge_tests::logs::Captured,
    tracing::subscriber::DefaultGuard,
) {
    let captured = paybridge_tests::logs::Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(runtime::log_filter("info"))
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .without_time()
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn the_ticks_log_line_feeds_the_oldest_due_metric() {
    use paybridge_tests::{World, call};
    use time::macros::datetime;

    let world = World::new().await;
    let pat = world
        .payer("demo", "pat@harbor.test", &["cust-1"], "payer password 123")
        .await;
    world.add_invoice("demo", "INV-1", "120.00").await;
    let token = world.card_token("4242424242424242").await;
    let router = world.local_router();
    let (_, _, terms) = call(
        &router,
        "GET",
        "/api/me/orgs/demo/methods/terms?kind=card",
        &[("cookie", &pat)],
        None,
    )
    .await;
    let body = json!({"token": token, "kind": "card", "mandate": {"signer_name": "Pat Lee", "terms_version": terms["version"]}});
    let (status, _, method) = call(
        &router,
        "POST",
        "/api/me/orgs/demo/methods",
        &[("cookie", &pat)],
        Some(body),
    )
    .await;
    assert!(status.is_success(), "{method}");
    let body = json!({"invoice_number": "INV-1", "method_id": method["id"], "date": "2026-11-30"});
    let (status, _, made) = call(
        &router,
        "POST",
        "/api/me/orgs/demo/schedules",
        &[("cookie", &pat)],
        Some(body),
    )
    .await;
    assert_eq!(status, http::StatusCode::CREATED, "{made}");

    // Nothing is due yet: the metric says 0.
    let (logs, guard) = json_lines();
    let now = datetime!(2026-11-26 12:05 UTC);
    world.set_now(now);
    let quiet = runtime::run_one_tick(&world.services, now, None)
        .await
        .unwrap();
    assert_eq!(quiet.oldest_due_secs, 0);
    // Ten minutes after the charge fell due (its notice, three days before, was never sent:
    // that is older still).
    let late = datetime!(2026-11-30 06:10 UTC);
    world.set_now(late);
    let report = runtime::run_one_tick(&world.services, late, None)
        .await
        .unwrap();
    drop(guard);
    assert_eq!(report.claimed, 1, "{report:?}");
    assert!(report.oldest_due_secs >= 600, "{report:?}");

    let ticks: Vec<Value> = logs
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "tick")
        .collect();
    assert_eq!(ticks.len(), 2, "{}", logs.text());
    assert_eq!(ticks[0]["oldest_due_seconds"], 0);
    assert_eq!(ticks[1]["oldest_due_seconds"], report.oldest_due_secs);

    // The template's metric filter selects exactly these fields of that line.
    let t = template();
    let filter = properties(&t, "OldestDueMetricFilter");
    let pattern = filter["FilterPattern"].as_str().unwrap();
    assert!(pattern.contains(r#"$.message = "tick""#), "{pattern}");
    let transform = &filter["MetricTransformations"][0];
    assert_eq!(transform["MetricValue"], "$.oldest_due_seconds");
    for field in pattern.split("$.").skip(1).map(|rest| {
        rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .unwrap()
    }) {
        assert!(
            ticks[1].get(field).is_some(),
            "the filter reads $.{field}, the tick's line has no such field: {}",
            ticks[1]
        );
    }
    assert!(ticks[1]["oldest_due_seconds"].is_u64());
    let alarm = properties(&t, "OldestDueAlarm");
    assert_eq!(alarm["MetricName"], transform["MetricName"]);
    assert_eq!(alarm["Namespace"], transform["MetricNamespace"]);
    assert_eq!(
        alarm["TreatMissingData"], "breaching",
        "no tick at all is an alarm too"
    );
}

#[test]
fn every_skipped_check_says_why() {
    let t = template();
    let mut skips = 0;
    for (id, resource) in t["Resources"].as_object().unwrap() {
        for skip in resource["Metadata"]["checkov"]["skip"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let check = skip["id"].as_str().unwrap_or_default();
            let why = skip["comment"].as_str().unwrap_or_default();
            assert!(check.starts_with("CKV"), "{id}: a check id: {skip}");
            assert!(why.len() > 20, "{id}: {check} is skipped without a reason");
            skips += 1;
        }
    }
    assert!(skips > 0);
}
