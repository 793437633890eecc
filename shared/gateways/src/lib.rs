//! Payment gateways behind the app's `Gateway` port, and the dispatch by org.

pub mod by_org;
pub mod sandbox;
pub mod sandbox_events;
pub mod signature;
pub mod stripe;

pub use by_org::OrgGateways;
pub use sandbox::SandboxGateway;
pub use stripe::StripeGateway;
