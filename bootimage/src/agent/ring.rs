//! The daemon's side of a domain's ring page, for the host agent: read and
//! write its fields, append bytes to the response ring as the daemon would,
//! and answer one request in the (paused) daemon's place. This is how the
//! hostile-peer tests play a misbehaving daemon through the real ring.
//!
//! Ring fields are named (`req_cons`, `req_prod`, `rsp_cons`, `rsp_prod`,
//! `server_features`, `connection`, `error`) or given as byte offsets.
//! Writing the response ring races with the daemon if it writes at the same
//! time: the guest keeps its ring quiet (or the daemon paused) meanwhile.

use std::time::{Duration, Instant};

use testbed::SharedPage;
use testbed::page::offset;

/// How long `inject` waits for the guest to make room in its ring.
const INJECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `answer_next` waits for the guest's request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// A xenstore message header: type, req_id, tx_id, len (u32 each, LE).
const HEADER_LEN: usize = 16;
/// Most body bytes `answer_next` declares (and pads to): well past the
/// protocol's 4096-byte payload limit, which is what the hostile-peer tests
/// cross, yet small enough that a guest's request cannot make the agent
/// allocate gigabytes.
pub const MAX_DECLARED_LEN: u32 = 64 * 1024;

/// A second view of a domain's ring page, used from the daemon's side.
pub struct DaemonSide {
    page: SharedPage,
}

impl DaemonSide {
    /// The daemon's side of `page`.
    pub fn new(page: SharedPage) -> DaemonSide {
        DaemonSide { page }
    }

    /// The u32 at byte `at`.
    pub fn read(&self, at: usize) -> Result<u32, String> {
        self.page.read_u32(at).map_err(|e| e.to_string())
    }

    /// Sets the u32 at byte `at`; returns the old value.
    pub fn write(&self, at: usize, value: u32) -> Result<u32, String> {
        let old = self.read(at)?;
        self.page.write_u32(at, value).map_err(|e| e.to_string())?;
        Ok(old)
    }

    /// Appends `bytes` to the response ring, in chunks as the guest makes
    /// room, calling `notify` (raise the guest's event) after each.
    pub fn inject(
        &self,
        bytes: &[u8],
        notify: &dyn Fn() -> Result<(), String>,
    ) -> Result<(), String> {
        let ring = offset::RING_SIZE as u32;
        let deadline = Instant::now() + INJECT_TIMEOUT;
        let mut rest = bytes;
        while !rest.is_empty() {
            let cons = self.read(offset::RSP_CONS)?;
            let prod = self.read(offset::RSP_PROD)?;
            let used = prod.wrapping_sub(cons);
            if used > ring {
                return Err(format!(
                    "response ring indexes already corrupt ({cons}, {prod})"
                ));
            }
            let at = prod % ring;
            let n = (ring - used).min(ring - at).min(rest.len() as u32) as usize;
            if n == 0 {
                if Instant::now() > deadline {
                    return Err(format!(
                        "the guest did not make room in its response ring ({} bytes left)",
                        rest.len()
                    ));
                }
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            self.page
                .write_bytes(offset::RSP + at as usize, &rest[..n])
                .map_err(|e| e.to_string())?;
            // The bytes before the index that publishes them (x86 keeps
            // stores in order; the fence keeps the compiler from reordering).
            std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
            self.page
                .write_u32(offset::RSP_PROD, prod.wrapping_add(n as u32))
                .map_err(|e| e.to_string())?;
            notify()?;
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Copies `len` bytes of the request ring starting at index `at`.
    fn read_request_ring(&self, at: u32, len: usize) -> Result<Vec<u8>, String> {
        let ring = offset::RING_SIZE;
        let mut out = vec![0u8; len];
        for (i, byte) in out.iter_mut().enumerate() {
            let pos = (at as usize + i) % ring;
            let mut one = [0u8];
            self.page
                .read_bytes(offset::REQ + pos, &mut one)
                .map_err(|e| e.to_string())?;
            *byte = one[0];
        }
        Ok(out)
    }

    /// Plays the daemon for one request: waits for the guest's next request
    /// in the ring, consumes it, and answers it with `payload` under the
    /// request's type, req_id and tx_id, declaring `declared` bytes (default
    /// the payload's length; a longer declaration is padded with zeros).
    /// Returns the request's type. The real daemon must be paused. Errors
    /// (before touching the ring) when the payload or the declaration is
    /// over [`MAX_DECLARED_LEN`].
    pub fn answer_next(
        &self,
        payload: &[u8],
        declared: Option<u32>,
        notify: &dyn Fn() -> Result<(), String>,
    ) -> Result<u32, String> {
        let payload_len = u32::try_from(payload.len())
            .ok()
            .filter(|&len| len <= MAX_DECLARED_LEN)
            .ok_or_else(|| {
                format!(
                    "a payload of {} bytes is over {MAX_DECLARED_LEN}",
                    payload.len()
                )
            })?;
        let declared = declared.unwrap_or(payload_len);
        if declared > MAX_DECLARED_LEN {
            return Err(format!(
                "a declared length of {declared} bytes is over {MAX_DECLARED_LEN}"
            ));
        }
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        let (cons, header) = loop {
            let cons = self.read(offset::REQ_CONS)?;
            let prod = self.read(offset::REQ_PROD)?;
            if prod.wrapping_sub(cons) as usize >= HEADER_LEN {
                break (cons, self.read_request_ring(cons, HEADER_LEN)?);
            }
            if Instant::now() > deadline {
                return Err("no request from the guest (is the daemon paused?)".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let word = |i: usize| {
            let b = &header[i * 4..i * 4 + 4];
            u32::from_le_bytes([b[0], b[1], b[2], b[3]])
        };
        let (ty, req_id, tx_id, len) = (word(0), word(1), word(2), word(3));
        // Wait for the whole request, then consume it as the daemon would.
        let total = (HEADER_LEN as u32).saturating_add(len);
        while self.read(offset::REQ_PROD)?.wrapping_sub(cons) < total {
            if Instant::now() > deadline {
                return Err(format!(
                    "the guest's request of {len} bytes never completed"
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.write(offset::REQ_CONS, cons.wrapping_add(total))?;
        let mut reply = Vec::with_capacity(HEADER_LEN + payload.len());
        for w in [ty, req_id, tx_id, declared] {
            reply.extend_from_slice(&w.to_le_bytes());
        }
        reply.extend_from_slice(payload);
        reply.resize(HEADER_LEN + (declared as usize).max(payload.len()), 0);
        self.inject(&reply, notify)?;
        Ok(ty)
    }
}

/// A ring field's byte offset, by name or number (decimal or `0x` hex).
pub fn field_offset(name: &str) -> Result<usize, String> {
    let at = match name {
        "req_cons" => offset::REQ_CONS,
        "req_prod" => offset::REQ_PROD,
        "rsp_cons" => offset::RSP_CONS,
        "rsp_prod" => offset::RSP_PROD,
        "server_features" => offset::SERVER_FEATURES,
        "connection" => offset::CONNECTION,
        "error" => offset::ERROR,
        other => super::verbs::parse_number(other)? as usize,
    };
    if at % 4 != 0 || at + 4 > testbed::page::PAGE_SIZE {
        return Err(format!(
            "ring offset {at} is not an aligned u32 in the page"
        ));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_fields_by_name_or_offset() {
        assert_eq!(field_offset("rsp_prod"), Ok(2060));
        assert_eq!(field_offset("req_cons"), Ok(2048));
        assert_eq!(field_offset("0x800"), Ok(2048));
        assert_eq!(field_offset("4000"), Ok(4000));
        assert!(field_offset("2049").is_err(), "unaligned");
        assert!(field_offset("4096").is_err(), "outside the page");
        assert!(field_offset("rsp").is_err());
    }

    fn page(name: &str) -> (DaemonSide, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("ring-{name}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let page = SharedPage::create(&path).unwrap();
        (DaemonSide::new(page), path)
    }

    #[test]
    fn injected_bytes_wrap_around_the_ring_and_move_rsp_prod() {
        let (side, path) = page("inject");
        // Start 4 bytes before the end of the ring, as a guest that has
        // read everything so far left it.
        side.write(offset::RSP_CONS, 1020).unwrap();
        side.write(offset::RSP_PROD, 1020).unwrap();
        let kicks = std::cell::Cell::new(0);
        side.inject(b"abcdefgh", &|| {
            kicks.set(kicks.get() + 1);
            Ok(())
        })
        .unwrap();
        assert_eq!(side.read(offset::RSP_PROD).unwrap(), 1028);
        let mut tail = [0u8; 4];
        let reopened = SharedPage::open(&path).unwrap();
        reopened.read_bytes(offset::RSP + 1020, &mut tail).unwrap();
        assert_eq!(&tail, b"abcd");
        reopened.read_bytes(offset::RSP, &mut tail).unwrap();
        assert_eq!(&tail, b"efgh");
        assert_eq!(kicks.get(), 2, "one event per chunk");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_request_is_consumed_and_answered_under_its_own_id() {
        let (side, path) = page("answer");
        let writer = SharedPage::open(&path).unwrap();
        // A READ (type 2) with req_id 7 of "name\0", as a guest writes it.
        let mut request = Vec::new();
        for w in [2u32, 7, 0, 5] {
            request.extend_from_slice(&w.to_le_bytes());
        }
        request.extend_from_slice(b"name\0");
        writer.write_bytes(offset::REQ, &request).unwrap();
        writer
            .write_u32(offset::REQ_PROD, request.len() as u32)
            .unwrap();
        let ty = side.answer_next(b"guest", Some(9), &|| Ok(())).unwrap();
        assert_eq!(ty, 2);
        assert_eq!(side.read(offset::REQ_CONS).unwrap(), request.len() as u32);
        assert_eq!(
            side.read(offset::RSP_PROD).unwrap(),
            16 + 9,
            "padded to the declared length"
        );
        let mut header = [0u8; 16];
        writer.read_bytes(offset::RSP, &mut header).unwrap();
        let words: Vec<u32> = header
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(words, [2, 7, 0, 9]);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_declared_length_past_the_bound_is_refused_before_the_ring_is_touched() {
        let (side, path) = page("declared");
        // Whatever the guest asks, the agent never pads gigabytes.
        let err = side
            .answer_next(b"x", Some(u32::MAX), &|| Ok(()))
            .unwrap_err();
        assert!(err.contains("declared length"), "{err}");
        assert_eq!(side.read(offset::RSP_PROD).unwrap(), 0, "nothing injected");
        assert_eq!(side.read(offset::REQ_CONS).unwrap(), 0, "nothing consumed");
        let _ = std::fs::remove_file(path);
    }
}
