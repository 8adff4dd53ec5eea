//! Shared-memory protocols between domains from Xen's `public/io/` headers.

pub mod vchan;
