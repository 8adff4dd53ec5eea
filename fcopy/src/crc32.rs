//! CRC-32 (IEEE 802.3, reflected, as zlib and busybox's `crc32` compute
//! it), so a copy in the guest can be compared with dom0's file.

/// The byte table, built at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// A running CRC-32.
#[derive(Clone, Debug)]
pub struct Crc32 {
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
    pub const fn new() -> Self {
        Self { crc: !0, len: 0 }
    }

    /// Adds `data`.
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.crc = TABLE[((self.crc ^ u32::from(b)) & 0xff) as usize] ^ (self.crc >> 8);
        }
        self.len += data.len() as u64;
    }

    /// The sum so far.
    pub fn value(&self) -> u32 {
        !self.crc
    }

    /// The sum so far, as busybox prints it (8 lowercase hex digits).
    pub fn hex(&self) -> alloc::string::String {
        alloc::format!("{:08x}", self.value())
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

/// The sum of `data` in one go.
pub fn of(data: &[u8]) -> Crc32 {
    let mut sum = Crc32::new();
    sum.update(data);
    sum
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_the_standard_check_value() {
        assert_eq!(super::of(b"123456789").hex(), "cbf43926");
        assert_eq!(super::of(b"").hex(), "00000000");
        let mut split = super::Crc32::new();
        split.update(b"1234");
        split.update(b"56789");
        assert_eq!(split.value(), 0xcbf4_3926);
        assert_eq!(split.len(), 9);
    }
}
