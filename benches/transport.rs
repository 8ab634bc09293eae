//! Envelope seal/open at 64 B, 1 KiB and 16 KiB, and the codec on a typical message.
//! Compare the 16 KiB figures with `openssl speed -evp aes-256-gcm` run in the same session.
//! Also what every datagram costs: netcode's ChaCha20-Poly1305 seal (done exactly as renetcode
//! does it) and the framing that puts several renet packets in one datagram.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use bloxquarium::game::protocol::{Purchase, ShopItem};
use bloxquarium::protocol::builtin::{Chat, Echo, SecureEcho};
use bloxquarium::protocol::{self, ClientMessage, Remote, RemoteTable, SealedClientMessage};
use bloxquarium::transport::{EnvelopeDirection as Direction, Opener, Sealer, SessionMaterial};

fn envelope(c: &mut Criterion) {
    let material = SessionMaterial([42; 32]);
    let mut group = c.benchmark_group("envelope");
    for size in [64usize, 1024, 16 * 1024] {
        let payload = vec![0xA5u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal", size), &payload, |b, p| {
            let mut sealer = Sealer::new(&material, 7, Direction::ClientToServer, u64::MAX);
            b.iter(|| black_box(sealer.seal(black_box(p))));
        });
        // Open needs a fresh counter each time (the replay window refuses repeats), so seal a
        // batch of 64 first and open it in order: one iteration is 64 opens.
        group.throughput(Throughput::Bytes(size as u64 * 64));
        group.bench_with_input(BenchmarkId::new("open", size), &payload, |b, p| {
            b.iter_batched(
                || {
                    let mut sealer = Sealer::new(&material, 7, Direction::ClientToServer, u64::MAX);
                    let batch: Vec<_> = (0..64).filter_map(|_| sealer.seal(p).ok()).collect();
                    (Opener::new(&material, 7, Direction::ClientToServer), batch)
                },
                |(mut opener, batch)| {
                    for s in &batch {
                        black_box(opener.open(s).ok());
                    }
                },
                criterion::BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn codec(c: &mut Criterion) {
    let typical = ClientMessage::Request {
        id: 12_345,
        kind: Echo::KIND,
        payload: protocol::encode(&Echo {
            payload: vec![7; 64],
        })
        .unwrap_or_default(),
    };
    let bytes = protocol::encode(&typical).unwrap_or_default();
    let sealed_inner = SealedClientMessage::Request {
        id: 9,
        kind: SecureEcho::KIND,
        payload: protocol::encode(&SecureEcho {
            payload: vec![1; 64],
        })
        .unwrap_or_default(),
    };
    let mut group = c.benchmark_group("codec");
    group.bench_function("encode_request", |b| {
        b.iter(|| black_box(protocol::encode(black_box(&typical))))
    });
    group.bench_function("decode_request", |b| {
        b.iter(|| black_box(protocol::decode::<ClientMessage>(black_box(&bytes))))
    });
    group.bench_function("encode_sealed_inner", |b| {
        b.iter(|| black_box(protocol::encode(black_box(&sealed_inner))))
    });
    group.finish();
}

fn gate(c: &mut Criterion) {
    use bloxquarium::security::{Limit, RateLimiter};
    let mut limiter = RateLimiter::new([(
        "call".to_string(),
        Limit {
            per_second: 1e9,
            burst: 1e9,
        },
    )]);
    let mut table = RemoteTable::default();
    table.add_event::<Chat>();
    table.add_function::<Purchase>();
    let chat = ClientMessage::Event {
        kind: Chat::KIND,
        payload: protocol::encode(&Chat {
            text: "hello tank".into(),
        })
        .unwrap_or_default(),
    };
    let bytes = protocol::encode(&chat).unwrap_or_default();
    let mut group = c.benchmark_group("gate");
    let mut t = 0u64;
    group.bench_function("rate_limit_allow", |b| {
        b.iter(|| {
            t += 1;
            black_box(limiter.allow(t % 256, "call", std::time::Duration::from_nanos(t)))
        })
    });
    // The frame, then the registered type's decoder and validator, as the transport does it.
    group.bench_function("decode_and_validate_chat", |b| {
        b.iter(|| {
            let m: Result<ClientMessage, _> = protocol::decode(black_box(&bytes));
            black_box(m.ok().and_then(|m| match m {
                ClientMessage::Event { kind, payload } => {
                    table.get(kind).map(|e| e.decode(&payload).is_ok())
                }
                _ => None,
            }))
        })
    });
    let purchase = Purchase {
        op_id: 1,
        item: ShopItem::Fish { species: 3 },
        quantity: 2,
    };
    let purchase_bytes = protocol::encode(&purchase).unwrap_or_default();
    group.bench_function("decode_and_validate_purchase", |b| {
        b.iter(|| {
            black_box(
                table
                    .get(Purchase::KIND)
                    .map(|e| e.decode(black_box(&purchase_bytes)).is_ok()),
            )
        })
    });
    let mut gate = bloxquarium::transport::AddressGate::new(1e9, 1e9);
    let mut u = 0u64;
    group.bench_function("connection_gate_allow", |b| {
        b.iter(|| {
            u += 1;
            let ip = std::net::IpAddr::from([10, 0, (u >> 8) as u8, u as u8]);
            black_box(gate.allow(ip, std::time::Duration::from_nanos(u)))
        })
    });
    group.finish();
}

fn datagram(c: &mut Criterion) {
    use chacha20poly1305::{AeadInPlace, ChaCha20Poly1305, Key, KeyInit, Nonce};
    use renetcode::NETCODE_MAX_PAYLOAD_BYTES;
    let mut group = c.benchmark_group("datagram");
    let key = [0x5Au8; 32];
    for size in [64usize, 128, 512] {
        let mut buffer = vec![0xA5u8; size];
        let mut sequence = 0u64;
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("netcode_seal", size), |b| {
            b.iter(|| {
                // renetcode::crypto::encrypt_in_place, per datagram: a fresh cipher and nonce.
                sequence += 1;
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&sequence.to_le_bytes());
                let cipher = ChaCha20Poly1305::new(Key::from_slice(&key));
                black_box(
                    cipher
                        .encrypt_in_place_detached(&Nonce::from(nonce), &[1; 22], &mut buffer)
                        .ok(),
                )
            });
        });
    }
    // A typical tick's worth for one client: an ack, an answer and a sealed answer.
    let packets = [vec![1u8; 18], vec![0u8; 96], vec![0u8; 160]];
    let mut scratch = Vec::new();
    group.throughput(Throughput::Elements(packets.len() as u64));
    group.bench_function("pack_and_split_3", |b| {
        b.iter(|| {
            let mut n = 0usize;
            let _ = bloxquarium::transport::pack_datagrams(
                black_box(&packets),
                NETCODE_MAX_PAYLOAD_BYTES,
                &mut scratch,
                |payload| -> Result<(), ()> {
                    if let Ok(parts) = bloxquarium::transport::datagram_parts(payload) {
                        n += parts.map(<[u8]>::len).sum::<usize>();
                    }
                    Ok(())
                },
            );
            black_box(n)
        });
    });
    group.finish();
}

criterion_group!(benches, envelope, codec, gate, datagram);
criterion_main!(benches);
