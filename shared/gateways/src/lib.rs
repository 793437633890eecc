//! Payment gateways behind the app's `Gateway` port.

pub mod sandbox;
pub mod sandbox_events;
pub mod signature;

pub use sandbox::SandboxGateway;
