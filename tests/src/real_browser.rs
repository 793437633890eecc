//! A real browser for end-to-end tests (issue 12): being built by a helper.
