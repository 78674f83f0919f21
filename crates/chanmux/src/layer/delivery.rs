//! Where the layer hands a consumer's messages.

use super::{Deliver, Message};
use crate::consumer::WeakContext;

/// Delivers to one consumer, without waiting: a frame message goes straight
/// to its socket's outbound queue, anything else to its inbox for
/// [`Consumer::event`](crate::Consumer::event); a full queue drops the
/// message (at-most-once delivery). Holds the consumer weakly, so a
/// connection that has gone away is not kept open by its layer registration.
pub(crate) struct ConsumerDelivery {
    consumer: WeakContext,
}

impl ConsumerDelivery {
    pub(crate) fn new(consumer: WeakContext) -> Self {
        ConsumerDelivery { consumer }
    }
}

impl Deliver for ConsumerDelivery {
    fn deliver(&self, message: &Message) -> bool {
        self.consumer
            .upgrade()
            .is_some_and(|consumer| consumer.deliver(message))
    }
}
