//! CRC-32 (IEEE 802.3, reflected, as zlib and busybox's `crc32` compute it),
//! so a test can compare bytes that crossed a vchan with dom0's own sum.

/// A running CRC-32.
pub struct Crc32 {
    table: [u32; 256],
    crc: u32,
    len: u64,
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// An empty sum.
    pub fn new() -> Self {
        let mut table = [0u32; 256];
        for (i, slot) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        Self {
            table,
            crc: !0,
            len: 0,
        }
    }

    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.crc = self.table[((self.crc ^ u32::from(b)) & 0xff) as usize] ^ (self.crc >> 8);
        }
        self.len += data.len() as u64;
    }

    /// The sum so far, as busybox prints it (8 lowercase hex digits).
    pub fn hex(&self) -> alloc::string::String {
        alloc::format!("{:08x}", !self.crc)
    }

    /// Bytes summed.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was summed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
