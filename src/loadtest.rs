//! `bloxquarium loadtest`: N headless clients in one process against a running server, each
//! sending R messages per second of a realistic mix: chat events (10%), heartbeats (10%), echo
//! remote functions (60%, 64 B) and sealed echo calls through the envelope (20%, 64 B). At the
//! default 20 per second that stays inside the server's rate limits (chat 2/s, calls 30/s). Tokens are issued with the
//! server's key found under `--data`. The server's own figures come back through the stats RPC.

use std::time::{Duration, Instant};

use renet::RenetClient;
use serde::Serialize;

use crate::cli::{GlobalArgs, LoadtestArgs};
use crate::clock::LatencyWindow;
use crate::keys;
use crate::protocol::builtin::{Chat, Echo, Heartbeat, SecureEcho, ServerStats, ServerStatsReport};
use crate::protocol::{Remote, RequestId, decode_response};
use crate::transport::{
    BatchedClientTransport, ClientCore, ClientCredentials, ClientNotice, TokenIssuer,
    TransportSettings, open_client,
};

/// Loop period of the load generator: a client's 60 Hz frame.
const STEP: Duration = Duration::from_millis(16);
/// During the load, the bots take their frames in this many groups, one group every
/// `STEP / GROUPS`: real clients' frames are not in step with each other, and bots that all
/// sent in the same instant would hit the server in bursts no real crowd makes.
const GROUPS: usize = 4;
/// Longest wait for every client to connect.
const CONNECT_WAIT: Duration = Duration::from_secs(20);

/// The report; with `--json`, printed as one JSON object on the last line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    /// Clients started.
    pub clients: u32,
    /// Clients connected (welcomed) when the load began.
    pub connected: u32,
    /// Seconds of load.
    pub duration_s: f64,
    /// Messages sent per second, all clients together.
    pub msgs_per_s: f64,
    /// Remote function round trip, median, ms.
    pub rpc_p50_ms: f64,
    /// Remote function round trip, 99th percentile, ms.
    pub rpc_p99_ms: f64,
    /// Server tick time during the load, median, ms.
    pub server_tick_p50_ms: f64,
    /// Server tick time during the load, 99th percentile, ms.
    pub server_tick_p99_ms: f64,
    /// Server resident memory at the end, MiB.
    pub server_rss_mb: f64,
    /// Bytes each client sent and received per second (renet's measure), mean.
    pub bytes_per_client_per_s: f64,
    /// CPU the server process used during the load, all its threads, percent of one core.
    pub server_cpu_pct: f64,
    /// CPU this load generator used during the load, percent of one core.
    pub loadgen_cpu_pct: f64,
    /// Passes the server ran between ticks during the load (answering calls as they arrived),
    /// per second.
    pub server_between_passes_per_s: f64,
    /// Time the server spent in those passes, percent of the load's wall time.
    pub server_between_busy_pct: f64,
    /// Recent passes between ticks at the end, 99th percentile, ms.
    pub server_between_p99_ms: f64,
    /// Timeouts, rejections, refused input and disconnects.
    pub errors: u64,
    /// Server tick rate assumed for the tick window (ticks covered = duration × this).
    pub server_ticks_covered: u64,
    /// Seconds from the first connection request to the last welcome (the join burst).
    pub connect_s: f64,
    /// Server tick time over the join burst (from the first connection request to one second
    /// after the last welcome), median, ms.
    pub burst_tick_p50_ms: f64,
    /// Server tick time over the join burst, 99th percentile, ms.
    pub burst_tick_p99_ms: f64,
    /// Remote function calls the bots made during the load.
    pub calls: u64,
    /// Of those, answered with a result.
    pub calls_answered: u64,
    /// Answered with a refusal (a typed error from the server: rate limit, validation).
    pub calls_refused: u64,
    /// Timed out (the typed timeout error).
    pub calls_timed_out: u64,
    /// Failed because the bot's connection ended.
    pub calls_disconnected: u64,
    /// Still without an outcome after the drain (must be 0).
    pub calls_unresolved: u64,
    /// Bots whose connection ended during the test.
    pub bots_disconnected: u64,
    /// What the injected faults did, both ways, all bots.
    pub faults: crate::transport::faults::FaultCounts,
    /// With `--login`: logins that succeeded during the load, per second.
    pub logins_per_s: f64,
    /// Login round trip (HTTPS, hashing included), median, ms.
    pub login_p50_ms: f64,
    /// Login round trip, 99th percentile, ms.
    pub login_p99_ms: f64,
    /// Logins that failed.
    pub login_failures: u64,
    /// Packet loss renet measured per bot at the end, percent: mean and worst.
    pub client_loss_pct_mean: f64,
    /// See `client_loss_pct_mean`.
    pub client_loss_pct_max: f64,
}

struct Bot {
    client: RenetClient,
    transport: BatchedClientTransport,
    core: ClientCore,
    welcomed: bool,
    /// When its last frame of the load began.
    last_step: Instant,
    budget: f64,
    sent: u64,
    n: u64,
    failed: bool,
    calls: Calls,
    /// Calls wait for the pacer (`--paced-calls`).
    paced_calls: bool,
    /// Buys a fish with its first message of the load (`--buy-fish`).
    buy_fish: bool,
}

/// A bot's calls by outcome.
#[derive(Debug, Clone, Copy, Default)]
struct Calls {
    made: u64,
    answered: u64,
    refused: u64,
    timed_out: u64,
    disconnected: u64,
}

/// Runs the load test; returns the text to print.
pub fn run(global: &GlobalArgs, args: &LoadtestArgs) -> Result<String, String> {
    let paths = global.paths();
    let key = keys::load(&keys::key_path(&paths.keys)).map_err(|e| e.to_string())?;
    let config =
        crate::config::load_server(&paths.config, &crate::game::KEYS).map_err(|e| e.to_string())?;
    let settings = TransportSettings::from_config(&config).map_err(|e| e.to_string())?;
    let protocol_id = <crate::game::AquariumGame as crate::definition::Game>::protocol_id();
    let issuer = TokenIssuer::new(key, protocol_id, vec![args.server]);
    let start = Instant::now();
    let mut bots = Vec::with_capacity(args.clients as usize);
    for i in 0..u64::from(args.clients) {
        let token = issuer
            .issue(args.first_player + i, &format!("bot-{i}"))
            .map_err(|e| e.to_string())?;
        let mut opened = open_client(
            args.server,
            ClientCredentials::Token(Box::new(token)),
            protocol_id,
        )
        .map_err(|e| e.to_string())?;
        // Each bot sends at the rate the server's config gives real clients, and, like clients
        // that did not start in the same instant, not in step with the others.
        opened
            .transport
            .set_send_interval(settings.client_send_interval);
        opened.transport.set_send_phase(
            settings
                .client_send_interval
                .mul_f64(i as f64 / f64::from(args.clients.max(1))),
        );
        opened
            .transport
            .inject_faults(args.faults(), 0x00B1_0C5E_ED00_0000 ^ i);
        bots.push(Bot {
            client: opened.client.0,
            transport: opened.transport,
            core: ClientCore::new(
                opened.material,
                settings.message_timeout,
                settings.rekey_after,
            ),
            welcomed: false,
            last_step: Instant::now(),
            budget: 0.0,
            sent: 0,
            n: 0,
            failed: false,
            calls: Calls::default(),
            paced_calls: args.paced_calls,
            buy_fish: args.buy_fish,
        });
    }

    let mut last = Instant::now();
    let mut errors = 0u64;
    let mut latency = LatencyWindow::with_capacity(1 << 20);
    // Connect phase.
    while start.elapsed() < CONNECT_WAIT && bots.iter().any(|b| !b.welcomed && !b.failed) {
        let dt = last.elapsed();
        last = Instant::now();
        for b in &mut bots {
            step(b, dt, start.elapsed(), &mut errors, &mut latency);
        }
        std::thread::sleep(STEP);
    }
    // The server's figures as the load begins: asked here, answered during the load.
    let connect_s = start.elapsed().as_secs_f64();
    if let Some(b) = bots.iter_mut().find(|b| b.welcomed && !b.failed) {
        b.core
            .call(&ServerStats { recent_ticks: 0 }, start.elapsed());
    }
    // The join burst: its ticks are asked for one second after the last welcome, so they cover
    // the work a join leaves behind it (profile loads, manifests, config snapshots) too.
    let mut burst_call: Option<RequestId> = None;
    let mut burst = None;
    // Frame lengths vary by up to ±20% (the mean kept) so the bots' frames never lock onto the
    // server's tick (a 16 ms frame is nearly half a 33.3 ms tick, and a locked phase made the
    // round trip's median jump between runs): calls come at random points of the tick, as real
    // players' do.
    let mut jitter = 0x2545_F491_4F6C_DD1Du64;
    let mut server_at_start: Option<ServerStatsReport> = None;
    let loadgen_cpu_at_start = crate::process::cpu_seconds();
    let connected = bots.iter().filter(|b| b.welcomed).count() as u32;
    tracing::info!(
        "{connected}/{} clients connected; loading for {:?}",
        args.clients,
        args.duration
    );
    if connected < args.clients {
        tracing::warn!(
            "{} clients did not connect: every bot dials from this one address, which the server \
             limits to security.connectAttemptsBurst connection requests at once; start the server \
             with BLOXQUARIUM__SECURITY__CONNECTATTEMPTSBURST={} (or more)",
            args.clients - connected,
            args.clients.max(20) * 4
        );
    }

    // Load phase.
    let logins = match &args.login {
        Some(target) => Some(LoginLoad::start(target, args.login_rate)?),
        None => None,
    };
    let load_start = Instant::now();
    latency.clear();
    let mut bytes_samples = Vec::new();
    let mut next_sample = Duration::from_secs(1);
    for b in &mut bots {
        b.last_step = load_start;
    }
    let mut round = 0usize;
    while load_start.elapsed() < args.duration {
        let group = round % GROUPS;
        round += 1;
        let at = Instant::now();
        let now = start.elapsed();
        for b in bots.iter_mut().skip(group).step_by(GROUPS) {
            let dt = at.duration_since(b.last_step);
            b.last_step = at;
            if b.welcomed && !b.failed {
                b.budget += f64::from(args.rate) * dt.as_secs_f64();
                while b.budget >= 1.0 {
                    b.budget -= 1.0;
                    send_one(b, now);
                }
            }
            if let Some((id, s)) = step(b, dt, now, &mut errors, &mut latency) {
                if Some(id) == burst_call {
                    burst = Some((s.tick_p50_ms, s.tick_p99_ms));
                } else {
                    server_at_start.get_or_insert(s);
                }
            }
        }
        if load_start.elapsed() >= next_sample {
            next_sample += Duration::from_secs(1);
            let live: Vec<f64> = bots
                .iter()
                .filter(|b| b.welcomed && !b.failed)
                .map(|b| {
                    let i = b.client.network_info();
                    i.bytes_sent_per_second + i.bytes_received_per_second
                })
                .collect();
            if !live.is_empty() {
                bytes_samples.push(live.iter().sum::<f64>() / live.len() as f64);
            }
        }
        if burst_call.is_none()
            && load_start.elapsed() >= Duration::from_secs(1)
            && let Some(b) = bots.iter_mut().find(|b| b.welcomed && !b.failed)
        {
            let ticks = ((connect_s + load_start.elapsed().as_secs_f64()) * 30.0).ceil() as u32;
            burst_call = Some(b.core.call(
                &ServerStats {
                    recent_ticks: ticks,
                },
                start.elapsed(),
            ));
        }
        jitter ^= jitter << 13;
        jitter ^= jitter >> 7;
        jitter ^= jitter << 17;
        let factor = 0.8 + 0.4 * ((jitter >> 11) as f64 / (1u64 << 53) as f64);
        std::thread::sleep((STEP / GROUPS as u32).mul_f64(factor));
    }
    let duration = load_start.elapsed();
    let login_figures = logins.map(|l| l.finish(duration));
    // Drain: no new messages; every call made gets its outcome (an answer, a refusal, or its
    // timeout after network.messageTimeout).
    let drain_until = Instant::now() + settings.message_timeout + Duration::from_secs(2);
    last = Instant::now();
    while Instant::now() < drain_until
        && bots.iter().any(|b| !b.failed && b.core.pending_calls() > 0)
    {
        let dt = last.elapsed();
        last = Instant::now();
        for b in &mut bots {
            step(b, dt, start.elapsed(), &mut errors, &mut latency);
        }
        std::thread::sleep(STEP);
    }
    last = Instant::now();
    let loadgen_cpu = crate::process::cpu_seconds() - loadgen_cpu_at_start;
    let sent: u64 = bots.iter().map(|b| b.sent).sum();

    // The server's own figures over the ticks of the load.
    let tick_hz = 30.0;
    let recent = (duration.as_secs_f64() * tick_hz).ceil() as u32;
    let mut report = LoadReport {
        clients: args.clients,
        connected,
        duration_s: duration.as_secs_f64(),
        msgs_per_s: sent as f64 / duration.as_secs_f64().max(1e-9),
        rpc_p50_ms: latency.quantile_ms(0.5),
        rpc_p99_ms: latency.quantile_ms(0.99),
        bytes_per_client_per_s: if bytes_samples.is_empty() {
            0.0
        } else {
            bytes_samples.iter().sum::<f64>() / bytes_samples.len() as f64
        },
        server_ticks_covered: u64::from(recent),
        loadgen_cpu_pct: 100.0 * loadgen_cpu / duration.as_secs_f64().max(1e-9),
        connect_s,
        burst_tick_p50_ms: burst.map_or(0.0, |b| b.0),
        burst_tick_p99_ms: burst.map_or(0.0, |b| b.1),
        ..Default::default()
    };
    if let Some((per_s, p50, p99, failures)) = login_figures {
        report.logins_per_s = per_s;
        report.login_p50_ms = p50;
        report.login_p99_ms = p99;
        report.login_failures = failures;
    }
    for b in &bots {
        report.calls += b.calls.made;
        report.calls_answered += b.calls.answered;
        report.calls_refused += b.calls.refused;
        report.calls_timed_out += b.calls.timed_out;
        report.calls_disconnected += b.calls.disconnected;
        report.bots_disconnected += u64::from(b.failed);
        if let Some(c) = b.transport.fault_counts() {
            report.faults += c;
        }
    }
    report.calls_unresolved = report.calls.saturating_sub(
        report.calls_answered
            + report.calls_refused
            + report.calls_timed_out
            + report.calls_disconnected,
    );
    let losses: Vec<f64> = bots
        .iter()
        .filter(|b| b.welcomed)
        .map(|b| 100.0 * b.client.network_info().packet_loss)
        .collect();
    if !losses.is_empty() {
        report.client_loss_pct_mean = losses.iter().sum::<f64>() / losses.len() as f64;
        report.client_loss_pct_max = losses.iter().copied().fold(0.0, f64::max);
    }
    if let Some(b) = bots.iter_mut().find(|b| b.welcomed && !b.failed) {
        let id = b.core.call(
            &ServerStats {
                recent_ticks: recent,
            },
            start.elapsed(),
        );
        let asked = Instant::now();
        // The load is over: what goes wrong now is not the load's error.
        let mut late_errors = 0;
        while asked.elapsed() < Duration::from_secs(10) {
            let dt = last.elapsed();
            last = Instant::now();
            if let Some((got, s)) = step(b, dt, start.elapsed(), &mut late_errors, &mut latency)
                && got == id
            {
                report.server_tick_p50_ms = s.tick_p50_ms;
                report.server_tick_p99_ms = s.tick_p99_ms;
                report.server_rss_mb = s.rss_mb;
                report.server_between_p99_ms = s.between_p99_ms;
                if let Some(at) = &server_at_start {
                    // Up to the answer: a few frames past the load's end.
                    let wall = load_start.elapsed().as_secs_f64().max(1e-9);
                    report.server_cpu_pct = 100.0 * (s.cpu_seconds - at.cpu_seconds) / wall;
                    report.server_between_passes_per_s =
                        s.between_passes.saturating_sub(at.between_passes) as f64 / wall;
                    report.server_between_busy_pct =
                        100.0 * (s.between_seconds - at.between_seconds) / wall;
                }
                break;
            }
            std::thread::sleep(STEP);
        }
    } else {
        errors += 1;
    }
    for b in &mut bots {
        b.transport.disconnect();
    }
    report.errors = errors + bots.iter().filter(|b| b.failed).count() as u64;

    let mut out = format!(
        "clients {}/{} connected in {:.2} s (join burst: server tick p50 {:.2} ms p99 {:.2} ms); load {:.1} s, {:.0} msg/s, rpc p50 {:.2} ms p99 {:.2} ms, server tick p50 {:.2} ms p99 {:.2} ms, server rss {:.1} MiB, server cpu {:.0}%, load generator cpu {:.0}%, {:.0} B/client/s, {} errors; between ticks {:.0} passes/s, {:.1}% of the time, pass p99 {:.2} ms",
        report.connected,
        report.clients,
        report.connect_s,
        report.burst_tick_p50_ms,
        report.burst_tick_p99_ms,
        report.duration_s,
        report.msgs_per_s,
        report.rpc_p50_ms,
        report.rpc_p99_ms,
        report.server_tick_p50_ms,
        report.server_tick_p99_ms,
        report.server_rss_mb,
        report.server_cpu_pct,
        report.loadgen_cpu_pct,
        report.bytes_per_client_per_s,
        report.errors,
        report.server_between_passes_per_s,
        report.server_between_busy_pct,
        report.server_between_p99_ms
    );
    if args.login.is_some() {
        out.push_str(&format!(
            "\nlogins {:.1}/s, round trip p50 {:.1} ms p99 {:.1} ms, {} failed",
            report.logins_per_s, report.login_p50_ms, report.login_p99_ms, report.login_failures
        ));
    }
    if !args.faults().is_none() || report.calls_unresolved > 0 {
        out.push_str(&format!(
            "\ncalls {}: {} answered, {} refused, {} timed out, {} lost with their connection, {} unresolved; {} bots disconnected; faults {:?}; renet loss per bot {:.1}% mean, {:.1}% worst",
            report.calls,
            report.calls_answered,
            report.calls_refused,
            report.calls_timed_out,
            report.calls_disconnected,
            report.calls_unresolved,
            report.bots_disconnected,
            report.faults,
            report.client_loss_pct_mean,
            report.client_loss_pct_max
        ));
    }
    if args.json {
        out.push('\n');
        out.push_str(&serde_json::to_string(&report).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

fn send_one(b: &mut Bot, now: Duration) {
    b.n += 1;
    if std::mem::take(&mut b.buy_fish) {
        b.calls.made += 1;
        b.sent += 1;
        b.core.call(
            &crate::game::protocol::Purchase {
                op_id: 1,
                item: crate::game::protocol::ShopItem::Fish { species: 0 },
                quantity: 1,
            },
            now,
        );
        return;
    }
    match b.n % 10 {
        0 => b.core.send(&Chat {
            text: format!("hello #{}", b.n),
        }),
        // The wall clock, as a real client sends it (the clock-skew detector reads it).
        1 => b.core.send(&Heartbeat {
            client_time_ms: crate::clock::now_ms(),
        }),
        2..=7 => {
            b.calls.made += 1;
            b.core.call(
                &Echo {
                    payload: vec![7; 64],
                },
                now,
            );
        }
        _ => {
            b.calls.made += 1;
            b.core.call(
                &SecureEcho {
                    payload: vec![9; 64],
                },
                now,
            );
        }
    }
    b.sent += 1;
}

/// One frame of a bot; returns a server stats answer (and its call) if one arrived.
fn step(
    b: &mut Bot,
    dt: Duration,
    now: Duration,
    errors: &mut u64,
    latency: &mut LatencyWindow,
) -> Option<(RequestId, ServerStatsReport)> {
    let mut stats = None;
    if b.failed {
        return None;
    }
    b.client.update(dt);
    if b.transport.update(dt, &mut b.client).is_err() || b.transport.disconnect_reason().is_some() {
        b.failed = true;
        // Its calls end with the connection.
        b.calls.disconnected += b.core.fail_all().len() as u64;
        return None;
    }
    if b.client.is_connected() {
        let mut notices = b.core.receive(&mut b.client, now);
        notices.extend(b.core.expire(now));
        for n in notices {
            match n {
                ClientNotice::Welcomed { .. } => b.welcomed = true,
                ClientNotice::Rpc {
                    kind,
                    result: Err(e),
                    ..
                } => {
                    *errors += 1;
                    if kind != ServerStats::KIND {
                        match e {
                            crate::protocol::RemoteError::Timeout(_) => b.calls.timed_out += 1,
                            crate::protocol::RemoteError::Disconnected => b.calls.disconnected += 1,
                            _ => b.calls.refused += 1,
                        }
                    }
                }
                ClientNotice::Refused { .. } | ClientNotice::Kicked { .. } => *errors += 1,
                ClientNotice::Rpc { id, kind, result } if kind == ServerStats::KIND => {
                    match decode_response::<ServerStats>(result) {
                        Ok(s) => stats = Some((id, s)),
                        Err(_) => *errors += 1,
                    }
                }
                ClientNotice::Rpc { .. } => b.calls.answered += 1,
                ClientNotice::Event { .. } | ClientNotice::Signed { .. } => {}
            }
        }
        // Round trips measured by the core since the last step.
        while let Some(ms) = b.core.stats.rpc_latency.pop_front_ms() {
            latency.record(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    if b.core.flush(&mut b.client) && !b.paced_calls {
        b.transport.expedite();
    }
    if b.transport.send_packets(&mut b.client).is_err() {
        b.failed = true;
    }
    stats
}

/// Logins at a steady rate during the load, from a few threads (a login waits on the server's
/// password hashing, so one thread could not keep the rate).
struct LoginLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    workers: Vec<std::thread::JoinHandle<Vec<(bool, Duration)>>>,
}

/// Login threads: logins in flight at most (under the service's 8 connections per address, so
/// connections still closing never push one over the cap).
const LOGIN_WORKERS: usize = 6;

impl LoginLoad {
    fn start(target: &str, rate: f64) -> Result<Self, String> {
        use crate::accounts::login::{Credentials, LoginClient, LoginError};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        if !(rate > 0.0 && rate.is_finite()) {
            return Err(format!("--login-rate {rate}: expected a rate above 0"));
        }
        let dir = std::env::temp_dir().join(format!("bq-loadtest-login-{}", std::process::id()));
        let client = LoginClient::new(target, &dir, None).map_err(|e| e.to_string())?;
        let credentials = Credentials {
            username: format!("loadtest{}", std::process::id()),
            password: "load-test-password".into(),
            friend: None,
        };
        match client.register(&credentials) {
            Ok(_) => {}
            Err(LoginError::Refused { status: 409, .. }) => {}
            Err(e) => return Err(format!("login load: registering: {e}")),
        }
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let workers = (0..LOGIN_WORKERS)
            .map(|_| {
                let (stop, next, client, credentials) = (
                    stop.clone(),
                    next.clone(),
                    client.clone(),
                    credentials.clone(),
                );
                std::thread::spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let at = start + Duration::from_secs_f64(k as f64 / rate);
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        if let Some(wait) = at.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let t = Instant::now();
                        let ok = client.log_in(&credentials).is_ok();
                        done.push((ok, t.elapsed()));
                    }
                    done
                })
            })
            .collect();
        Ok(Self { stop, workers })
    }

    /// Stops; the figures: logins/s, p50 and p99 ms, failures.
    fn finish(self, duration: Duration) -> (f64, f64, f64, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = Vec::new();
        for w in self.workers {
            all.extend(w.join().unwrap_or_default());
        }
        let mut ok: Vec<f64> = all
            .iter()
            .filter(|(ok, _)| *ok)
            .map(|(_, t)| t.as_secs_f64() * 1000.0)
            .collect();
        let failures = all.iter().filter(|(ok, _)| !ok).count() as u64;
        let per_s = ok.len() as f64 / duration.as_secs_f64().max(1e-9);
        ok.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            ok.get(((ok.len() as f64 - 1.0) * q).round().max(0.0) as usize)
                .copied()
                .unwrap_or(0.0)
        };
        (per_s, pick(0.5), pick(0.99), failures)
    }
}
