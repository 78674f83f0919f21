//! [`PathRouter`]: picks a consumer by the connection's path.

use std::fmt;
use std::sync::Arc;

use crate::{BoxError, Consumer, ConsumerFactory, Context, Start, Started};

/// Chooses a consumer by the connection path, like Channels' `URLRouter`.
///
/// Useful as one stream of a [`Demultiplexer`](crate::Demultiplexer): the
/// stream is served by whichever consumer matches the path the client
/// connected to, and refused when none does.
///
/// A route matches when it equals the path with leading and trailing `/`
/// ignored: route `"echo"` matches `/echo`, `/echo/` and `echo`.
///
/// ```
/// use chanmux::{Consumer, Demultiplexer, PathRouter};
///
/// struct Echo;
/// impl Consumer for Echo {}
/// struct AltEcho;
/// impl Consumer for AltEcho {}
///
/// let demux = Demultiplexer::builder()
///     .stream("pathfilter", PathRouter::new().route("echo", || Echo).route("altecho", || AltEcho))
///     .build();
/// ```
#[derive(Default, Clone)]
pub struct PathRouter {
    routes: Vec<(String, Arc<dyn ConsumerFactory>)>,
}

impl PathRouter {
    /// A router with no routes (it refuses everything).
    pub fn new() -> Self {
        PathRouter::default()
    }

    /// Serves `path` with consumers made by `factory`.
    #[must_use]
    pub fn route(mut self, path: &str, factory: impl ConsumerFactory) -> Self {
        self.routes
            .push((normalize(path).to_owned(), Arc::new(factory)));
        self
    }
}

fn normalize(path: &str) -> &str {
    path.trim_matches('/')
}

impl ConsumerFactory for PathRouter {
    fn start(&self, start: Start) -> Started {
        let path = normalize(&start.scope().path);
        match self.routes.iter().find(|(route, _)| route == path) {
            Some((_, factory)) => factory.start(start),
            None => {
                tracing::debug!(path = %start.scope().path, "no route for path; refusing");
                start.run(NoRoute)
            }
        }
    }
}

/// Stands in for a missing route (or a demultiplexer without streams): refuses.
pub(crate) struct NoRoute;

impl Consumer for NoRoute {
    async fn connect(&mut self, ctx: &Context) -> Result<(), BoxError> {
        ctx.refuse();
        Ok(())
    }
}

impl fmt::Debug for PathRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|(p, _)| p))
            .finish()
    }
}
