//! CRC-32 (IEEE 802.3, reflected, as zlib and busybox's `crc32` compute it),
//! so a test can compare bytes that crossed a vchan with dom0's own sum: the
//! file copy service's, which the shell's `sum` prints too.

pub use fcopy::Crc32;
