//! A datagram's payload split into renet packets (`transport::datagram_parts`); what it accepts
//! packs back into payloads that split into the same packets (for packets that, like renet's,
//! do not start with the batch tag).
#![no_main]

use bloxquarium::transport::{BATCH_TAG, datagram_parts, pack_datagrams};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(parts) = datagram_parts(data) else {
        return;
    };
    let packets: Vec<Vec<u8>> = parts.map(<[u8]>::to_vec).collect();
    assert!(!packets.is_empty());
    assert!(packets.iter().all(|p| !p.is_empty()));
    if packets.iter().any(|p| p[0] == BATCH_TAG) {
        return;
    }
    let mut repacked = Vec::new();
    let mut buf = Vec::new();
    let _ = pack_datagrams(&packets, 1200, &mut buf, |d: &[u8]| {
        repacked.push(d.to_vec());
        Ok::<(), ()>(())
    });
    let again: Vec<Vec<u8>> = repacked
        .iter()
        .flat_map(|d| {
            datagram_parts(d)
                .map(|p| p.map(<[u8]>::to_vec).collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(again, packets);
});
