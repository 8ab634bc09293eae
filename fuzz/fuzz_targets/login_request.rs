//! What the login service reads from a peer before any password check: the HTTP request (head
//! and body, whatever the split into reads) and the JSON bodies of its three requests; and what
//! the client reads back from a service it may not trust yet (the response, the grant).
#![no_main]

use bloxquarium::accounts::login::http::{MAX_BODY, parse_response, read_request};
use bloxquarium::accounts::login::{
    Credentials, Grant, RefreshRequest, Refusal, refresh::RefreshKey,
};
use libfuzzer_sys::fuzz_target;

/// Hands out the input in reads of the sizes its first byte picks, as a trickling peer would.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.data.len().min(buf.len()).min(self.step);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut peer = Trickle {
        data: rest,
        step: usize::from(first).max(1),
    };
    if let Ok((_, body)) = parse_response(rest) {
        if let Ok(grant) = serde_json::from_slice::<Grant>(&body) {
            let _ = bloxquarium::accounts::login::client::token_of(&grant);
        }
        let _ = serde_json::from_slice::<Refusal>(&body);
    }
    if let Ok(request) = read_request(&mut peer) {
        assert!(request.body.len() <= MAX_BODY);
        assert_eq!(request.body.len(), request.head.content_length);
        let _ = serde_json::from_slice::<Credentials>(&request.body);
        if let Ok(r) = serde_json::from_slice::<RefreshRequest>(&request.body) {
            let _ = RefreshKey::new([7; 32]).check(&r.refresh_token, 0);
        }
    }
});
