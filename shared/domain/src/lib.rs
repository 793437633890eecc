//! Paybridge's domain: pure types and rules. No I/O, no AWS, no HTTP.

mod allocation;
mod card;
mod ids;
mod invoice;
mod money;
mod names;
mod org;
mod payment;
mod secret;
mod surcharge;
pub mod totp;

pub use allocation::{Allocation, AllocationError, allocate, oldest_first_order};
pub use card::card_brand;
pub use ids::{
    ApiKeyId, EnrolmentId, IdError, InvitationId, MandateId, MethodId, PaymentId, ScheduleId,
    UserId,
};
pub use invoice::{Invoice, InvoiceStatus};
pub use money::{Currency, Money, MoneyError, UnknownCurrency};
pub use names::{CustomerId, Email, InvoiceNumber, NameError, OrgSlug};
pub use org::{AutoPaySettings, Membership, Org, OrgSettings, Role, local_date, local_instant};
pub use payment::{PaymentStatus, Report};
pub use secret::{Secret, token_hash};
pub use surcharge::{
    ANY_BRAND, MAX_RATE_BPS, SurchargeError, SurchargeRule, card_surcharge, rule_for,
    validate_surcharges,
};
