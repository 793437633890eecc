//! A double of the Xero API (issue 11): being built by a helper.
