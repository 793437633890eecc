//! Reading and writing item attributes by hand: explicit, and no surprise in what is stored.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use time::{Date, OffsetDateTime, format_description::well_known::Rfc3339};

use app::ports::StoreError;

pub(crate) type Attrs = HashMap<String, AttributeValue>;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn time(t: OffsetDateTime) -> AttributeValue {
    s(t.format(&Rfc3339).expect("RFC 3339 formats any UTC time"))
}

pub(crate) fn date(d: Date) -> AttributeValue {
    s(d.to_string())
}

/// A payment's split across invoices: a list of `{invoice, amount}` maps (amounts in minor
/// units of the payment's currency). Nothing is stored for a payment of one invoice.
pub(crate) fn allocations(item: &mut Attrs, parts: &[domain::Allocation]) {
    if parts.is_empty() {
        return;
    }
    let list = parts
        .iter()
        .map(|a| {
            AttributeValue::M(HashMap::from([
                ("invoice".to_owned(), s(a.invoice.as_str())),
                ("amount".to_owned(), n(a.amount.minor())),
            ]))
        })
        .collect();
    item.insert("allocations".into(), AttributeValue::L(list));
}

pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Attrs {
    HashMap::from([
        (crate::table::PK.to_owned(), s(pk)),
        (crate::table::SK.to_owned(), s(sk)),
    ])
}

/// A read item with typed getters that name the missing or malformed attribute.
pub(crate) struct Item<'a>(pub &'a Attrs);

fn corrupt(name: &str) -> StoreError {
    StoreError(format!(
        "stored item has a missing or malformed attribute {name:?}"
    ))
}

impl Item<'_> {
    /// The split written by `allocations` (empty when there is none).
    pub fn allocations(
        &self,
        currency: domain::Currency,
    ) -> Result<Vec<domain::Allocation>, StoreError> {
        let Some(list) = self.0.get("allocations") else {
            return Ok(Vec::new());
        };
        let list = list.as_l().map_err(|_| corrupt("allocations"))?;
        list.iter()
            .map(|v| {
                let part = Item(v.as_m().map_err(|_| corrupt("allocations"))?);
                Ok(domain::Allocation {
                    invoice: part.parsed("invoice", domain::InvoiceNumber::parse)?,
                    amount: domain::Money::from_minor(part.u64("amount")?, currency)
                        .map_err(|_| corrupt("allocations"))?,
                })
            })
            .collect()
    }

    pub fn s(&self, name: &str) -> Result<&str, StoreError> {
        self.opt_s(name).ok_or_else(|| corrupt(name))
    }

    pub fn opt_s(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    }

    pub fn u64(&self, name: &str) -> Result<u64, StoreError> {
        self.0
            .get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt(name))
    }

    pub fn i64(&self, name: &str) -> Result<i64, StoreError> {
        self.0
            .get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| corrupt(name))
    }

    pub fn bool(&self, name: &str) -> Result<bool, StoreError> {
        self.0
            .get(name)
            .and_then(|v| v.as_bool().ok())
            .copied()
            .ok_or_else(|| corrupt(name))
    }

    pub fn strings(&self, name: &str) -> Result<Vec<String>, StoreError> {
        let list = self
            .0
            .get(name)
            .and_then(|v| v.as_l().ok())
            .ok_or_else(|| corrupt(name))?;
        list.iter()
            .map(|v| v.as_s().cloned().map_err(|_| corrupt(name)))
            .collect()
    }

    pub fn time(&self, name: &str) -> Result<OffsetDateTime, StoreError> {
        OffsetDateTime::parse(self.s(name)?, &Rfc3339).map_err(|_| corrupt(name))
    }

    pub fn date(&self, name: &str) -> Result<Date, StoreError> {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        Date::parse(self.s(name)?, &format).map_err(|_| corrupt(name))
    }

    pub fn bytes(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.0
            .get(name)
            .and_then(|v| v.as_b().ok())
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| corrupt(name))
    }

    /// Parses a stored string with a domain parser.
    pub fn parsed<T, E>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<T, StoreError> {
        parse(self.s(name)?).map_err(|_| corrupt(name))
    }
}
