//! Xero (see issue 11): being built.
