//! [`InSpan`]: a future run inside a tracing span, for one pointer when the
//! span is disabled.
//!
//! `tracing::Instrument` stores the span inline (40 bytes) even when no
//! subscriber wants it; every connection and every stream of it holds one
//! for its whole life, so that would be paid by idle connections of servers
//! that log nothing at that level.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::Span;

pin_project_lite::pin_project! {
    /// Polls `future` with `span` entered (when the span is enabled).
    pub(crate) struct InSpan<F> {
        span: Option<Box<Span>>,
        #[pin]
        future: F,
    }
}

impl<F> InSpan<F> {
    pub(crate) fn new(span: Span, future: F) -> Self {
        InSpan {
            span: (!span.is_disabled()).then(|| Box::new(span)),
            future,
        }
    }
}

impl<F: Future> Future for InSpan<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = this.span.as_ref().map(|span| span.enter());
        this.future.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_span_costs_one_pointer() {
        let future = std::future::ready(0_u64);
        let inline = std::mem::size_of_val(&future);
        let wrapped = InSpan::new(Span::none(), future);
        assert!(wrapped.span.is_none());
        assert_eq!(std::mem::size_of_val(&wrapped), inline + 8);
    }
}
