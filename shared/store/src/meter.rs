//! Counts DynamoDB calls and the capacity they consumed (every call asks for
//! ReturnConsumedCapacity=TOTAL), so that benches and logs can say what an operation costs.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::ConsumedCapacity;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Usage {
    pub calls: u64,
    pub read_units: f64,
    pub write_units: f64,
}

impl Usage {
    pub fn since(self, earlier: Usage) -> Usage {
        Usage {
            calls: self.calls - earlier.calls,
            read_units: self.read_units - earlier.read_units,
            write_units: self.write_units - earlier.write_units,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Read,
    Write,
}

#[derive(Debug, Clone, Default)]
pub struct Meter(Arc<Mutex<Usage>>);

impl Meter {
    pub fn usage(&self) -> Usage {
        *self.0.lock().expect("meter lock")
    }

    pub(crate) fn record<'a>(
        &self,
        kind: Kind,
        consumed: impl IntoIterator<Item = &'a ConsumedCapacity>,
    ) {
        let units: f64 = consumed
            .into_iter()
            .filter_map(|c| c.capacity_units())
            .sum();
        self.record_units(kind, units);
    }

    /// One call that consumed `units` (where the answer's own figure cannot be trusted).
    pub(crate) fn record_units(&self, kind: Kind, units: f64) {
        let mut usage = self.0.lock().expect("meter lock");
        usage.calls += 1;
        match kind {
            Kind::Read => usage.read_units += units,
            Kind::Write => usage.write_units += units,
        }
    }
}
