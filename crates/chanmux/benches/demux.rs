//! One frame through the whole runtime, in process: client → connection loop
//! → demultiplexer → stream consumer → wrapped reply → client, measured as a
//! round trip through the `Communicator` (no socket).
//!
//! `plain` is the same echo consumer owning the connection, with no
//! demultiplexer: the ceiling. Read the ratio between the two.
//!
//! `cargo bench -p chanmux --bench demux`

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use chanmux::testing::Communicator;
use chanmux::{BoxError, Consumer, Context, Demultiplexer, Text};

struct Echo;

impl Consumer for Echo {
    async fn receive_text(&mut self, ctx: &Context, text: Text) -> Result<(), BoxError> {
        ctx.send_text(text).await?;
        Ok(())
    }
}

fn round_trip(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("round_trip");
    for (label, size) in [("64B", 64), ("4KiB", 4 * 1024), ("64KiB", 64 * 1024)] {
        let payload = format!("\"{}\"", "x".repeat(size - 2));
        let framed = format!(r#"{{"stream":"echostream","payload":{payload}}}"#);
        group.throughput(Throughput::Bytes(framed.len() as u64));

        let demux = Demultiplexer::builder()
            .stream("echostream", || Echo)
            .build();
        let mut comm = Communicator::new(demux, "/");
        runtime.block_on(async { assert!(comm.connect().await.is_accepted()) });
        group.bench_function(BenchmarkId::new("demultiplexed", label), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        comm.send_text_to(&framed).await;
                        black_box(comm.receive_text_from().await);
                    }
                    start.elapsed()
                })
            })
        });

        let mut plain = Communicator::new(|| Echo, "/");
        runtime.block_on(async { assert!(plain.connect().await.is_accepted()) });
        group.bench_function(BenchmarkId::new("plain", label), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        plain.send_text_to(&payload).await;
                        black_box(plain.receive_text_from().await);
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
