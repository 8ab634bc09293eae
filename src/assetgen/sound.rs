//! Sound effects for the generator: small synthesised signals encoded as Ogg Vorbis.
//!
//! Deterministic: the signals come from a fixed-seed generator, and the Ogg stream serial is
//! derived from the sound's name (never random), so every run writes the same bytes.

use std::f32::consts::TAU;
use std::num::{NonZeroU8, NonZeroU32};

use vorbis_rs::{VorbisBitrateManagementStrategy, VorbisEncoderBuilder, VorbisError};

/// Sample rate of every generated sound (the game's).
pub use crate::game::SOUND_RATE as RATE;

/// A small linear congruential generator: fixed seed, same sequence everywhere.
struct Lcg(u32);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (self.0 >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
    }
}

/// The signal of a named sound, mono, in [-1, 1].
pub fn signal(name: &str, seconds: f32) -> Vec<f32> {
    let n = (seconds * RATE as f32) as usize;
    let mut rng = Lcg(name.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ b as u32).wrapping_mul(16_777_619)
    }));
    let mut out = vec![0.0f32; n];
    match name {
        "Coin" => {
            // Two bright partials, the second a fourth above, with a fast decay.
            for (i, s) in out.iter_mut().enumerate() {
                let t = i as f32 / RATE as f32;
                let f = if t < 0.08 { 988.0 } else { 1318.5 };
                *s = 0.5 * (TAU * f * t).sin() * (-t * 9.0).exp();
            }
        }
        "Click" => {
            for (i, s) in out.iter_mut().enumerate() {
                let t = i as f32 / RATE as f32;
                *s = 0.6 * (TAU * 1800.0 * t).sin() * (-t * 60.0).exp();
            }
        }
        "Splash" => {
            // Low-passed noise with a fast attack and a long tail.
            let mut lp = 0.0;
            for (i, s) in out.iter_mut().enumerate() {
                let t = i as f32 / RATE as f32;
                lp += 0.25 * (rng.next() - lp);
                *s = 0.8 * lp * (t * 40.0).min(1.0) * (-t * 4.5).exp();
            }
        }
        _ => {
            // Bubbles (and the water ambience, which is a bed of noise under them): each
            // bubble is a short sine whose pitch rises as it closes (Minnaert resonance).
            let ambience = name.starts_with("Ambience");
            let mut lp = 0.0;
            if ambience {
                for s in out.iter_mut() {
                    lp += 0.02 * (rng.next() - lp);
                    *s = 0.9 * lp;
                }
            }
            let bubbles = if ambience { 24 } else { 9 };
            for _ in 0..bubbles {
                let start = ((rng.next() * 0.5 + 0.5) * (n as f32 - RATE as f32 * 0.12)) as usize;
                let f0 = 500.0 + 700.0 * (rng.next() * 0.5 + 0.5);
                let len = (RATE as f32 * 0.09) as usize;
                let amp = if ambience { 0.12 } else { 0.35 };
                for k in 0..len.min(n.saturating_sub(start)) {
                    let t = k as f32 / RATE as f32;
                    let f = f0 * (1.0 + 6.0 * t);
                    out[start + k] += amp * (TAU * f * t).sin() * (-t * 45.0).exp();
                }
            }
            if ambience {
                // Fade the ends so the loop does not click.
                let fade = (RATE as f32 * 0.05) as usize;
                for i in 0..fade.min(n / 2) {
                    let g = i as f32 / fade as f32;
                    out[i] *= g;
                    out[n - 1 - i] *= g;
                }
            }
        }
    }
    for s in &mut out {
        *s = s.clamp(-1.0, 1.0);
    }
    out
}

/// A stream serial derived from the name, so it never changes between runs.
fn serial(name: &str) -> i32 {
    name.bytes()
        .fold(0x5eed_u32, |h, b| h.rotate_left(5) ^ b as u32) as i32
}

/// The named sound as an Ogg Vorbis file.
pub fn ogg(name: &str, seconds: f32) -> Result<Vec<u8>, VorbisError> {
    let samples = signal(name, seconds);
    let rate = NonZeroU32::new(RATE).unwrap_or(NonZeroU32::MIN);
    let mut builder =
        VorbisEncoderBuilder::new_with_serial(rate, NonZeroU8::MIN, Vec::new(), serial(name));
    builder
        .bitrate_management_strategy(VorbisBitrateManagementStrategy::QualityVbr {
            target_quality: 0.3,
        })
        .comment_tag("TITLE", name)?
        .comment_tag("ENCODER", "bloxquarium assets generate")?;
    let mut encoder = builder.build()?;
    for block in samples.chunks(4096) {
        encoder.encode_audio_block([block])?;
    }
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sounds_are_ogg_vorbis_and_deterministic() {
        for crate::game::GameSound {
            name,
            seconds: secs,
            ..
        } in crate::game::SOUNDS
        {
            let a = ogg(name, secs).unwrap();
            let b = ogg(name, secs).unwrap();
            assert_eq!(a, b, "{name}");
            assert_eq!(&a[..4], b"OggS", "{name}");
            assert!(a.windows(6).any(|w| w == b"vorbis"), "{name}");
            let s = signal(name, secs);
            assert!(s.iter().any(|x| x.abs() > 0.05), "{name} is silent");
        }
    }
}
