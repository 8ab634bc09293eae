#!/usr/bin/env bash
# Times netcode's per-datagram seal (a fresh ChaCha20-Poly1305 cipher, 12-byte nonce, 22-byte
# additional data, as renetcode::crypto::encrypt_in_place does it) under poly1305's two backends,
# built side by side: the default (AVX2 picked at run time) and the portable one that
# .cargo/config.toml selects with `--cfg poly1305_force_soft`. Also with AVX2 enabled crate-wide,
# for reference. Uses the same crate versions as Cargo.lock; needs no network once they are cached.
set -euo pipefail
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/src"
cat > "$dir/Cargo.toml" <<'TOML'
[package]
name = "poly1305-backends"
version = "0.1.0"
edition = "2021"
[dependencies]
chacha20poly1305 = "=0.10.1"
poly1305 = "=0.8.0"
TOML
cat > "$dir/src/main.rs" <<'RS'
use chacha20poly1305::{AeadInPlace, ChaCha20Poly1305, KeyInit};
use std::time::Instant;
fn main() {
    let key = [7u8; 32];
    for len in [64usize, 128, 512, 1024] {
        let mut buf = vec![1u8; len];
        let n = 200_000u64;
        let t = Instant::now();
        let mut acc = 0u8;
        for i in 0..n {
            let cipher = ChaCha20Poly1305::new((&key).into());
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&i.to_le_bytes());
            let tag = cipher
                .encrypt_in_place_detached((&nonce).into(), &[1; 22], &mut buf)
                .expect("seal");
            acc ^= tag[0];
        }
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        println!("  {len:>5} B: {ns:>6.0} ns per datagram (checksum {acc})");
    }
}
RS
cd "$dir"
for flags in "" "--cfg poly1305_force_soft" "-C target-feature=+avx2"; do
  CARGO_TARGET_DIR="$dir/target-${#flags}" RUSTFLAGS="$flags" cargo build --release --quiet --offline 2>/dev/null \
    || CARGO_TARGET_DIR="$dir/target-${#flags}" RUSTFLAGS="$flags" cargo build --release --quiet
done
for flags in "" "--cfg poly1305_force_soft" "-C target-feature=+avx2"; do
  echo "RUSTFLAGS='$flags'"
  "$dir/target-${#flags}/release/poly1305-backends"
done
