//! Channel layers: groups and messages across connections.
//!
//! A consumer on a demultiplexer (or connection) configured with a layer
//! gets its own [`ChannelName`] and can join groups with
//! [`Context::group_add`](crate::Context::group_add); messages sent to it or
//! to its groups arrive in [`Consumer::event`](crate::Consumer::event), and
//! frame messages ([`Message::frame`]) go straight to its client.
//!
//! [`InMemoryLayer`] serves one process. The `chanmux-redis` crate carries
//! groups across processes and machines. Both pass the same conformance suite
//! (`chanmux::testing::layer_conformance`). The guarantees are those of
//! [`chanmux_core::layer`]: at most once, ordered per sender.

mod delivery;
mod memory;

pub(crate) use delivery::InboxDelivery;
pub use memory::InMemoryLayer;

pub use chanmux_core::layer::{
    BoxFuture, ChannelLayer, DEFAULT_MAX_GROUPS_PER_CHANNEL, Deliver, IntoSharedLayer, LayerError,
    LayerStats, SharedLayer,
};
pub use chanmux_core::{ChannelName, GroupName, MAX_NAME_LEN, Message, MessageError, NameError};
