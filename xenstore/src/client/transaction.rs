//! Transactions.

use super::{Client, Store, Target};
use crate::error::{Context, XsError};
use crate::platform::Platform;
use crate::reply;
use crate::request::Request;
use crate::runtime::{Gate, Tx};
use crate::wire::MsgType;

/// An open transaction: reads and writes through it (the [`Store`] methods)
/// see and change a private copy of the store, applied atomically by
/// [`Transaction::commit`]. Holds the suspend lock shared until it ends (a
/// suspend waits for it up to `Config::suspend_transaction_grace`).
/// Dropping it without ending it aborts it.
///
/// Across a VM suspend: after a cancelled one (a checkpoint) it goes on as
/// if nothing happened; after a real resume (a fresh connection, maybe on
/// another host) the daemon no longer has it, so its requests and its
/// commit end with [`XsError::Eagain`] without being sent, and an abort
/// succeeds: run it again (`Client::transaction` does).
pub struct Transaction<P: Platform> {
    client: Client<P>,
    tx: Tx,
    ended: bool,
}

impl<P: Platform> Transaction<P> {
    pub(super) fn start(client: Client<P>) -> Result<Transaction<P>, XsError> {
        let shared = client.shared();
        shared.suspend_lock.begin_transaction();
        let id = shared
            .start(&Request::TransactionStart, Tx::NONE, Gate::Respect)
            .and_then(|ticket| {
                let epoch = ticket.epoch();
                shared.finish(ticket, None).map(|body| (body, epoch))
            })
            .and_then(|(body, epoch)| {
                reply::transaction_id(&body)
                    .map(|id| Tx { id, epoch })
                    .map_err(|violation| XsError::Protocol {
                        ctx: Context::new(MsgType::TransactionStart, None),
                        violation,
                    })
            });
        match id {
            Ok(tx) => Ok(Transaction {
                client,
                tx,
                ended: false,
            }),
            Err(e) => {
                shared.suspend_lock.end_transaction();
                Err(e)
            }
        }
    }

    /// The daemon's id for this transaction.
    pub fn id(&self) -> u32 {
        self.tx.id
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
            .call(&Request::TransactionEnd { commit }, self.tx)
            .map(drop);
        // The daemon has forgotten it whatever the answer (or the connection is gone).
        shared.suspend_lock.end_transaction();
        match result {
            // Ended by a real resume: there is nothing left to abort.
            Err(XsError::Eagain(_)) if !commit => Ok(()),
            other => other,
        }
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
            tx: self.tx,
        }
    }
}
