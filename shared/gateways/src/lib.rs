//! Payment gateways behind the app's `Gateway` port.

pub mod sandbox;

pub use sandbox::SandboxGateway;
