#!/usr/bin/env bash
# The project's one test command (README, .ci/run): formatting, lints, every
# test (unit, property, communicator, loopback, doc), the benchmarks run once
# as tests, the docs, the browser tests of the demo page, and the TypeScript
# client's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-tools.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

echo "== cargo test (unit, integration, loopback, doc)"
cargo test --workspace --all-features --locked --no-fail-fast

echo "== benchmarks, each run once as a test"
cargo test --workspace --all-features --locked --benches

echo "== feature combinations"
cargo check -p chanmux --no-default-features --locked
cargo check -p chanmux --no-default-features --features test-util --locked
cargo check -p chanmux --no-default-features --features tls --locked

echo "== cargo doc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked

echo "== browser tests (headless Chromium, real server binary)"
cargo build -p chanmux-server --locked
(cd e2e && CHANMUX_SERVER_BIN=../target/debug/chanmux-server timeout 300 node --test)

echo "== the TypeScript client (clients/js): unit tests, size budget, and against the release server"
cargo build --release -p chanmux-server --locked
(cd clients/js && CHANMUX_SERVER_BIN=../../target/release/chanmux-server timeout 300 npm test)

echo "== all checks passed"
