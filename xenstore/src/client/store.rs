//! Node operations, shared by the client and its transactions.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Display;
use core::str::FromStr;

use super::Client;
use crate::error::{Context, ProtocolViolation, XsError, truncated};
use crate::path;
use crate::perms::{DomId, Grant, Permissions};
use crate::platform::Platform;
use crate::reply;
use crate::request::Request;
use crate::runtime::{Entered, Gate, Ticket, Tx};
use crate::wire::MsgType;

/// Where a [`Store`] sends its requests: a client, and the transaction
/// they belong to (0: none). Only this crate can make one.
pub struct Target<'a, P: Platform> {
    pub(super) client: &'a Client<P>,
    pub(super) tx: Tx,
}

/// A request of `read_many` that was framed (sent, or to be sent by the
/// next flush), or failed before being framed.
type Started<P> = Result<Ticket<P>, XsError>;

fn protocol(op: MsgType, path: Option<&str>, violation: ProtocolViolation) -> XsError {
    XsError::Protocol {
        ctx: Context::new(op, path),
        violation,
    }
}

/// Reading and writing nodes. Implemented by [`Client`] (each call on its
/// own) and by [`crate::Transaction`] (calls inside the transaction).
///
/// Paths are absolute (`/local/domain/1/name`) or, for a guest on its
/// ring, relative to its home (`name`); they are checked before sending.
/// Every method blocks until the daemon answers (or the configured request
/// timeout passes).
pub trait Store {
    /// The platform of the client.
    type Platform: Platform;

    /// Where requests go.
    fn target(&self) -> Target<'_, Self::Platform>;

    /// Sends `req` in this store's transaction; returns the reply payload.
    fn request(&self, req: &Request<'_>) -> Result<Vec<u8>, XsError> {
        let t = self.target();
        t.client.shared().call(req, t.tx)
    }

    /// The value of `path`, as bytes. Errors: ENOENT, EACCES, ...
    fn read(&self, path: &str) -> Result<Vec<u8>, XsError> {
        self.request(&Request::Read(path))
    }

    /// The value of `path`, or `None` if the node does not exist.
    fn read_optional(&self, path: &str) -> Result<Option<Vec<u8>>, XsError> {
        match self.read(path) {
            Ok(v) => Ok(Some(v)),
            Err(XsError::Enoent(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The value of `path` as UTF-8 text. Errors: [`XsError::Parse`] if it
    /// is not UTF-8.
    fn read_string(&self, path: &str) -> Result<String, XsError> {
        let bytes = self.read(path)?;
        String::from_utf8(bytes).map_err(|e| XsError::Parse {
            path: String::from(path),
            value: truncated(&String::from_utf8_lossy(e.as_bytes())),
        })
    }

    /// The value of `path` parsed with [`FromStr`] after trimming ASCII
    /// whitespace (FreeBSD's `xs_scanf`). Errors: [`XsError::Parse`].
    fn read_parsed<T: FromStr>(&self, path: &str) -> Result<T, XsError> {
        let text = self.read_string(path)?;
        text.trim_ascii().parse().map_err(|_| XsError::Parse {
            path: String::from(path),
            value: truncated(&text),
        })
    }

    /// Writes `value` (any bytes) to `path`, creating it and missing
    /// parents. Errors: EACCES, [`XsError::PayloadTooLarge`] if path and
    /// value exceed 4096 bytes, ...
    fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<(), XsError> {
        self.request(&Request::Write {
            path,
            value: value.as_ref(),
        })
        .map(drop)
    }

    /// Writes the [`Display`] form of `value` (FreeBSD's `xs_printf`).
    fn write_display(&self, path: &str, value: impl Display) -> Result<(), XsError> {
        self.write(path, alloc::format!("{value}"))
    }

    /// Creates `path` (and missing parents) with an empty value if it does
    /// not exist; an existing node is left as it is.
    fn mkdir(&self, path: &str) -> Result<(), XsError> {
        self.request(&Request::Mkdir(path)).map(drop)
    }

    /// Removes `path` and everything below it. Not an error if it does not
    /// exist, but ENOENT if its parent does not either.
    fn rm(&self, path: &str) -> Result<(), XsError> {
        self.request(&Request::Rm(path)).map(drop)
    }

    /// Removes `path`'s subtree children first, then `path`, inside a
    /// transaction (this one, or a fresh one retried on EAGAIN when called
    /// on a client) so nothing is removed unless everything is. A missing
    /// `path` is not an error.
    fn rm_tree(&self, path: &str) -> Result<(), XsError> {
        let t = self.target();
        if t.tx.id == 0 {
            t.client.transaction(|tx| remove_subtree(tx, path))
        } else {
            remove_subtree(self, path)
        }
    }

    /// Whether `path` exists. Errors other than ENOENT (e.g. EACCES) are
    /// returned, not taken for "no".
    fn exists(&self, path: &str) -> Result<bool, XsError> {
        self.read_optional(path).map(|v| v.is_some())
    }

    /// The names of `path`'s children. A listing too large for one reply
    /// (E2BIG) is fetched in pages with DIRECTORY_PART when the daemon has
    /// it; otherwise the E2BIG is returned.
    fn directory(&self, path: &str) -> Result<Vec<String>, XsError> {
        match self.request(&Request::Directory(path)) {
            Ok(body) => {
                reply::directory(&body).map_err(|v| protocol(MsgType::Directory, Some(path), v))
            }
            Err(XsError::E2big(ctx)) => directory_paged(self, path).map_err(|e| match e {
                // Daemons without DIRECTORY_PART: the listing is just too big.
                XsError::Enosys(_) | XsError::Einval(_) => XsError::E2big(ctx),
                other => other,
            }),
            Err(e) => Err(e),
        }
    }

    /// `path`'s permissions.
    fn get_permissions(&self, path: &str) -> Result<Permissions, XsError> {
        let body = self.request(&Request::GetPerms(path))?;
        reply::permissions(&body).map_err(|v| protocol(MsgType::GetPerms, Some(path), v))
    }

    /// Replaces `path`'s permissions. Errors: EACCES unless we own it (or
    /// are privileged), EPERM for a guest changing the owner, ...
    fn set_permissions(&self, path: &str, perms: &Permissions) -> Result<(), XsError> {
        let grants: Vec<Grant> = perms.entries().collect();
        self.request(&Request::SetPerms {
            path,
            perms: &grants,
        })
        .map(drop)
    }

    /// The home path of domain `domid` (`/local/domain/<domid>`).
    fn get_domain_path(&self, domid: DomId) -> Result<String, XsError> {
        let body = self.request(&Request::GetDomainPath(domid))?;
        reply::single_string(MsgType::GetDomainPath, &body)
            .map_err(|v| protocol(MsgType::GetDomainPath, None, v))
    }

    /// Reads every path in `paths` with up to `Config::pipeline_depth`
    /// requests in flight; one result per path, in order.
    ///
    /// The window is refilled in batches: each turn redeems the oldest
    /// request and every later one already answered, then sends as many
    /// new requests as that freed, in one write (one wake-up of the daemon
    /// for the lot, not one per request).
    fn read_many(&self, paths: &[&str]) -> Vec<Result<Vec<u8>, XsError>> {
        let t = self.target();
        let shared = t.client.shared();
        let depth = shared.config.pipeline_depth.max(1);
        let mut in_flight: VecDeque<(Started<Self::Platform>, &str)> = VecDeque::new();
        let mut results = Vec::with_capacity(paths.len());
        let mut redeem = |(started, path): (Started<Self::Platform>, &str)| {
            results.push(started.and_then(|ticket| shared.finish(ticket, Some(path))));
        };
        let mut unsent = paths.iter();
        loop {
            while in_flight.len() < depth
                && let Some(&path) = unsent.next()
            {
                let started = match shared.queue(&Request::Read(path), t.tx) {
                    Ok(Entered::Ticket(ticket)) => Ok(ticket),
                    Err(e) => Err(e),
                    Ok(Entered::GateClosed) => {
                        // A suspend waits for the requests we hold: end them
                        // before waiting at its gate.
                        shared.flush();
                        in_flight.drain(..).for_each(&mut redeem);
                        shared.start(&Request::Read(path), t.tx, Gate::Respect)
                    }
                };
                in_flight.push_back((started, path));
            }
            shared.flush();
            let Some(oldest) = in_flight.pop_front() else {
                break;
            };
            redeem(oldest);
            while let Some((Ok(ticket), _)) = in_flight.front()
                && ticket.answered()
                && let Some(next) = in_flight.pop_front()
            {
                redeem(next);
            }
        }
        results
    }

    /// Reads every path in `paths` (pipelined, as [`Store::read_many`]);
    /// fails with the first error in path order (FreeBSD's `xs_gather`).
    fn gather(&self, paths: &[&str]) -> Result<Vec<Vec<u8>>, XsError> {
        self.read_many(paths).into_iter().collect()
    }
}

impl<P: Platform> Store for Client<P> {
    type Platform = P;

    fn target(&self) -> Target<'_, P> {
        Target {
            client: self,
            tx: Tx::NONE,
        }
    }
}

/// Removes a subtree bottom-up with an explicit stack (no recursion: the
/// tree may be as deep as the path limit allows).
fn remove_subtree<S: Store + ?Sized>(store: &S, root: &str) -> Result<(), XsError> {
    let mut stack = alloc::vec![(String::from(root), false)];
    while let Some((node, listed)) = stack.pop() {
        if listed {
            store.rm(&node)?;
            continue;
        }
        let children = match store.directory(&node) {
            Ok(children) => children,
            Err(XsError::Enoent(_)) if node == root => return Ok(()),
            Err(e) => return Err(e),
        };
        stack.push((node.clone(), true));
        stack.extend(children.iter().map(|c| (path::join(&node, c), false)));
    }
    Ok(())
}

/// Longest child list [`directory_paged`] accepts, in bytes of names. A real
/// directory stays far below it (the daemon keeps a node's child list in one
/// record); a peer paging past it would otherwise have us allocate for ever.
pub const DIRECTORY_LISTING_MAX: u32 = 16 << 20;

/// Pages through a large directory. Restarts if the node changes between
/// pages (its generation count differs), a bounded number of times. A
/// listing longer than [`DIRECTORY_LISTING_MAX`] is a protocol error.
fn directory_paged<S: Store + ?Sized>(store: &S, path: &str) -> Result<Vec<String>, XsError> {
    const RESTARTS: usize = 8;
    'restart: for _ in 0..RESTARTS {
        let mut names = Vec::new();
        let mut offset = 0u32;
        let mut generation: Option<String> = None;
        loop {
            let body = store.request(&Request::DirectoryPart { path, offset })?;
            let page = reply::directory_page(&body)
                .map_err(|v| protocol(MsgType::DirectoryPart, Some(path), v))?;
            match &generation {
                None => generation = Some(page.generation),
                Some(g) if *g != page.generation => continue 'restart,
                Some(_) => {}
            }
            offset = offset
                .checked_add(page.consumed)
                .filter(|&end| end <= DIRECTORY_LISTING_MAX)
                .ok_or_else(|| {
                    let what = "pages run past any directory's size";
                    let violation = ProtocolViolation::MalformedBody {
                        ty: MsgType::DirectoryPart,
                        what,
                    };
                    protocol(MsgType::DirectoryPart, Some(path), violation)
                })?;
            names.extend(page.names);
            if page.last {
                return Ok(names);
            }
        }
    }
    Err(XsError::Eagain(Context::new(
        MsgType::DirectoryPart,
        Some(path),
    )))
}
