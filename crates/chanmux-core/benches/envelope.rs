//! The per-frame path: parse the envelope, route by stream, wrap the reply.
//!
//! `passthrough` is ours (raw payload text, no tree, no re-serialisation);
//! `naive` parses the frame into a `serde_json::Value` and serialises the
//! reply, as a straightforward implementation (and the Python reference) does.
//! Both run in the same process and run, so their ratio is what to read.
//!
//! `cargo bench -p chanmux-core --bench envelope`

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;

use chanmux_core::{Envelope, StreamPrefix};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};

const STREAMS: [&str; 4] = [
    "echostream",
    "altechostream",
    "closeafterfirst",
    "neveraccept",
];

/// A JSON payload of about `size` bytes that looks like application data.
fn payload(size: usize) -> String {
    let mut items = Vec::new();
    let mut text = String::new();
    let mut id = 0;
    while text.len() < size {
        items.push(json!({"id": id, "name": format!("item-{id}"), "price": 12.5 + id as f64, "tags": ["a", "b"], "ok": true}));
        id += 1;
        text = json!({"items": items}).to_string();
    }
    text
}

/// Ours: one pass to find the stream and the payload's bounds, one copy to wrap.
fn passthrough(frame: &str, routes: &HashMap<&str, usize>, prefixes: &[StreamPrefix]) -> String {
    let envelope = Envelope::parse(frame).expect("valid frame");
    let index = routes[envelope.stream()];
    prefixes[index].wrap(envelope.payload())
}

/// The straightforward way: build a tree, pick it apart, serialise a new one.
fn naive(frame: &str, routes: &HashMap<&str, usize>) -> String {
    let mut value: Value = serde_json::from_str(frame).expect("valid frame");
    let object = value.as_object_mut().expect("an object");
    let stream = object["stream"].as_str().expect("a stream").to_owned();
    let _index = routes[stream.as_str()];
    let payload = object.remove("payload").expect("a payload");
    serde_json::to_string(&json!({"stream": stream, "payload": payload})).expect("serialisable")
}

fn per_frame(c: &mut Criterion) {
    let routes: HashMap<&str, usize> = STREAMS.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let prefixes: Vec<StreamPrefix> = STREAMS.iter().map(|s| StreamPrefix::new(s)).collect();
    let mut group = c.benchmark_group("per_frame");
    for (label, size) in [("64B", 64), ("4KiB", 4 * 1024), ("64KiB", 64 * 1024)] {
        let frame = format!(
            r#"{{"stream":"altechostream","payload":{}}}"#,
            payload(size)
        );
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("passthrough", label),
            &frame,
            |b, frame| b.iter(|| passthrough(black_box(frame), &routes, &prefixes)),
        );
        group.bench_with_input(BenchmarkId::new("naive", label), &frame, |b, frame| {
            b.iter(|| naive(black_box(frame), &routes))
        });
    }
    group.finish();
}

criterion_group!(benches, per_frame);
criterion_main!(benches);
