//! Delivering layer messages into a consumer's inbox.

use super::{Deliver, Message};
use crate::consumer::Event;
use crate::queue;

/// Puts messages in a consumer's inbox, without waiting: a full inbox drops
/// the message (at-most-once delivery). Holds the inbox weakly, so a
/// connection that has gone away is not kept open by its layer registration.
pub(crate) struct InboxDelivery {
    inbox: queue::WeakSender<Event>,
}

impl InboxDelivery {
    pub(crate) fn new(inbox: queue::WeakSender<Event>) -> Self {
        InboxDelivery { inbox }
    }
}

impl Deliver for InboxDelivery {
    fn deliver(&self, message: Message) -> bool {
        self.inbox.try_send(Event::Layer(message)).is_ok()
    }
}
