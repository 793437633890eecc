//! The admin CLI as a person runs it, against DynamoDB Local.

use std::process::{Command, Output};

fn cli(table: &str, args: &[&str], stdin_password: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_paybridge-admin"));
    command
        .args(["--table", table, "--endpoint", devtools::shared_for_tests()])
        .args(args)
        .env_remove("AWS_ENDPOINT_URL_DYNAMODB")
        .env_remove("PAYBRIDGE_ADMIN_PASSWORD");
    if let Some(p) = stdin_password {
        command.env("PAYBRIDGE_ADMIN_PASSWORD", p);
    }
    command.output().expect("run paybridge-admin")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sets_up_an_org_issues_a_key_and_imports_invoices() {
    let table = format!("cli-{}", std::process::id());
    ok(&cli(&table, &["init"], None));
    let created = ok(&cli(
        &table,
        &[
            "create-org",
            "--slug",
            "northwind",
            "--name",
            "Northwind IT",
            "--admin-email",
            "Boss@Northwind.test",
            "--currency",
            "NZD",
        ],
        Some("a long enough password"),
    ));
    assert!(created.contains("created org northwind"), "{created}");

    // A short password is refused with the reason, and nothing is created.
    let short = cli(
        &table,
        &[
            "create-org",
            "--slug",
            "southwind",
            "--name",
            "S",
            "--admin-email",
            "x@southwind.test",
        ],
        Some("short"),
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));

    let key = ok(&cli(&table, &["issue-api-key", "--org", "northwind"], None));
    assert!(
        key.trim().starts_with("pbk_") && key.trim().len() == 47,
        "{key}"
    );
    let unknown = cli(&table, &["issue-api-key", "--org", "nobody"], None);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no org nobody"));

    let dir = std::env::temp_dir().join(format!("pb-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("invoices.csv");
    std::fs::write(
        &csv,
        "invoice_number,customer_id,customer_name,total,currency,issue_date,due_date\n\
         N-1,c1,Kiwi Ltd,100.50,,2026-11-01,2026-11-30\n\
         N-2,c1,Kiwi Ltd,20,USD,2026-11-02,2026-12-01\n",
    )
    .unwrap();
    assert!(
        ok(&cli(
            &table,
            &[
                "import-invoices",
                "--org",
                "northwind",
                csv.to_str().unwrap()
            ],
            None
        ))
        .contains("added 2, skipped 0")
    );
    // Importing again changes nothing.
    assert!(
        ok(&cli(
            &table,
            &[
                "import-invoices",
                "--org",
                "northwind",
                csv.to_str().unwrap()
            ],
            None
        ))
        .contains("added 0, skipped 2")
    );

    // A file with one bad row adds nothing and names the row.
    let json = dir.join("invoices.json");
    std::fs::write(
        &json,
        r#"[{"invoice_number":"N-3","customer_id":"c2","customer_name":"Tui","total":"5.00","issue_date":"2026-11-01","due_date":"2026-11-30"},
            {"invoice_number":"N-4","customer_id":"c2","customer_name":"Tui","total":"5.001","issue_date":"2026-11-01","due_date":"2026-11-30"}]"#,
    )
    .unwrap();
    let bad = cli(
        &table,
        &[
            "import-invoices",
            "--org",
            "northwind",
            json.to_str().unwrap(),
        ],
        None,
    );
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("invoice 2 (N-4)") && stderr.contains("at most 2 digits"),
        "{stderr}"
    );
    let added = ok(&cli(
        &table,
        &[
            "add-invoice",
            "--org",
            "northwind",
            "--number",
            "N-3",
            "--customer-id",
            "c2",
            "--customer-name",
            "Tui",
            "--total",
            "5.00",
            "--issue-date",
            "2026-11-01",
            "--due-date",
            "2026-11-30",
        ],
        None,
    ));
    assert_eq!(added, "");
    assert!(ok(&cli(&table, &["list-payments", "--org", "northwind"], None)).is_empty());
}

#[test]
fn prints_the_table_definition() {
    let spec = ok(&cli("unused", &["table-spec"], None));
    let json: serde_json::Value = serde_json::from_str(&spec).unwrap();
    assert_eq!(json["TimeToLiveSpecification"]["AttributeName"], "ttl");
    assert_eq!(json["GlobalSecondaryIndexes"].as_array().unwrap().len(), 2);
}
