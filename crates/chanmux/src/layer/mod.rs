//! Channel layers: groups and messages across connections.
//!
//! A consumer on a demultiplexer (or connection) configured with a layer
//! gets its own [`ChannelName`] and can join groups with
//! [`Context::group_add`](crate::Context::group_add); messages sent to it or
//! to its groups arrive in [`Consumer::event`](crate::Consumer::event), and
//! frame messages ([`Message::frame`], what
//! [`Context::group_send`](crate::Context::group_send) sends) go from the
//! layer straight to its socket's outbound queue: the consumer is not woken,
//! and the frame, serialised once, is shared by every recipient.
//!
//! [`InMemoryLayer`] serves one process. The `chanmux-redis` crate carries
//! groups across processes and machines. Both pass the same conformance suite
//! (`chanmux::testing::layer_conformance`). The guarantees are those of
//! [`chanmux_core::layer`]: at most once, ordered per sender.

mod delivery;
mod memory;

pub(crate) use delivery::ConsumerDelivery;
pub use memory::InMemoryLayer;

pub use chanmux_core::layer::{
    BoxFuture, ChannelLayer, DEFAULT_MAX_GROUPS_PER_CHANNEL, Deliver, IntoSharedLayer, LayerError,
    LayerStats, SharedLayer,
};
pub use chanmux_core::{ChannelName, GroupName, MAX_NAME_LEN, Message, MessageError, NameError};
