//! Sound in the window: ambience, bubbles, a coin when income lands, a splash when a fish
//! arrives, a click on a key. Volumes are the `audio.*` keys (settings: `,` and `.` for the
//! master volume).
//!
//! The output is ALSA's `default` device through `libasound.so.2` **loaded at run time**
//! (libloading), not linked: the binary builds and starts on a machine without ALSA's headers
//! or library, and where the library or a device is missing the game stays silent after one
//! log line. (Bevy's own audio goes through cpal, which links `libasound` at build time and
//! needs its `-dev` package, so a fresh machine could not build the game.) The mixing is plain
//! Rust ([`Mixer`]) on a thread of its own; the sounds are the game's Ogg Vorbis assets,
//! loaded through the asset streamer like any other file and decoded once.

use std::ffi::{CStr, CString, c_char, c_int, c_long, c_uint, c_ulong, c_void};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use bevy::prelude::*;

use crate::assets::{AssetBytes, AssetPhase};
use crate::config::ClientConfig;
use crate::game::Prediction;
use crate::stages::ClientSystems;

/// Frames per second of the output (the game's sounds' rate).
pub use crate::game::SOUND_RATE as RATE;
/// Frames written per period (~46 ms).
const PERIOD: usize = 1024;

/// A decoded sound: mono samples at [`RATE`].
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// Its name (`Coin`).
    pub name: &'static str,
    /// Samples in [-1, 1].
    pub samples: Vec<f32>,
    /// Ambience (or an effect).
    pub ambience: bool,
}

/// Decodes an Ogg Vorbis file to mono samples (channels averaged); its rate must be [`RATE`].
pub fn decode(name: &'static str, ambience: bool, bytes: &[u8]) -> Result<Clip, String> {
    let mut decoder = vorbis_rs::VorbisDecoder::<std::io::Cursor<Vec<u8>>>::new(
        std::io::Cursor::new(bytes.to_vec()),
    )
    .map_err(|e| format!("{name}: {e}"))?;
    if decoder.sampling_frequency().get() != RATE {
        return Err(format!(
            "{name}: {} Hz, the mixer plays {RATE} Hz",
            decoder.sampling_frequency()
        ));
    }
    let mut samples = Vec::new();
    while let Some(block) = decoder
        .decode_audio_block()
        .map_err(|e| format!("{name}: {e}"))?
    {
        let channels = block.samples();
        let Some(first) = channels.first() else {
            continue;
        };
        for i in 0..first.len() {
            let sum: f32 = channels
                .iter()
                .map(|c| c.get(i).copied().unwrap_or(0.0))
                .sum();
            samples.push(sum / channels.len() as f32);
        }
    }
    Ok(Clip {
        name,
        samples,
        ambience,
    })
}

/// Volumes, 0..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Volumes {
    /// `audio.masterVolume`.
    pub master: f32,
    /// `audio.effectsVolume`.
    pub effects: f32,
    /// `audio.ambienceVolume`.
    pub ambience: f32,
}

impl Volumes {
    /// From the `audio.*` keys.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let get = |k: &str, d: f64| config.get::<f64>(k).unwrap_or(d).clamp(0.0, 1.0) as f32;
        Self {
            master: get("audio.masterVolume", 0.8),
            effects: get("audio.effectsVolume", 1.0),
            ambience: get("audio.ambienceVolume", 0.5),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Voice {
    clip: usize,
    at: usize,
    looping: bool,
}

/// Mixes the playing sounds into 16-bit samples. Plain Rust: the output thread owns one.
#[derive(Debug)]
pub struct Mixer {
    clips: Vec<Clip>,
    voices: Vec<Voice>,
    volumes: Volumes,
}

/// Most sounds at once (more are dropped: a burst of coins is one coin louder, not a roar).
pub const MAX_VOICES: usize = 12;

impl Mixer {
    /// A mixer with `clips`; the ambience loops from the start.
    pub fn new(clips: Vec<Clip>, volumes: Volumes) -> Self {
        let voices = clips
            .iter()
            .position(|c| c.name == "Ambience_Water")
            .map(|clip| Voice {
                clip,
                at: 0,
                looping: true,
            })
            .into_iter()
            .collect();
        Self {
            clips,
            voices,
            volumes,
        }
    }

    /// Starts `name` once (nothing if unknown or too many are playing).
    pub fn play(&mut self, name: &str) {
        if self.voices.len() >= MAX_VOICES {
            return;
        }
        if let Some(clip) = self.clips.iter().position(|c| c.name == name) {
            self.voices.push(Voice {
                clip,
                at: 0,
                looping: false,
            });
        }
    }

    /// New volumes.
    pub fn set_volumes(&mut self, volumes: Volumes) {
        self.volumes = volumes;
    }

    /// Sounds playing now.
    pub fn playing(&self) -> usize {
        self.voices.len()
    }

    /// Fills `out` with the next samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        let mut mix = vec![0.0f32; out.len()];
        for v in &mut self.voices {
            let Some(clip) = self.clips.get(v.clip) else {
                v.at = usize::MAX;
                continue;
            };
            let gain = self.volumes.master
                * if clip.ambience {
                    self.volumes.ambience
                } else {
                    self.volumes.effects
                };
            for m in mix.iter_mut() {
                if v.at >= clip.samples.len() {
                    if v.looping && !clip.samples.is_empty() {
                        v.at = 0;
                    } else {
                        v.at = usize::MAX;
                        break;
                    }
                }
                *m += clip.samples[v.at] * gain;
                v.at += 1;
            }
        }
        self.voices.retain(|v| v.at != usize::MAX);
        for (o, m) in out.iter_mut().zip(mix) {
            *o = (m.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16;
        }
    }
}

/// `snd_pcm_*` from `libasound.so.2`, loaded at run time.
struct Alsa {
    _lib: libloading::Library,
    pcm: *mut c_void,
    writei: unsafe extern "C" fn(*mut c_void, *const c_void, c_ulong) -> c_long,
    recover: unsafe extern "C" fn(*mut c_void, c_int, c_int) -> c_int,
    close: unsafe extern "C" fn(*mut c_void) -> c_int,
    strerror: unsafe extern "C" fn(c_int) -> *const c_char,
}

// The PCM handle is used by the output thread only.
unsafe impl Send for Alsa {}

const SND_PCM_STREAM_PLAYBACK: c_int = 0;
const SND_PCM_FORMAT_S16_LE: c_int = 2;
const SND_PCM_ACCESS_RW_INTERLEAVED: c_int = 3;

impl Alsa {
    /// Opens `device` for mono 16-bit playback at [`RATE`].
    fn open(device: &str) -> Result<Self, String> {
        type Open = unsafe extern "C" fn(*mut *mut c_void, *const c_char, c_int, c_int) -> c_int;
        type SetParams =
            unsafe extern "C" fn(*mut c_void, c_int, c_int, c_uint, c_uint, c_int, c_uint) -> c_int;
        // SAFETY: loading libasound runs its initialisers, which have no preconditions.
        let lib = unsafe { libloading::Library::new("libasound.so.2") }
            .map_err(|e| format!("no sound: libasound.so.2 is not installed ({e})"))?;
        // SAFETY: the symbols are looked up by their documented names and given their
        // documented C signatures (alsa-lib's pcm.h).
        unsafe {
            let open: Open = *lib
                .get::<Open>(b"snd_pcm_open\0")
                .map_err(|e| e.to_string())?;
            let set_params: SetParams = *lib
                .get::<SetParams>(b"snd_pcm_set_params\0")
                .map_err(|e| e.to_string())?;
            let writei = *lib
                .get(b"snd_pcm_writei\0")
                .map_err(|e: libloading::Error| e.to_string())?;
            let recover = *lib
                .get(b"snd_pcm_recover\0")
                .map_err(|e: libloading::Error| e.to_string())?;
            let close: unsafe extern "C" fn(*mut c_void) -> c_int = *lib
                .get(b"snd_pcm_close\0")
                .map_err(|e: libloading::Error| e.to_string())?;
            let strerror: unsafe extern "C" fn(c_int) -> *const c_char = *lib
                .get(b"snd_strerror\0")
                .map_err(|e: libloading::Error| e.to_string())?;
            let name = CString::new(device).map_err(|e| e.to_string())?;
            let mut pcm = std::ptr::null_mut();
            let text = |code: c_int| {
                let p = strerror(code);
                if p.is_null() {
                    format!("error {code}")
                } else {
                    CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            };
            let r = open(&mut pcm, name.as_ptr(), SND_PCM_STREAM_PLAYBACK, 0);
            if r < 0 || pcm.is_null() {
                return Err(format!(
                    "no sound: cannot open ALSA device {device}: {}",
                    text(r)
                ));
            }
            let r = set_params(
                pcm,
                SND_PCM_FORMAT_S16_LE,
                SND_PCM_ACCESS_RW_INTERLEAVED,
                1,
                RATE,
                1,
                100_000,
            );
            if r < 0 {
                close(pcm);
                return Err(format!(
                    "no sound: ALSA device {device} refused mono 16-bit {RATE} Hz: {}",
                    text(r)
                ));
            }
            Ok(Self {
                _lib: lib,
                pcm,
                writei,
                recover,
                close,
                strerror,
            })
        }
    }

    /// Writes all of `samples` (blocking: the device paces the thread).
    fn write(&mut self, samples: &[i16]) -> Result<(), String> {
        let mut done = 0;
        while done < samples.len() {
            let left = &samples[done..];
            // SAFETY: `pcm` is open; the buffer holds `left.len()` mono frames.
            let n = unsafe { (self.writei)(self.pcm, left.as_ptr().cast(), left.len() as c_ulong) };
            if n < 0 {
                // SAFETY: as above; recover handles underruns and suspends.
                let r = unsafe { (self.recover)(self.pcm, n as c_int, 1) };
                if r < 0 {
                    // SAFETY: snd_strerror returns a static string or null.
                    let p = unsafe { (self.strerror)(r) };
                    let why = if p.is_null() {
                        format!("error {r}")
                    } else {
                        // SAFETY: a non-null snd_strerror result is a C string.
                        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
                    };
                    return Err(why);
                }
                continue;
            }
            done += n as usize;
        }
        Ok(())
    }
}

impl Drop for Alsa {
    fn drop(&mut self) {
        // SAFETY: `pcm` is open and closed once, here.
        unsafe {
            (self.close)(self.pcm);
        }
    }
}

/// What the game asks of the output thread.
enum Command {
    Clips(Vec<Clip>),
    Play(&'static str),
    Volumes(Volumes),
}

/// The output thread's door, and what the game has asked to play.
#[derive(Resource)]
pub struct Sound {
    commands: Option<Sender<Command>>,
    loading: Vec<(&'static str, bool, Handle<AssetBytes>)>,
    /// How often each sound was asked for (the first time is logged; the CI check reads it).
    pub played: std::collections::BTreeMap<&'static str, u64>,
    last_fish: Option<usize>,
    next_bubbles: Duration,
    volumes: Option<Volumes>,
}

fn run_output(commands: Receiver<Command>, device: &str) {
    let mut out = match Alsa::open(device) {
        Ok(out) => out,
        Err(e) => {
            // One line, then silence: the game plays on.
            warn!("{e}");
            return;
        }
    };
    info!("sound: playing through ALSA device {device}");
    let mut mixer: Option<Mixer> = None;
    let mut volumes = Volumes {
        master: 0.8,
        effects: 1.0,
        ambience: 0.5,
    };
    let mut buf = vec![0i16; PERIOD];
    // A device paces the writes by blocking; a sink that never blocks (ALSA's file and null
    // plugins) would be written as fast as the CPU mixes, so the thread also keeps itself at
    // most 150 ms ahead of the wall clock.
    let started = std::time::Instant::now();
    let mut written: u64 = 0;
    loop {
        let ahead = Duration::from_secs_f64(written as f64 / f64::from(RATE))
            .saturating_sub(started.elapsed());
        if ahead > Duration::from_millis(150) {
            std::thread::sleep(ahead - Duration::from_millis(100));
        }
        loop {
            match commands.try_recv() {
                Ok(Command::Clips(clips)) => mixer = Some(Mixer::new(clips, volumes)),
                Ok(Command::Play(name)) => {
                    if let Some(m) = &mut mixer {
                        m.play(name);
                    }
                }
                Ok(Command::Volumes(v)) => {
                    volumes = v;
                    if let Some(m) = &mut mixer {
                        m.set_volumes(v);
                    }
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            }
        }
        match &mut mixer {
            Some(m) => m.fill(&mut buf),
            None => buf.fill(0),
        }
        if let Err(e) = out.write(&buf) {
            warn!("sound stopped: {e}");
            return;
        }
        written += PERIOD as u64;
    }
}

impl Sound {
    /// Starts the output thread on ALSA's `default` device.
    fn start() -> Self {
        let (tx, rx) = channel();
        let started = std::thread::Builder::new()
            .name("sound".into())
            .spawn(move || run_output(rx, "default"));
        if let Err(e) = &started {
            warn!("no sound: cannot start its thread: {e}");
        }
        Self {
            commands: started.ok().map(|_| tx),
            loading: Vec::new(),
            played: Default::default(),
            last_fish: None,
            next_bubbles: Duration::from_secs(3),
            volumes: None,
        }
    }

    fn send(&mut self, c: Command) {
        if let Some(tx) = &self.commands
            && tx.send(c).is_err()
        {
            // The thread ended (no device): stay silent.
            self.commands = None;
        }
    }

    /// Plays `name` once (the first time of each sound is logged).
    pub fn play(&mut self, name: &'static str) {
        let n = self.played.entry(name).or_default();
        if *n == 0 {
            info!("sound: {name}");
        }
        *n += 1;
        self.send(Command::Play(name));
    }
}

/// The sound plugin (the window's client and `play`).
pub struct SoundPlugin;

impl Plugin for SoundPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Sound::start())
            .add_message::<super::ui::Act>()
            .add_message::<super::tank_fx::CoinsLanded>()
            .add_systems(
                Update,
                (load_sounds, follow_volumes, sounds_of_the_game)
                    .chain()
                    .in_set(ClientSystems::Present),
            );
    }
}

/// Once the manifest is in, the sounds load like any asset and are decoded once.
fn load_sounds(
    mut sound: ResMut<Sound>,
    phase: Res<State<AssetPhase>>,
    server: Res<AssetServer>,
    bytes: Res<Assets<AssetBytes>>,
    mut asked: Local<bool>,
) {
    if !*asked {
        if *phase.get() != AssetPhase::Playing {
            return;
        }
        *asked = true;
        sound.loading = crate::game::SOUNDS
            .iter()
            .map(|s| {
                (
                    s.name,
                    s.ambience,
                    server.load(format!("Sounds/{}.ogg", s.name)),
                )
            })
            .collect();
        return;
    }
    if sound.loading.is_empty() || !sound.loading.iter().all(|(_, _, h)| bytes.contains(h)) {
        return;
    }
    let mut clips = Vec::new();
    for (name, amb, h) in std::mem::take(&mut sound.loading) {
        match bytes.get(&h).map(|b| decode(name, amb, &b.0)) {
            Some(Ok(clip)) => clips.push(clip),
            Some(Err(e)) => warn!("sound {e}"),
            None => {}
        }
    }
    info!("sound: {} sounds ready", clips.len());
    sound.send(Command::Clips(clips));
}

fn follow_volumes(mut sound: ResMut<Sound>, config: Res<ClientConfig>) {
    // The config is read when it changed (the settings panel, a server's push), not each frame.
    if sound.volumes.is_some() && !config.is_changed() {
        return;
    }
    let v = Volumes::from_config(&config.0);
    if sound.volumes != Some(v) {
        sound.volumes = Some(v);
        sound.send(Command::Volumes(v));
    }
}

/// What the player hears: a coin when coins land ([`super::tank_fx::CoinsLanded`]), a splash
/// when a fish arrives, a click on a key or a button, bubbles now and then.
fn sounds_of_the_game(
    mut sound: ResMut<Sound>,
    prediction: Res<Prediction>,
    keys: Res<ButtonInput<KeyCode>>,
    mut acts: MessageReader<super::ui::Act>,
    mut landed: MessageReader<super::tank_fx::CoinsLanded>,
    time: Res<Time<Real>>,
) {
    let now = time.elapsed();
    if landed.read().count() > 0 {
        sound.play("Coin");
    }
    if let Some(fish) = prediction.predictor.authoritative().map(|s| s.fish.len()) {
        if sound.last_fish.is_some_and(|f| fish > f) {
            sound.play("Splash");
        }
        sound.last_fish = Some(fish);
    }
    // (Keys ask for actions too: one click a frame whichever way.)
    if acts.read().count() > 0 || keys.get_just_pressed().next().is_some() {
        sound.play("Click");
    }
    if now >= sound.next_bubbles {
        // Every 4 to 7 s, varied by the clock.
        sound.next_bubbles = now + Duration::from_millis(4000 + u64::from(now.subsec_millis()) * 3);
        sound.play("Bubbles");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(name: &'static str, ambience: bool, n: usize, v: f32) -> Clip {
        Clip {
            name,
            samples: vec![v; n],
            ambience,
        }
    }

    const LOUD: Volumes = Volumes {
        master: 1.0,
        effects: 1.0,
        ambience: 1.0,
    };

    #[test]
    fn the_mixer_adds_voices_loops_the_ambience_and_follows_the_volumes() {
        let clips = vec![
            clip("Ambience_Water", true, 3, 0.25),
            clip("Coin", false, 2, 0.5),
        ];
        let mut m = Mixer::new(clips, LOUD);
        assert_eq!(m.playing(), 1, "the ambience starts by itself");
        m.play("Coin");
        m.play("Nope");
        let mut out = [0i16; 4];
        m.fill(&mut out);
        let q = |v: f32| (v * f32::from(i16::MAX)) as i16;
        assert_eq!(out, [q(0.75), q(0.75), q(0.25), q(0.25)]);
        assert_eq!(m.playing(), 1, "the coin ended, the ambience loops");
        m.set_volumes(Volumes {
            ambience: 0.0,
            ..LOUD
        });
        m.fill(&mut out);
        assert_eq!(out, [0; 4]);
        m.set_volumes(Volumes {
            master: 0.5,
            ..LOUD
        });
        m.fill(&mut out);
        assert_eq!(out, [q(0.125); 4]);
        // Clipping, and the voice limit.
        let mut m = Mixer::new(vec![clip("Coin", false, 8, 0.9)], LOUD);
        for _ in 0..20 {
            m.play("Coin");
        }
        assert_eq!(m.playing(), MAX_VOICES);
        m.fill(&mut out);
        assert_eq!(out, [i16::MAX; 4]);
    }

    /// `audio.*` set the mixer's volumes (defaults 0.8, 1.0, 0.5).
    #[test]
    fn the_volumes_follow_their_keys() {
        use crate::protocol::ConfigValue::Float;
        let defaults = crate::config::defaults_with_game_for_tests(&crate::game::KEYS);
        assert_eq!(
            Volumes::from_config(&defaults),
            Volumes {
                master: 0.8,
                effects: 1.0,
                ambience: 0.5
            }
        );
        let changed = crate::config::changed_for_tests(
            &crate::game::KEYS,
            &[
                ("audio.masterVolume", Float(0.5)),
                ("audio.effectsVolume", Float(0.25)),
                ("audio.ambienceVolume", Float(0.0)),
            ],
        );
        let v = Volumes::from_config(&changed);
        assert_eq!(
            v,
            Volumes {
                master: 0.5,
                effects: 0.25,
                ambience: 0.0
            }
        );
        let mut m = Mixer::new(
            vec![
                clip("Ambience_Water", true, 4, 1.0),
                clip("Coin", false, 4, 1.0),
            ],
            v,
        );
        m.play("Coin");
        let mut out = [0i16; 2];
        m.fill(&mut out);
        assert_eq!(out, [(0.125 * f32::from(i16::MAX)) as i16; 2]);
    }

    /// The committed sounds decode at the mixer's rate, none of them silent.
    #[test]
    fn the_games_sounds_decode() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/Sounds");
        for crate::game::GameSound {
            name,
            ambience: amb,
            ..
        } in crate::game::SOUNDS
        {
            let bytes = std::fs::read(dir.join(format!("{name}.ogg"))).unwrap();
            let clip = decode(name, amb, &bytes).unwrap();
            assert!(clip.samples.len() > RATE as usize / 20, "{name}");
            assert!(
                clip.samples.iter().any(|s| s.abs() > 0.05),
                "{name} is silent"
            );
        }
        assert!(decode("Coin", false, b"not ogg").is_err());
    }
}
