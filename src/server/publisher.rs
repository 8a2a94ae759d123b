//! The cross-thread handle into the loop (SPEC §3.3): a channel plus a `mio::Waker`.
//!
//! A [`Publisher`] is cheap to clone and `Send`, so any thread of an embedding program can
//! publish events or ask the server to stop. Bodies travel as raw JSON bytes and go through
//! exactly the same parse / validate / append path as HTTP ingest, so there is one set of
//! rules however an event arrives.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

pub use crate::app::{PublishAck, PublishError, PublishReply};

pub(crate) enum Command {
    Publish {
        body: Vec<u8>,
        reply: Option<PublishReply>,
    },
    Shutdown,
}

/// A handle that feeds the loop from other threads.
#[derive(Clone)]
pub struct Publisher {
    tx: Sender<Command>,
    waker: Arc<mio::Waker>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Publisher")
    }
}

impl Publisher {
    pub(crate) fn new(waker: Arc<mio::Waker>) -> (Publisher, Receiver<Command>) {
        let (tx, rx) = mpsc::channel();
        (Publisher { tx, waker }, rx)
    }

    fn send(&self, cmd: Command) -> Result<(), PublishError> {
        self.tx.send(cmd).map_err(|_| PublishError::Closed)?;
        self.waker.wake().map_err(|_| PublishError::Closed)
    }

    /// Enqueues a JSON object, array or NDJSON body; does not wait.
    pub fn publish(&self, body: impl Into<Vec<u8>>) -> Result<(), PublishError> {
        self.send(Command::Publish {
            body: body.into(),
            reply: None,
        })
    }

    /// Enqueues a body and waits for the loop's verdict (accepted seqs, or why not).
    pub fn publish_wait(
        &self,
        body: impl Into<Vec<u8>>,
        timeout: Duration,
    ) -> Result<PublishAck, PublishError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Command::Publish {
            body: body.into(),
            reply: Some(tx),
        })?;
        match rx.recv_timeout(timeout) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(PublishError::Timeout),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(PublishError::Closed),
        }
    }

    /// Asks the server to shut down gracefully (as SIGTERM does).
    pub fn shutdown(&self) -> Result<(), PublishError> {
        self.send(Command::Shutdown)
    }
}
