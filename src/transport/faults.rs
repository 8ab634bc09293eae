//! Network faults injected at a client's socket (this machine's kernel has no netem): loss,
//! delay with jitter, duplication, reordering and truncation at set rates, in each direction.
//! The load test's bots use it (`loadtest --loss 5% --delay 60ms±20ms --duplicate 1% …`).
//!
//! Plain: [`FaultLink`] takes datagrams with the time they were sent or received and gives them
//! back when they are due, changed as the [`Faults`] say; the transport's socket wrapper calls it.

use std::collections::BinaryHeap;
use std::time::Duration;

/// The faults of a link, the same in each direction.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    /// Share of datagrams dropped (0..=1).
    pub loss: f64,
    /// Delay added to every datagram.
    pub delay: Duration,
    /// The delay varies by up to this much either way (uniformly).
    pub jitter: Duration,
    /// Share of datagrams sent twice (the copy with its own delay).
    pub duplicate: f64,
    /// Share of datagrams held back by an extra delay, so later ones overtake them.
    pub reorder: f64,
    /// Share of datagrams cut short at a random length.
    pub truncate: f64,
}

impl Faults {
    /// True when nothing is injected.
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }
}

/// What a link did, by direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FaultCounts {
    /// Datagrams offered.
    pub datagrams: u64,
    /// Dropped.
    pub dropped: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Held back to be overtaken.
    pub reordered: u64,
    /// Cut short.
    pub truncated: u64,
}

impl std::ops::AddAssign for FaultCounts {
    fn add_assign(&mut self, o: Self) {
        self.datagrams += o.datagrams;
        self.dropped += o.dropped;
        self.duplicated += o.duplicated;
        self.reordered += o.reordered;
        self.truncated += o.truncated;
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Held {
    due: Duration,
    seq: u64,
    bytes: Vec<u8>,
}

impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        // The earliest first (BinaryHeap is a max-heap); equal times in arrival order.
        o.due.cmp(&self.due).then(o.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// One direction of a faulty link.
#[derive(Debug)]
pub struct FaultQueue {
    faults: Faults,
    rng: u64,
    seq: u64,
    held: BinaryHeap<Held>,
    /// What it did.
    pub counts: FaultCounts,
}

impl FaultQueue {
    /// A direction with `faults`, its random choices from `seed` (the same seed, the same
    /// choices).
    pub fn new(faults: Faults, seed: u64) -> Self {
        Self {
            faults,
            rng: seed | 1,
            seq: 0,
            held: BinaryHeap::new(),
            counts: FaultCounts::default(),
        }
    }

    /// splitmix64: a uniform u64.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    fn delay(&mut self) -> Duration {
        let f = &self.faults;
        let (base, jitter) = (f.delay.as_secs_f64(), f.jitter.as_secs_f64());
        let d = base + jitter * (2.0 * self.unit() - 1.0);
        Duration::from_secs_f64(d.max(0.0))
    }

    /// Takes a datagram offered at `now`.
    pub fn offer(&mut self, now: Duration, bytes: &[u8]) {
        self.counts.datagrams += 1;
        if self.chance(self.faults.loss) {
            self.counts.dropped += 1;
            return;
        }
        let copies = if self.chance(self.faults.duplicate) {
            self.counts.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut out = bytes.to_vec();
            if !out.is_empty() && self.chance(self.faults.truncate) {
                self.counts.truncated += 1;
                let keep = (self.next() % out.len() as u64) as usize;
                out.truncate(keep);
            }
            let mut due = now + self.delay();
            if self.chance(self.faults.reorder) {
                self.counts.reordered += 1;
                // Long enough for the next few to overtake it.
                due += self.faults.delay / 2 + self.faults.jitter + Duration::from_millis(20);
            }
            self.seq += 1;
            self.held.push(Held {
                due,
                seq: self.seq,
                bytes: out,
            });
        }
    }

    /// The next datagram due by `now`.
    pub fn due(&mut self, now: Duration) -> Option<Vec<u8>> {
        if self.held.peek().is_some_and(|h| h.due <= now) {
            self.held.pop().map(|h| h.bytes)
        } else {
            None
        }
    }

    /// Datagrams held back now.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

/// Both directions of a client's link.
#[derive(Debug)]
pub struct FaultLink {
    /// Client → server.
    pub outgoing: FaultQueue,
    /// Server → client.
    pub incoming: FaultQueue,
}

impl FaultLink {
    /// A link with `faults` each way; `seed` picks its random choices.
    pub fn new(faults: Faults, seed: u64) -> Self {
        Self {
            outgoing: FaultQueue::new(faults, seed),
            incoming: FaultQueue::new(faults, seed.rotate_left(17) ^ 0x5DEE_CE66_D1CE_4E5B),
        }
    }

    /// Both directions' counts together.
    pub fn counts(&self) -> FaultCounts {
        let mut c = self.outgoing.counts;
        c += self.incoming.counts;
        c
    }
}

/// Parses a share: `5%`, `0.05` or `5 %` (0..=100%).
pub fn parse_share(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, scale) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), 100.0),
        None => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a share (e.g. 5% or 0.05)"))?;
    let v = v / scale;
    if !(0.0..=1.0).contains(&v) || !v.is_finite() {
        return Err(format!("'{s}' is not between 0% and 100%"));
    }
    Ok(v)
}

/// Parses a delay with optional jitter: `60ms`, `60ms±20ms`, `60ms+-20ms`, `0.06s`.
pub fn parse_delay(s: &str) -> Result<(Duration, Duration), String> {
    let one = |t: &str| -> Result<Duration, String> {
        let t = t.trim();
        let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
            (n, 1e-3)
        } else if let Some(n) = t.strip_suffix('s') {
            (n, 1.0)
        } else {
            (t, 1e-3)
        };
        let v: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a delay (e.g. 60ms or 60ms±20ms)"))?;
        if !v.is_finite() || !(0.0..=10_000.0).contains(&v) {
            return Err(format!("'{s}': a delay is 0 to 10 s"));
        }
        Ok(Duration::from_secs_f64(v * scale))
    };
    match s.split_once('±').or_else(|| s.split_once("+-")) {
        Some((d, j)) => Ok((one(d)?, one(j)?)),
        None => Ok((one(s)?, Duration::ZERO)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn shares_and_delays_parse() {
        assert_eq!(parse_share("5%"), Ok(0.05));
        assert_eq!(parse_share("0.25"), Ok(0.25));
        assert!(parse_share("120%").is_err() && parse_share("x").is_err());
        assert_eq!(parse_delay("60ms±20ms"), Ok((ms(60), ms(20))));
        assert_eq!(parse_delay("60ms+-20ms"), Ok((ms(60), ms(20))));
        assert_eq!(parse_delay("0.1s"), Ok((ms(100), Duration::ZERO)));
        assert!(parse_delay("soon").is_err());
    }

    /// The rates come out near what was asked, every datagram is accounted for, delays stay in
    /// their window, and held-back ones are overtaken.
    #[test]
    fn faults_come_at_their_rates_within_their_delays() {
        let faults = Faults {
            loss: 0.05,
            delay: ms(60),
            jitter: ms(20),
            duplicate: 0.01,
            reorder: 0.01,
            truncate: 0.01,
        };
        let mut q = FaultQueue::new(faults, 7);
        let n = 100_000u64;
        let mut out = Vec::new();
        for i in 0..n {
            let now = ms(i);
            q.offer(now, &i.to_be_bytes());
            while let Some(b) = q.due(now) {
                out.push((now, b));
            }
        }
        while let Some(b) = q.due(ms(n + 10_000)) {
            out.push((ms(n + 10_000), b));
        }
        let c = q.counts;
        let rate = |x: u64| x as f64 / n as f64;
        assert!((rate(c.dropped) - 0.05).abs() < 0.005, "{c:?}");
        assert!((rate(c.duplicated) - 0.0095).abs() < 0.003, "{c:?}");
        assert!((rate(c.reordered) - 0.0096).abs() < 0.003, "{c:?}");
        assert!((rate(c.truncated) - 0.0096).abs() < 0.003, "{c:?}");
        assert_eq!(out.len() as u64, n - c.dropped + c.duplicated);
        // Whole datagrams arrive 40..=80 ms after they left (or later when held back).
        let mut overtaken = 0;
        let mut last_sent = 0u64;
        for (at, b) in &out {
            if b.len() != 8 {
                continue;
            }
            let sent = u64::from_be_bytes(b[..8].try_into().unwrap());
            let waited = at.as_millis() as u64 - sent;
            assert!(waited >= 40, "{sent} waited {waited} ms");
            if sent < last_sent {
                overtaken += 1;
            }
            last_sent = last_sent.max(sent);
        }
        assert!(overtaken > 500, "{overtaken}");
        assert_eq!(q.held(), 0);
    }

    #[test]
    fn no_faults_pass_everything_at_once() {
        let mut q = FaultQueue::new(Faults::default(), 1);
        q.offer(ms(5), b"abc");
        assert_eq!(q.due(ms(5)), Some(b"abc".to_vec()));
        assert_eq!(q.due(ms(5)), None);
    }
}
