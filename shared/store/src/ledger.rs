//! The built-in ledger's invoices: `ORG#o / INV#number`, and by customer in GSI1.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::Update;
use domain::{CustomerId, Invoice, InvoiceNumber, InvoiceStatus, Money, OrgSlug};
use time::OffsetDateTime;

use app::ports::{
    Accounting, AccountingError, InvoiceRead, LedgerInvoice, LedgerRepo, LedgerWriteError,
    StoreError,
};

use crate::Store;
use crate::directory::org_pk;
use crate::item::{Attrs, Item, date, key, n, s, time};
use crate::table::{GSI1, GSI1_PK, GSI1_SK};

pub(crate) fn invoice_sk(number: &InvoiceNumber) -> String {
    format!("INV#{number}")
}

fn customer_pk(org: &OrgSlug, customer: &CustomerId) -> String {
    format!("ORG#{org}#CUST#{customer}")
}

fn invoice_item(org: &OrgSlug, inv: &Invoice, now: OffsetDateTime) -> Attrs {
    let mut item = key(org_pk(org), invoice_sk(&inv.number));
    item.extend([
        ("type".into(), s("invoice")),
        (GSI1_PK.into(), s(customer_pk(org, &inv.customer_id))),
        (
            GSI1_SK.into(),
            s(format!("INV#{}#{}", inv.issue_date, inv.number)),
        ),
        ("invoice_number".into(), s(inv.number.as_str())),
        ("customer_id".into(), s(inv.customer_id.as_str())),
        ("customer_name".into(), s(&inv.customer_name)),
        ("currency".into(), s(inv.total.currency().code())),
        ("total".into(), n(inv.total.minor())),
        ("amount_due".into(), n(inv.amount_due.minor())),
        ("status".into(), s(inv.status.as_str())),
        ("issue_date".into(), date(inv.issue_date)),
        ("due_date".into(), date(inv.due_date)),
        ("version".into(), n(1)),
        ("created_at".into(), time(now)),
        ("updated_at".into(), time(now)),
    ]);
    item
}

fn read_invoice(attrs: &Attrs) -> Result<LedgerInvoice, StoreError> {
    let i = Item(attrs);
    let currency = i.parsed("currency", str::parse)?;
    let money = |name: &str| {
        Money::from_minor(i.u64(name)?, currency)
            .map_err(|_| StoreError(format!("stored invoice has a bad {name}")))
    };
    Ok(LedgerInvoice {
        invoice: Invoice {
            number: i.parsed("invoice_number", InvoiceNumber::parse)?,
            customer_id: i.parsed("customer_id", CustomerId::parse)?,
            customer_name: i.s("customer_name")?.to_owned(),
            total: money("total")?,
            amount_due: money("amount_due")?,
            status: i.parsed("status", |st| InvoiceStatus::parse(st).ok_or(()))?,
            issue_date: i.date("issue_date")?,
            due_date: i.date("due_date")?,
        },
        version: i.u64("version")?,
    })
}

#[async_trait]
impl LedgerRepo for Store {
    async fn add_invoice(
        &self,
        org: &OrgSlug,
        invoice: &Invoice,
        now: OffsetDateTime,
    ) -> Result<(), LedgerWriteError> {
        if self.put_new(invoice_item(org, invoice, now)).await? {
            Ok(())
        } else {
            Err(LedgerWriteError::Exists(invoice.number.clone()))
        }
    }

    async fn get_invoice(
        &self,
        org: &OrgSlug,
        number: &InvoiceNumber,
    ) -> Result<Option<LedgerInvoice>, StoreError> {
        self.get_item(org_pk(org), &invoice_sk(number))
            .await?
            .as_ref()
            .map(read_invoice)
            .transpose()
    }

    async fn invoices_of_customer(
        &self,
        org: &OrgSlug,
        customer: &CustomerId,
    ) -> Result<Vec<Invoice>, StoreError> {
        let mut invoices = self
            .query_prefix(Some(GSI1), customer_pk(org, customer), "INV#")
            .await?
            .iter()
            .map(|a| read_invoice(a).map(|l| l.invoice))
            .collect::<Result<Vec<_>, _>>()?;
        invoices.reverse();
        Ok(invoices)
    }
}

/// The ledger as the accounting system: the invoice with the version that guards its balance.
#[async_trait]
impl Accounting for Store {
    async fn read_invoice(
        &self,
        org: &OrgSlug,
        number: &InvoiceNumber,
    ) -> Result<Option<InvoiceRead>, AccountingError> {
        Ok(self.get_invoice(org, number).await?.map(|l| InvoiceRead {
            invoice: l.invoice,
            ledger_version: Some(l.version),
        }))
    }

    async fn open_invoices(
        &self,
        org: &OrgSlug,
        customer: &CustomerId,
    ) -> Result<Vec<Invoice>, AccountingError> {
        let mut open = self.invoices_of_customer(org, customer).await?;
        open.retain(Invoice::is_payable);
        Ok(open)
    }
}

/// The update that takes a payment off a ledger invoice's balance, guarded by the version read.
pub(crate) fn pay_down_update(
    table: &str,
    org: &OrgSlug,
    read: &InvoiceRead,
    amount: Money,
    now: OffsetDateTime,
) -> Result<Update, StoreError> {
    let version = read
        .ledger_version
        .ok_or_else(|| StoreError("not a ledger invoice".into()))?;
    let due = read
        .invoice
        .amount_due
        .checked_sub(amount)
        .map_err(|_| StoreError("the payment is more than the balance".into()))?;
    let status = if due.is_zero() {
        InvoiceStatus::Paid
    } else {
        InvoiceStatus::Open
    };
    Ok(Update::builder()
        .table_name(table)
        .set_key(Some(key(org_pk(org), invoice_sk(&read.invoice.number))))
        .update_expression(
            "SET amount_due = :due, #status = :status, version = :next, updated_at = :now",
        )
        .condition_expression("version = :version AND #status = :open")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":due", n(due.minor()))
        .expression_attribute_values(":status", s(status.as_str()))
        .expression_attribute_values(":open", s(InvoiceStatus::Open.as_str()))
        .expression_attribute_values(":version", n(version))
        .expression_attribute_values(":next", n(version + 1))
        .expression_attribute_values(":now", time(now))
        .build()
        .expect("update has its fields"))
}
