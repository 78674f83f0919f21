//! The pushes of the node connections on their way to the subscriber task.
//!
//! Two queues, because they need different limits. Sharded messages go
//! through a bounded one: if the task falls behind (a sync waiting on a
//! failing master, or messages arriving faster than they are dispatched),
//! the overflow is dropped and counted as dropped in the layer's stats
//! instead of growing memory without limit. Pushes about the state (a lost
//! connection, a server-sent `SUNSUBSCRIBE`) go through an unbounded one
//! and are never lost: there is at most one loss per connection and one
//! `SUNSUBSCRIBE` per subscription or per unsubscription of ours, so its
//! length is bounded by what the task itself did.

use std::sync::Arc;

use redis::aio::{AsyncPushSender, SendError};
use redis::{PushInfo, PushKind};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::layer::Shared;

/// How many sharded messages may wait for the task (for all its
/// connections together): at a few hundred bytes each, about a megabyte,
/// and a few milliseconds of dispatching.
pub(crate) const CAPACITY: usize = 4096;

/// A push from one node connection, tagged with the connection's id.
pub(crate) type Push = (u64, PushInfo);

/// The task's ends of the queues.
pub(crate) struct Receivers {
    /// Sharded messages, bounded by [`CAPACITY`].
    pub(crate) messages: mpsc::Receiver<Push>,
    /// Connection losses and `SUNSUBSCRIBE`s.
    pub(crate) control: mpsc::UnboundedReceiver<Push>,
}

/// The connections' ends of the queues, cloned into each connection's
/// [`Tagged`] sender.
#[derive(Clone)]
pub(crate) struct Senders {
    messages: mpsc::Sender<Push>,
    control: mpsc::UnboundedSender<Push>,
    /// Where an overflowing message is counted as dropped.
    shared: Arc<Shared>,
}

/// Both ends of new queues.
pub(crate) fn queues(shared: Arc<Shared>) -> (Senders, Receivers) {
    let (messages, messages_rx) = mpsc::channel(CAPACITY);
    let (control, control_rx) = mpsc::unbounded_channel();
    let senders = Senders {
        messages,
        control,
        shared,
    };
    let receivers = Receivers {
        messages: messages_rx,
        control: control_rx,
    };
    (senders, receivers)
}

impl Senders {
    /// The push sender for the connection numbered `id`.
    pub(crate) fn tagged(&self, id: u64) -> Tagged {
        Tagged {
            id,
            senders: self.clone(),
        }
    }
}

/// Forwards a connection's pushes to the task, tagged so the task knows
/// which connection they came from.
pub(crate) struct Tagged {
    id: u64,
    senders: Senders,
}

impl AsyncPushSender for Tagged {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        let queues = &self.senders;
        match info.kind {
            PushKind::SMessage => match queues.messages.try_send((self.id, info)) {
                Ok(()) => Ok(()),
                // Not an error for redis-rs (which ignores the result anyway
                // and only stops calling after a disconnection): the message
                // is accounted for, and the connection is fine.
                Err(TrySendError::Full(_)) => {
                    queues.shared.count_dropped();
                    Ok(())
                }
                Err(TrySendError::Closed(_)) => Err(SendError),
            },
            PushKind::Disconnection | PushKind::SUnsubscribe => {
                queues.control.send((self.id, info)).map_err(|_| SendError)
            }
            // The confirmations of our SSUBSCRIBEs, already received as
            // their replies; nothing else is subscribed on these connections.
            _ => Ok(()),
        }
    }
}
