//! paybridge-admin: set up orgs and their first admins, issue API keys, add or import ledger
//! invoices, list payments. Works on the local table or a deployed one (same store code):
//! `--endpoint http://127.0.0.1:PORT` for DynamoDB Local, else the AWS environment's credentials.

use std::{io::BufRead, path::PathBuf, sync::Arc};

use app::Services;
use app::ledger::NewInvoice;
use clap::{Parser, Subcommand};
use domain::{Currency, Email, OrgSettings, OrgSlug, Secret};
use time::Date;

#[derive(Parser)]
#[command(name = "paybridge-admin", version, about)]
struct Cli {
    /// The DynamoDB table.
    #[arg(long, env = "TABLE_NAME", default_value = "paybridge")]
    table: String,
    /// A DynamoDB endpoint of your own, e.g. the local stack's DynamoDB Local.
    #[arg(long, env = "AWS_ENDPOINT_URL_DYNAMODB")]
    endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the table if it is missing (local use; deployments create it from the template).
    Init,
    /// Create an org and its first admin. A new admin's password comes from
    /// PAYBRIDGE_ADMIN_PASSWORD or the first line of standard input.
    CreateOrg {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        admin_email: String,
        #[arg(long, default_value = "Admin")]
        admin_name: String,
        #[arg(long, default_value = "USD")]
        currency: String,
    },
    /// Issue an org API key; the key is printed once and stored only as a hash.
    IssueApiKey {
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "cli")]
        label: String,
    },
    /// Add one ledger invoice.
    AddInvoice {
        #[arg(long)]
        org: String,
        #[arg(long)]
        number: String,
        #[arg(long)]
        customer_id: String,
        #[arg(long)]
        customer_name: String,
        /// A decimal string, e.g. 120.50.
        #[arg(long)]
        total: String,
        #[arg(long)]
        currency: Option<String>,
        /// YYYY-MM-DD
        #[arg(long, value_parser = parse_date)]
        issue_date: Date,
        /// YYYY-MM-DD
        #[arg(long, value_parser = parse_date)]
        due_date: Date,
    },
    /// Import ledger invoices from a .json file (an array) or a .csv file with the header
    /// invoice_number,customer_id,customer_name,total,currency,issue_date,due_date.
    /// Invoices that exist are skipped, never overwritten.
    ImportInvoices {
        #[arg(long)]
        org: String,
        file: PathBuf,
    },
    /// List the org's payments, newest first.
    ListPayments {
        #[arg(long)]
        org: String,
        #[arg(long, default_value_t = 25)]
        limit: u16,
    },
    /// Print the table definition as CloudFormation properties (what the template must match).
    TableSpec,
}

fn parse_date(s: &str) -> Result<Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(s, &format).map_err(|_| format!("{s:?} is not a date like 2026-11-30"))
}

type Failure = Box<dyn std::error::Error>;

#[tokio::main]
async fn main() {
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::TableSpec = cli.command {
        println!("{:#}", store::table::cloudformation_properties());
        return Ok(());
    }
    let client = match &cli.endpoint {
        Some(endpoint) => store::local_client(endpoint).await,
        None => aws_sdk_dynamodb_client().await,
    };
    let store = store::Store::new(client, &cli.table);
    if let Command::Init = cli.command {
        store.ensure_table().await?;
        println!("table {} is ready", cli.table);
        return Ok(());
    }
    let services = Arc::new(runtime::services_over(
        store,
        Arc::new(app::system::SystemClock),
    ));
    match cli.command {
        Command::CreateOrg {
            slug,
            name,
            admin_email,
            admin_name,
            currency,
        } => {
            let email = Email::parse(&admin_email)?;
            let existing = services.users.find_user_by_email(&email).await?;
            let admin_password = match existing {
                Some(_) => None,
                None => Some(read_password()?),
            };
            let user = app::orgs::create_org(
                services.orgs.as_ref(),
                services.users.as_ref(),
                services.clock.as_ref(),
                services.ids.as_ref(),
                app::orgs::NewOrg {
                    slug: OrgSlug::parse(&slug)?,
                    name,
                    settings: OrgSettings {
                        default_currency: currency.parse::<Currency>()?,
                        ..OrgSettings::default()
                    },
                    admin_email: email,
                    admin_name,
                    admin_password,
                },
            )
            .await?;
            println!("created org {slug}; admin {admin_email} is user {user}");
        }
        Command::IssueApiKey { org, label } => {
            let org = OrgSlug::parse(&org)?;
            if services.orgs.get_org(&org).await?.is_none() {
                return Err(format!("no org {org}").into());
            }
            let issued = app::orgs::issue_api_key(
                services.api_keys.as_ref(),
                services.clock.as_ref(),
                services.ids.as_ref(),
                &org,
                &label,
                None,
            )
            .await?;
            println!("{}", issued.secret.expose());
            eprintln!(
                "API key {} for {org}: shown once; store it now.",
                issued.record.id
            );
        }
        Command::AddInvoice {
            org,
            number,
            customer_id,
            customer_name,
            total,
            currency,
            issue_date,
            due_date,
        } => {
            let invoice = NewInvoice {
                invoice_number: number,
                customer_id,
                customer_name,
                total,
                currency,
                issue_date,
                due_date,
            };
            let (added, _) = import(&services, &org, vec![invoice]).await?;
            if added == 0 {
                return Err("the invoice exists already".into());
            }
        }
        Command::ImportInvoices { org, file } => {
            let invoices = read_invoices(&file)?;
            let (added, skipped) = import(&services, &org, invoices).await?;
            println!("added {added}, skipped {skipped} that existed");
        }
        Command::ListPayments { org, limit } => {
            let org = OrgSlug::parse(&org)?;
            let page =
                app::payments::list_payments(services.payments.as_ref(), &org, Some(limit), None)
                    .await?;
            for p in page.items {
                println!(
                    "{}  {}  {:<9}  {:>14}  {}",
                    p.created_at.date(),
                    p.id,
                    p.status.as_str(),
                    p.amount.to_string(),
                    p.invoice_number
                );
            }
        }
        Command::Init | Command::TableSpec => unreachable!("handled above"),
    }
    Ok(())
}

async fn aws_sdk_dynamodb_client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&aws_config::load_from_env().await)
}

fn read_password() -> Result<Secret<String>, Failure> {
    if let Ok(p) = std::env::var("PAYBRIDGE_ADMIN_PASSWORD") {
        return Ok(Secret::new(p));
    }
    eprintln!("password for the new admin (at least 12 characters), then Enter:");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(Secret::new(line.trim_end_matches(['\r', '\n']).to_owned()))
}

fn read_invoices(path: &PathBuf) -> Result<Vec<NewInvoice>, Failure> {
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        let mut reader = csv::Reader::from_path(path)?;
        let mut invoices = Vec::new();
        for (row, record) in reader.deserialize::<NewInvoice>().enumerate() {
            invoices.push(record.map_err(|e| format!("row {}: {e}", row + 2))?);
        }
        Ok(invoices)
    } else {
        Ok(serde_json::from_slice(&std::fs::read(path)?)?)
    }
}

/// Adds each invoice; all are validated first, so a bad row adds nothing.
async fn import(
    services: &Services,
    org: &str,
    invoices: Vec<NewInvoice>,
) -> Result<(usize, usize), Failure> {
    let org = OrgSlug::parse(org)?;
    let settings = services
        .orgs
        .get_org(&org)
        .await?
        .ok_or_else(|| format!("no org {org}"))?
        .settings;
    for (i, invoice) in invoices.iter().enumerate() {
        invoice
            .validate(settings.default_currency)
            .map_err(|e| format!("invoice {} ({}): {e}", i + 1, invoice.invoice_number))?;
    }
    let (mut added, mut skipped) = (0, 0);
    for invoice in &invoices {
        match app::ledger::add_invoice(
            services.ledger.as_ref(),
            services.clock.as_ref(),
            &org,
            settings.default_currency,
            invoice,
        )
        .await
        {
            Ok(_) => added += 1,
            Err(app::ledger::NewInvoiceError::Write(app::ports::LedgerWriteError::Exists(_))) => {
                skipped += 1
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((added, skipped))
}
