//! Payment gateways behind the app's `Gateway` port, and the dispatch by org.

pub mod authorize_net;
pub mod by_org;
pub mod sandbox;
pub mod sandbox_events;
pub mod signature;
pub mod stripe;

pub use by_org::{Endpoints, OrgGateways};
pub use sandbox::SandboxGateway;
pub use stripe::StripeGateway;
