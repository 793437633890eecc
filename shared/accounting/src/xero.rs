//! Xero (issue 11): being built by a helper.
