//! ConnectWise Manage (see issue 11): being built.
