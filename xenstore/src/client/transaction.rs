//! Transactions.

use super::{Client, Store, Target};
use crate::error::{Context, XsError};
use crate::platform::Platform;
use crate::reply;
use crate::request::Request;
use crate::wire::MsgType;

/// An open transaction: reads and writes through it (the [`Store`] methods)
/// see and change a private copy of the store, applied atomically by
/// [`Transaction::commit`]. Holds the suspend lock shared until it ends.
/// Dropping it without ending it aborts it.
pub struct Transaction<P: Platform> {
    client: Client<P>,
    id: u32,
    ended: bool,
}

impl<P: Platform> Transaction<P> {
    pub(super) fn start(client: Client<P>) -> Result<Transaction<P>, XsError> {
        let shared = client.shared();
        shared.suspend_lock.lock_shared();
        let id = shared.call(&Request::TransactionStart, 0).and_then(|body| {
            reply::transaction_id(&body).map_err(|violation| XsError::Protocol {
                ctx: Context::new(MsgType::TransactionStart, None),
                violation,
            })
        });
        match id {
            Ok(id) => Ok(Transaction {
                client,
                id,
                ended: false,
            }),
            Err(e) => {
                shared.suspend_lock.unlock_shared();
                Err(e)
            }
        }
    }

    /// The daemon's id for this transaction.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Commits. Errors: [`XsError::Eagain`] if a conflicting change was
    /// made meanwhile (nothing was applied: run the transaction again, or
    /// use `Client::transaction`, which does).
    pub fn commit(mut self) -> Result<(), XsError> {
        self.end(true)
    }

    /// Discards every change.
    pub fn abort(mut self) -> Result<(), XsError> {
        self.end(false)
    }

    fn end(&mut self, commit: bool) -> Result<(), XsError> {
        self.ended = true;
        let shared = self.client.shared();
        let result = shared
            .call(&Request::TransactionEnd { commit }, self.id)
            .map(drop);
        // The daemon has forgotten it whatever the answer (or the connection is gone).
        shared.suspend_lock.unlock_shared();
        result
    }
}

impl<P: Platform> Drop for Transaction<P> {
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.end(false);
        }
    }
}

impl<P: Platform> Store for Transaction<P> {
    type Platform = P;

    fn target(&self) -> Target<'_, P> {
        Target {
            client: &self.client,
            tx_id: self.id,
        }
    }
}
