//! A double of the ConnectWise Manage API (issue 11): being built by a helper.
