//! Headless Chromium for browser tests (issue 12): being built by a helper.
