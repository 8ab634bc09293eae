//! Data store: locks, transactions, versions, backups, corruption, offline messages, crash safety,
//! and the plugin's load/save/shutdown path.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bloxquarium::datastore::{
    self, BackupError, LockOwner, SaveRequest, Store, StoreError, back_up, list_backups, store_id,
    verify_backup,
};
use bloxquarium::datastore::{Backend, Table, WriteOps};
use bloxquarium::game::{Aquarium, OfflineGift, Profile};

use crate::harness::{self, Scratch};

fn config() -> bloxquarium::config::Config {
    bloxquarium::config::load_server(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
        &bloxquarium::game::KEYS,
    )
    .unwrap()
}

fn store(dir: &Scratch) -> Store {
    datastore::open::<Aquarium>(&dir.0, &config()).unwrap()
}

/// Where a conformance test's store lives: the same test code runs on both backends.
pub enum On {
    /// The embedded file under the scratch folder.
    Redb,
    /// A database of the throwaway cluster, named after the scratch folder.
    Postgres(&'static crate::postgres::Cluster),
}

/// The `--store` URL of `dir`'s store on `on` (none for the embedded file).
fn store_url(dir: &Scratch, on: &On) -> Option<String> {
    match on {
        On::Redb => None,
        On::Postgres(c) => {
            let name = dir
                .0
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("store")
                .trim_start_matches("bloxquarium-it-")
                .to_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_");
            Some(c.database(&name))
        }
    }
}

/// The store of `dir` on `on` (reopening the same one when called again). These tests script
/// time, so leases follow the times they pass, on PostgreSQL too (whose servers otherwise
/// time leases by the database's clock: see `postgres.rs`).
fn store_on(dir: &Scratch, on: &On) -> Store {
    let paths =
        bloxquarium::process::Paths::new(&dir.0, &dir.0, &dir.0).with_store(store_url(dir, on));
    let mut store = datastore::open_at::<Aquarium>(&paths, &config()).unwrap();
    store.use_caller_clock();
    store
}

/// Each named test, once on redb and once on PostgreSQL (`<name>::redb`, `<name>::postgres`).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn redb() {
                super::$name(&super::On::Redb)
            }
            #[test]
            fn postgres() {
                if let Some(c) = crate::postgres::cluster() {
                    super::$name(&super::On::Postgres(c))
                }
            }
        }
    )*};
}

on_both_backends!(
    lock_contention_between_two_servers_and_stale_takeover_with_fencing,
    transactions_commit_all_or_nothing,
    versions_are_bounded_listed_viewed_and_restored,
    offline_messages_apply_exactly_once,
    corruption_is_detected_named_and_never_overwritten,
    erase_removes_everything_of_a_player,
    backup_verify_and_restore_refuse_corrupt_and_foreign_files,
    a_gift_survives_a_failure_or_a_crash_between_any_two_steps,
    a_refused_save_sends_nothing_and_a_gift_to_nobody_comes_back,
    a_trade_survives_a_failure_or_a_crash_between_any_two_steps,
    a_trade_across_servers_is_settled_once_all_or_nothing,
    the_leaderboard_is_written_with_each_save_and_ranks_every_player,
    the_store_wide_jobs_prune_old_versions_and_audit_records
);

fn owner(server: &str, session: u128) -> LockOwner {
    LockOwner {
        server_id: server.into(),
        session,
    }
}

fn save(
    store: &Store,
    p: &Profile,
    version: u64,
    o: &LockOwner,
    now: u64,
) -> Result<u64, StoreError> {
    store
        .save(&SaveRequest::new(p.clone(), version, o.clone()), now)
        .map(|s| s.version)
}

const T0: u64 = 1_800_000_000_000;

fn lock_contention_between_two_servers_and_stale_takeover_with_fencing(on: &On) {
    let d = Scratch::new("ds-locks");
    let s = store_on(&d, on);
    let a = owner("server-a", 1);
    let b = owner("server-b", 2);
    let loaded = s.load::<Aquarium>(10, &a, T0).unwrap();
    assert_eq!(loaded.version, 0, "new player: template, not yet saved");
    assert_eq!(loaded.token, 1, "the first take of the lock");
    assert_eq!(loaded.profile.stats.coins, 100, "game.startingCoins");
    let v1 = save(&s, &loaded.profile, 0, &a, T0 + 1000).unwrap();

    // B cannot load while A's heartbeat is fresh (lockStaleAfter = 60 s).
    match s.load::<Aquarium>(10, &b, T0 + 30_000) {
        Err(StoreError::Locked { holder, .. }) => assert_eq!(holder, "server-a"),
        other => panic!("{other:?}"),
    }
    // After 60 s without a heartbeat, B takes over.
    let taken = s.load::<Aquarium>(10, &b, T0 + 62_000).unwrap();
    assert_eq!(taken.version, v1);
    assert_eq!(taken.token, 2, "the takeover's token is higher");
    // A's save is now refused (fencing), and so is its heartbeat.
    let mut p = loaded.profile.clone();
    p.stats.coins = 1;
    assert!(matches!(
        save(&s, &p, v1, &a, T0 + 63_000),
        Err(StoreError::LockLost { .. })
    ));
    assert!(matches!(
        s.heartbeat(10, &a, T0 + 63_000),
        Err(StoreError::LockLost { .. })
    ));
    // B saves; a stale version from B is a conflict (compare-and-swap).
    let v2 = save(&s, &taken.profile, v1, &b, T0 + 64_000).unwrap();
    assert!(matches!(
        save(&s, &taken.profile, v1, &b, T0 + 65_000),
        Err(StoreError::VersionConflict { .. })
    ));
    assert_eq!(s.peek::<Aquarium>(10).unwrap().unwrap().0, v2);
    s.release(10, &b).unwrap();
    let again = s.load::<Aquarium>(10, &a, T0 + 66_000);
    assert!(again.is_ok(), "released lock is free");
    assert_eq!(
        again.unwrap().token,
        3,
        "the token keeps rising across a release"
    );
}

fn transactions_commit_all_or_nothing(on: &On) {
    let d = Scratch::new("ds-txn");
    let s = store_on(&d, on);
    for (player, session) in [(1, 1), (2, 2)] {
        let o = owner("srv", session);
        let l = s.load::<Aquarium>(player, &o, T0).unwrap();
        save(&s, &l.profile, 0, &o, T0).unwrap();
    }
    // A gift of 30 coins from 1 to 2.
    let out = s
        .transact::<Aquarium>(&[1, 2], "srv", T0, |ps| {
            ps.get_mut(&1).ok_or("no 1")?.stats.coins -= 30;
            ps.get_mut(&2).ok_or("no 2")?.stats.coins += 30;
            Ok(())
        })
        .unwrap();
    assert_eq!(out[&1].1.stats.coins, 70);
    assert_eq!(out[&2].1.stats.coins, 130);
    // An injected failure after the first change: nothing is written.
    let before = (
        s.peek::<Aquarium>(1).unwrap().unwrap(),
        s.peek::<Aquarium>(2).unwrap().unwrap(),
    );
    let r = s.transact::<Aquarium>(&[1, 2], "srv", T0, |ps| {
        ps.get_mut(&1).ok_or("no 1")?.stats.coins -= 50;
        Err("injected failure mid-transaction".into())
    });
    assert_eq!(
        r,
        Err(StoreError::Aborted(
            "injected failure mid-transaction".into()
        ))
    );
    // A change that fails validation (negative coins) also rolls everything back.
    let r = s.transact::<Aquarium>(&[1, 2], "srv", T0, |ps| {
        ps.get_mut(&2).ok_or("no 2")?.stats.coins += 1000;
        ps.get_mut(&1).ok_or("no 1")?.stats.coins -= 1000;
        Ok(())
    });
    assert!(matches!(r, Err(StoreError::Invalid { .. })), "{r:?}");
    assert_eq!(
        (
            s.peek::<Aquarium>(1).unwrap().unwrap(),
            s.peek::<Aquarium>(2).unwrap().unwrap()
        ),
        before
    );
    assert!(s.stats().rollbacks >= 1);
    // Another server's fresh lock blocks the transaction.
    let l3 = s.load::<Aquarium>(3, &owner("other", 9), T0).unwrap();
    save(&s, &l3.profile, 0, &owner("other", 9), T0).unwrap();
    assert!(matches!(
        s.transact::<Aquarium>(&[1, 3], "srv", T0 + 1000, |_| Ok(())),
        Err(StoreError::Locked { .. })
    ));
}

fn versions_are_bounded_listed_viewed_and_restored(on: &On) {
    let d = Scratch::new("ds-versions");
    let s = store_on(&d, on);
    let o = owner("srv", 1);
    let mut l = s.load::<Aquarium>(5, &o, T0).unwrap();
    let mut v = 0;
    for i in 1..=25 {
        l.profile.stats.coins = i * 10;
        v = save(&s, &l.profile, v, &o, T0 + i as u64).unwrap();
    }
    let versions = s.versions(5).unwrap();
    assert_eq!(versions.len(), 20, "datastore.versionsKeep");
    assert_eq!(versions.last().unwrap().0, 25);
    assert_eq!(s.read_version::<Aquarium>(5, 10).unwrap().stats.coins, 100);
    // Restoring refuses while a session holds the lock; after release it works.
    assert!(matches!(
        s.restore_version::<Aquarium>(5, 10, T0 + 100),
        Err(StoreError::Locked { .. })
    ));
    s.release(5, &o).unwrap();
    let restored = s.restore_version::<Aquarium>(5, 10, T0 + 100).unwrap();
    assert_eq!(restored, 26);
    assert_eq!(s.peek::<Aquarium>(5).unwrap().unwrap().1.stats.coins, 100);
    // A rejected save keeps the previous version.
    let o2 = owner("srv", 2);
    let mut l2 = s.load::<Aquarium>(5, &o2, T0 + 200).unwrap();
    l2.profile.fish.push(bloxquarium::game::Fish {
        id: 1,
        species: 0,
        name: "x".into(),
        hunger: f32::INFINITY,
        from_trade: None,
    });
    assert!(matches!(
        save(&s, &l2.profile, 26, &o2, T0 + 201),
        Err(StoreError::Invalid { .. })
    ));
    assert_eq!(s.peek::<Aquarium>(5).unwrap().unwrap().0, 26);
}

fn offline_messages_apply_exactly_once(on: &On) {
    let d = Scratch::new("ds-gifts");
    let s = store_on(&d, on);
    let o = owner("srv", 1);
    let l = s.load::<Aquarium>(8, &o, T0).unwrap();
    save(&s, &l.profile, 0, &o, T0).unwrap();
    s.release(8, &o).unwrap();
    s.send_offline::<Aquarium>(
        8,
        &OfflineGift::Coins {
            amount: 50,
            from: 1,
        },
    )
    .unwrap();
    s.send_offline::<Aquarium>(
        8,
        &OfflineGift::Item {
            item: "castle".into(),
            count: 2,
            from: 1,
        },
    )
    .unwrap();
    let first = s.load::<Aquarium>(8, &o, T0 + 10).unwrap();
    assert_eq!(first.applied.len(), 2);
    assert_eq!(first.profile.stats.coins, 150);
    assert_eq!(first.profile.inventory["castle"], 2);
    s.release(8, &o).unwrap();
    let again = s.load::<Aquarium>(8, &o, T0 + 20).unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(again.profile.stats.coins, 150, "applied once, not twice");
    let stats = s.stats();
    assert!(
        stats.operations >= 6 && stats.failed == 0 && stats.success_rate() == 1.0,
        "{stats:?}"
    );
    assert!(stats.compression_ratio() > 1.0, "{stats:?}");
    assert!(stats.save_p99_ms >= stats.save_p50_ms);
}

fn corruption_is_detected_named_and_never_overwritten(on: &On) {
    let d = Scratch::new("ds-corrupt");
    let s = store_on(&d, on);
    let o = owner("srv", 1);
    let l = s.load::<Aquarium>(4, &o, T0).unwrap();
    let v = save(&s, &l.profile, 0, &o, T0).unwrap();
    s.release(4, &o).unwrap();
    // Flip a byte of the stored blob behind the store's back.
    let key = |player: u64, version: u64| {
        let mut k = player.to_be_bytes().to_vec();
        k.extend_from_slice(&version.to_be_bytes());
        k
    };
    // The version index names the blob's sequence number.
    let blob_key = |s: &Store, player: u64, version: u64| {
        s.backend()
            .read(|ops| ops.get(Table::Versions, &key(player, version)))
            .unwrap()
            .unwrap()[..8]
            .to_vec()
    };
    let b4 = blob_key(&s, 4, v);
    let mut row = s
        .backend()
        .read(|ops| ops.get(Table::Blobs, &b4))
        .unwrap()
        .unwrap();
    let last = row.len() - 1;
    row[last] ^= 0xFF;
    s.backend()
        .write(true, |ops: &mut dyn WriteOps| {
            ops.put(Table::Blobs, &b4, &row)
        })
        .unwrap();
    match s.load::<Aquarium>(4, &o, T0 + 1) {
        Err(StoreError::Corrupt { player, reason }) => {
            assert_eq!(player, 4);
            assert!(reason.contains("authentication failed"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // The damaged row is still there, untouched; the failed load took no lock and saved nothing.
    let still = s
        .backend()
        .read(|ops| ops.get(Table::Blobs, &b4))
        .unwrap()
        .unwrap();
    assert_eq!(still, row);
    assert_eq!(s.versions(4).unwrap().len(), 1);
    assert!(
        s.load::<Aquarium>(4, &owner("other-server", 2), T0 + 2)
            .is_err(),
        "still corrupt, still not replaced"
    );
    // A blob moved to another player's rows fails too.
    let l6 = s.load::<Aquarium>(6, &o, T0).unwrap();
    let v6 = save(&s, &l6.profile, 0, &o, T0).unwrap();
    // Player 7's version 1 points at player 6's blob.
    let six = s
        .backend()
        .read(|ops| ops.get(Table::Versions, &key(6, v6)))
        .unwrap()
        .unwrap();
    s.backend()
        .write(true, |ops: &mut dyn WriteOps| {
            ops.put(Table::Versions, &key(7, 1), &six)?;
            ops.put(Table::Profiles, &7u64.to_be_bytes(), &1u64.to_be_bytes())
        })
        .unwrap();
    assert!(matches!(
        s.load::<Aquarium>(7, &o, T0),
        Err(StoreError::Corrupt { player: 7, .. })
    ));
}

fn erase_removes_everything_of_a_player(on: &On) {
    let d = Scratch::new("ds-erase");
    let s = store_on(&d, on);
    let o = owner("srv", 1);
    let l = s.load::<Aquarium>(9, &o, T0).unwrap();
    let v = save(&s, &l.profile, 0, &o, T0).unwrap();
    save(&s, &l.profile, v, &o, T0 + 1).unwrap();
    s.send_offline::<Aquarium>(9, &OfflineGift::Coins { amount: 1, from: 2 })
        .unwrap();
    // Not while a session holds it.
    assert!(matches!(
        s.erase_player(9, "test", T0 + 2),
        Err(StoreError::Locked { .. })
    ));
    s.release(9, &o).unwrap();
    assert!(s.erase_player(9, "test", T0 + 2).unwrap() >= 3);
    assert!(s.peek::<Aquarium>(9).unwrap().is_none());
    assert!(s.versions(9).unwrap().is_empty());
    assert!(!s.players().unwrap().contains(&9));
    drop(s);
    // The command line erases too, the player's account with the profile, and writes an
    // audit record (the server's audit log).
    let s = store_on(&d, on);
    let cheap = bloxquarium::accounts::HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let account =
        bloxquarium::accounts::register(s.backend(), &cheap, "Tenth", "sea-shells-42", T0).unwrap();
    let l = s.load::<Aquarium>(account.player_id, &o, T0).unwrap();
    save(&s, &l.profile, 0, &o, T0).unwrap();
    s.release(account.player_id, &o).unwrap();
    drop(s);
    let tenth = account.player_id.to_string();
    let mut cmd = harness::bin();
    cmd.args(["--data", d.path()]);
    if let Some(url) = store_url(&d, on) {
        cmd.args(["--store", &url]);
    }
    cmd.args(["datastore", "erase", "--player", &tenth]);
    let out = harness::output_within(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "{}", harness::text(&out));
    let recs = bloxquarium::security::query_audit(
        &d.0,
        &bloxquarium::security::AuditQuery {
            player: Some(account.player_id),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert!(
        recs[0]
            .details
            .starts_with("erased by the datastore command line")
    );
    let s = store_on(&d, on);
    assert!(s.peek::<Aquarium>(account.player_id).unwrap().is_none());
    assert!(
        bloxquarium::accounts::find(s.backend(), "tenth")
            .unwrap()
            .is_none(),
        "the account went with the profile"
    );
}

fn backup_verify_and_restore_refuse_corrupt_and_foreign_files(on: &On) {
    let d = Scratch::new("ds-backup");
    let s = store_on(&d, on);
    let o = owner("srv", 1);
    let mut l = s.load::<Aquarium>(1, &o, T0).unwrap();
    l.profile.stats.coins = 4242;
    save(&s, &l.profile, 0, &o, T0).unwrap();
    let id = store_id(s.backend()).unwrap();
    let rec = back_up(s.backend(), &d.0, 3, T0).unwrap();
    assert_eq!(
        verify_backup(&rec.file, Some(&id)).unwrap().sha256,
        rec.sha256
    );
    // Retention: 3 newest kept.
    for i in 1..=4 {
        back_up(s.backend(), &d.0, 3, T0 + i).unwrap();
    }
    assert_eq!(list_backups(&d.0).unwrap().len(), 3);
    let keep = list_backups(&d.0).unwrap().pop().unwrap();

    // A foreign backup (another store) is refused.
    let other = Scratch::new("ds-backup-other");
    let s2 = store_on(&other, on);
    let foreign = back_up(s2.backend(), &other.0, 3, T0).unwrap();
    assert!(matches!(
        verify_backup(&foreign.file, Some(&id)),
        Err(BackupError::Foreign { .. })
    ));
    // A corrupt backup is refused.
    let bad = d.0.join("backups").join("bad.redb");
    std::fs::copy(&keep, &bad).unwrap();
    std::fs::copy(
        format!("{}.sha256", keep.display()),
        format!("{}.sha256", bad.display()),
    )
    .unwrap();
    let mut bytes = std::fs::read(&bad).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&bad, bytes).unwrap();
    assert!(matches!(
        verify_backup(&bad, Some(&id)),
        Err(BackupError::Corrupt { .. })
    ));
    std::fs::remove_file(&bad).unwrap();

    // Change the live store, then restore (with the store closed).
    l.profile.stats.coins = 1;
    save(&s, &l.profile, 1, &o, T0 + 10).unwrap();
    drop(s);
    if let On::Postgres(c) = on {
        // PostgreSQL restores into an empty database, and only into an empty one.
        let url = c.fresh("restored");
        let mut cmd = harness::bin();
        cmd.args(["--data", d.path(), "--store", &url, "datastore", "restore"])
            .arg(&keep);
        let out = harness::output_within(cmd, Duration::from_secs(60));
        assert!(out.status.success(), "{}", harness::text(&out));
        assert!(
            harness::text(&out).contains("rows"),
            "{}",
            harness::text(&out)
        );
        let paths =
            bloxquarium::process::Paths::new(&d.0, &d.0, &d.0).with_store(Some(url.clone()));
        let s = datastore::open_at::<Aquarium>(&paths, &config()).unwrap();
        assert_eq!(s.peek::<Aquarium>(1).unwrap().unwrap().1.stats.coins, 4242);
        assert_eq!(
            store_id(s.backend()).unwrap(),
            id,
            "the backup's store id came with it"
        );
        drop(s);
        let again = bloxquarium::datastore::PostgresBackend::connect(&url)
            .unwrap()
            .restore_from(&keep)
            .unwrap_err();
        assert!(again.0.contains("already holds data"), "{again}");
        return;
    }
    let store_file = datastore::store_path(&d.0);
    assert!(
        bloxquarium::datastore::restore_backup(&foreign.file, &store_file, Some(&id), T0).is_err()
    );
    bloxquarium::datastore::restore_backup(&keep, &store_file, Some(&id), T0 + 20).unwrap();
    let s = store_on(&d, on);
    assert_eq!(s.peek::<Aquarium>(1).unwrap().unwrap().1.stats.coins, 4242);
}

#[test]
fn cli_backup_list_verify() {
    let d = Scratch::new("ds-cli");
    drop(store(&d));
    let run = |args: &[&str]| {
        let mut cmd = harness::bin();
        cmd.args(["--data", d.path(), "datastore"]).args(args);
        harness::output_within(cmd, Duration::from_secs(60))
    };
    let out = run(&["backup"]);
    assert!(out.status.success(), "{}", harness::text(&out));
    let out = run(&["list-backups"]);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let file = listing.split_whitespace().next().unwrap().to_string();
    let out = run(&["verify", &file]);
    assert!(out.status.success(), "{}", harness::text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok:"));
    let out = run(&["verify", "/etc/hostname"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Bloxquarium backup"));
}

#[test]
fn acknowledged_saves_survive_sigkill() {
    let d = Scratch::new("ds-crash");
    drop(store(&d));
    let mut child = harness::bin()
        .args(["--data", d.path(), "datastore", "soak", "--player", "77"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut last_acked = 0u64;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if let Some(v) = line.strip_prefix("acked ") {
            last_acked = v.parse().unwrap();
        }
        if last_acked >= 40 {
            break;
        }
    }
    // SIGKILL: no chance to flush or clean up.
    child.kill().unwrap();
    let _ = child.wait();
    assert!(last_acked >= 40);
    let s = store(&d);
    let (version, profile) = s.peek::<Aquarium>(77).unwrap().expect("profile present");
    assert!(
        version >= last_acked,
        "acked {last_acked}, stored {version}"
    );
    assert_eq!(
        profile.stats.coins as u64, version,
        "not torn: the blob matches its version"
    );
    for (v, _) in s.versions(77).unwrap() {
        assert_eq!(
            s.read_version::<Aquarium>(77, v).unwrap().stats.coins as u64,
            v
        );
    }
}

#[test]
fn plugin_loads_on_join_saves_on_leave_and_drains_on_shutdown() {
    use bloxquarium::game::DataStoreState;
    let d = Scratch::new("ds-plugin");
    let mut server = harness::server(&d, &[]);
    // An offline gift waiting for player 21.
    server
        .world()
        .resource::<bloxquarium::datastore::DataStore>()
        .send_offline::<Aquarium>(21, &OfflineGift::Coins { amount: 5, from: 1 })
        .unwrap();
    let (mut client, loaded) = harness::join_loaded(&mut server, &d, 21, "Gill");
    assert_eq!(loaded[0].player, 21);
    assert_eq!(loaded[0].applied, 1);
    {
        let mut state = server.world_mut().resource_mut::<DataStoreState>();
        assert_eq!(state.profile(21).unwrap().profile.stats.coins, 105);
        state.simulate(21, |p| p.stats.coins = 321).unwrap();
    }
    // The client leaves: the server saves and releases.
    client
        .world_mut()
        .resource_mut::<bloxquarium::shutdown::Shutdown>()
        .request(bloxquarium::shutdown::ShutdownReason::Requested(
            "leave".into(),
        ));
    harness::pump_until(&mut [&mut server, &mut client], 300, "save on leave", |a| {
        a[0].world()
            .resource::<DataStoreState>()
            .profile(21)
            .is_none()
            && a[0].world().resource::<DataStoreState>().busy() == 0
    });
    let (_, p) = server
        .world()
        .resource::<bloxquarium::datastore::DataStore>()
        .peek::<Aquarium>(21)
        .unwrap()
        .unwrap();
    assert_eq!(p.stats.coins, 321);

    // Rejoin, change, and shut the server down: the drain saves before exit.
    let (mut client, _) = harness::join_loaded(&mut server, &d, 21, "Gill");
    harness::edit_profile(&mut server, 21, |p| p.stats.coins = 999);
    server
        .world_mut()
        .resource_mut::<bloxquarium::shutdown::Shutdown>()
        .request(bloxquarium::shutdown::ShutdownReason::Requested(
            "test".into(),
        ));
    let mut exited = false;
    for _ in 0..300 {
        server.update();
        client.update();
        if server.should_exit().is_some() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(exited, "server exits after draining");
    let store = server
        .world()
        .resource::<bloxquarium::datastore::DataStore>()
        .0
        .clone();
    drop(server);
    let (_, p) = store.peek::<Aquarium>(21).unwrap().unwrap();
    assert_eq!(
        p.stats.coins, 999,
        "the shutdown drain saved the last change"
    );
}

#[test]
fn plugin_autosaves_on_the_configured_interval() {
    use bloxquarium::game::DataStoreState;
    let d = Scratch::new("ds-autosave");
    let cfg = harness::config_dir(&d, r#"{"datastore.autosaveInterval": 5}"#);
    let mut server = harness::server_with_config(&d, &cfg);
    let (mut client, _) = harness::join_loaded(&mut server, &d, 31, "Coral");
    harness::edit_profile(&mut server, 31, |p| p.stats.coins = 555);
    // 5 s at 1/30 s a frame, plus the spread offset (< one interval): at most ~300 frames.
    harness::pump_until(
        &mut [&mut server, &mut client],
        400,
        "auto-save lands",
        |a| {
            a[0].world()
                .resource::<bloxquarium::datastore::DataStore>()
                .peek::<Aquarium>(31)
                .ok()
                .flatten()
                .is_some_and(|(_, p)| p.stats.coins == 555)
        },
    );
    // The IO task committed; the next frames take in its result.
    harness::pump_until(
        &mut [&mut server, &mut client],
        30,
        "saved: clean again",
        |a| {
            !a[0]
                .world()
                .resource::<DataStoreState>()
                .profile(31)
                .unwrap()
                .dirty
        },
    );
    let state = server.world().resource::<DataStoreState>();
    assert!(!state.critical);
}

#[test]
fn restoring_a_version_ends_the_live_session_first() {
    use bloxquarium::datastore::{RestoreVersion, VersionRestored};
    use bloxquarium::game::DataStoreState;
    use bloxquarium::transport::ConnectionState;
    let d = Scratch::new("ds-restore-live");
    let mut server = harness::server(&d, &[]);
    {
        // History before the session: versions 1 (coins 10) and 2 (coins 20).
        let store = server
            .world()
            .resource::<bloxquarium::datastore::DataStore>()
            .0
            .clone();
        let o = owner("setup", 1);
        let mut l = store
            .load::<Aquarium>(41, &o, bloxquarium::clock::now_ms())
            .unwrap();
        l.profile.stats.coins = 10;
        let v = save(&store, &l.profile, 0, &o, bloxquarium::clock::now_ms()).unwrap();
        l.profile.stats.coins = 20;
        save(&store, &l.profile, v, &o, bloxquarium::clock::now_ms()).unwrap();
        store.release(41, &o).unwrap();
    }
    let (mut client, _) = harness::join_loaded(&mut server, &d, 41, "Reef");
    harness::edit_profile(&mut server, 41, |p| p.stats.coins = 99);
    server.world_mut().write_message(RestoreVersion {
        player: 41,
        version: 1,
    });
    let mut done = Vec::new();
    harness::pump_until(
        &mut [&mut server, &mut client],
        300,
        "restored and kicked",
        |a| {
            done.extend(harness::drain::<VersionRestored>(a[0]));
            !done.is_empty() && matches!(harness::state(a[1]), ConnectionState::Disconnected { .. })
        },
    );
    assert_eq!(done[0].result, Ok(3));
    match harness::state(&client) {
        ConnectionState::Disconnected { reason } => {
            assert!(reason.contains("restored"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let store = server
        .world()
        .resource::<bloxquarium::datastore::DataStore>()
        .0
        .clone();
    assert_eq!(
        store.peek::<Aquarium>(41).unwrap().unwrap().1.stats.coins,
        10
    );
    assert!(
        server
            .world()
            .resource::<DataStoreState>()
            .profile(41)
            .is_none()
    );
}

#[test]
fn transient_save_failures_are_retried_with_backoff_until_they_land() {
    use bloxquarium::datastore::DataStore;
    use bloxquarium::game::DataStoreState;
    let d = Scratch::new("ds-retry");
    let cfg = harness::config_dir(&d, r#"{"datastore.autosaveInterval": 5}"#);
    let mut server = harness::server_with_config(&d, &cfg);
    let (mut client, _) = harness::join_loaded(&mut server, &d, 41, "Reef");
    let saved_before = server
        .world()
        .resource::<DataStore>()
        .peek::<Aquarium>(41)
        .unwrap();
    harness::edit_profile(&mut server, 41, |p| p.stats.coins = 777);
    // The next two write transactions fail as a full disk would.
    server
        .world()
        .resource::<DataStore>()
        .backend()
        .inject_write_failures(2);
    // Auto-save (≤ 5 s + spread), then retries after ~1 s and ~2 s (±25%): ~10 s in all.
    harness::pump_until(
        &mut [&mut server, &mut client],
        600,
        "the save lands after two injected failures",
        |a| {
            a[0].world()
                .resource::<DataStore>()
                .peek::<Aquarium>(41)
                .ok()
                .flatten()
                .is_some_and(|(_, p)| p.stats.coins == 777)
        },
    );
    harness::pump_until(&mut [&mut server, &mut client], 30, "clean again", |a| {
        !a[0]
            .world()
            .resource::<DataStoreState>()
            .profile(41)
            .unwrap()
            .dirty
    });
    let state = server.world().resource::<DataStoreState>();
    // Both injected faults were hit and counted; whichever hit a save (a lock heartbeat may
    // take the first) scheduled a retry.
    assert_eq!(state.errors_total, 2);
    assert!(state.save_retries >= 1, "a failed save was retried");
    assert!(
        !state.critical,
        "two errors are below the critical threshold"
    );
    // Until the retry landed, the store kept the previous version untouched.
    assert_ne!(saved_before.map(|(_, p)| p.stats.coins), Some(777));
    // The session survived the failures.
    assert!(state.profile(41).is_some());
    assert!(matches!(
        harness::state(&client),
        bloxquarium::transport::ConnectionState::Connected
    ));
}

#[test]
fn repeated_storage_failures_enter_the_critical_state_and_it_clears() {
    use bloxquarium::datastore::DataStore;
    use bloxquarium::game::DataStoreState;
    let d = Scratch::new("ds-critical");
    let cfg = harness::config_dir(&d, r#"{"datastore.autosaveInterval": 5}"#);
    let mut server = harness::server_with_config(&d, &cfg);
    let (mut client, _) = harness::join_loaded(&mut server, &d, 43, "Kelp");
    harness::edit_profile(&mut server, 43, |p| p.stats.coins = 4321);
    server
        .world()
        .resource::<DataStore>()
        .backend()
        .inject_write_failures(6);
    // Five errors within 120 s (backoff 1, 2, 4, 8 s between attempts): critical.
    harness::pump_until(&mut [&mut server, &mut client], 2000, "critical", |a| {
        a[0].world().resource::<DataStoreState>().critical
    });
    // The save still lands once storage recovers, and 120 s after the last error the state
    // clears.
    harness::pump_until(&mut [&mut server, &mut client], 3000, "saved", |a| {
        a[0].world()
            .resource::<DataStore>()
            .peek::<Aquarium>(43)
            .ok()
            .flatten()
            .is_some_and(|(_, p)| p.stats.coins == 4321)
    });
    harness::pump_until(&mut [&mut server, &mut client], 6000, "recovered", |a| {
        !a[0].world().resource::<DataStoreState>().critical
    });
    let state = server.world().resource::<DataStoreState>();
    assert_eq!(state.errors_total, 6);
    assert!(state.save_retries >= 5);
}

/// Storage down: a player who leaves keeps their last play (the final save is kept and saved
/// again until it lands); their rejoin waits for it instead of loading an older version; at
/// `datastore.saveQueueMax` profiles waiting, new players are refused and the server says it
/// is not ready; when storage returns, everything lands by itself.
#[test]
fn storage_down_keeps_departed_players_saves_caps_the_queue_and_recovers() {
    use bloxquarium::datastore::DataStore;
    use bloxquarium::game::DataStoreState;
    use bloxquarium::integration::{HealthStatus, IntegrationRegistry};
    let d = Scratch::new("ds-queue");
    let cfg = harness::config_dir(
        &d,
        r#"{"datastore.autosaveInterval": 5, "datastore.saveQueueMax": 2}"#,
    );
    let mut server = harness::server_with_config(&d, &cfg);
    let (mut ann, _) = harness::join_loaded(&mut server, &d, 45, "Ann");
    let (mut cid, _) = harness::join_loaded(&mut server, &d, 47, "Cid");
    harness::edit_profile(&mut server, 45, |p| p.stats.coins = 5555);
    harness::edit_profile(&mut server, 47, |p| p.stats.coins = 7777);
    let store = server.world().resource::<DataStore>().clone();
    // The storage goes down.
    store.backend().inject_write_failures(1_000_000);
    let leave = |server: &mut bevy::prelude::App, client: &mut bevy::prelude::App, p: u64| {
        client
            .world_mut()
            .resource_mut::<bloxquarium::shutdown::Shutdown>()
            .request(bloxquarium::shutdown::ShutdownReason::Requested(
                "leave".into(),
            ));
        harness::pump_until(&mut [server, client], 600, "left", |a| {
            a[0].world()
                .resource::<DataStoreState>()
                .profile(p)
                .is_none()
        });
    };
    leave(&mut server, &mut ann, 45);
    harness::pump_until(&mut [&mut server], 300, "Ann's save waits", |a| {
        a[0].world().resource::<DataStoreState>().unsaved() == 1
    });
    // Ann comes back at once: her load waits for her own last save.
    let (tok, addr) = (
        harness::issue(&server, 45, "Ann"),
        harness::server_addr(&server),
    );
    let mut ann = harness::client(&d, addr, &tok);
    harness::pump(&mut [&mut server, &mut ann], 60);
    assert!(
        server
            .world()
            .resource::<DataStoreState>()
            .profile(45)
            .is_none(),
        "not loaded from the store while her newer save waits"
    );
    // Cid leaves too: two waiting, the cap. Bob is refused.
    leave(&mut server, &mut cid, 47);
    harness::pump_until(&mut [&mut server, &mut ann], 300, "two wait", |a| {
        a[0].world().resource::<DataStoreState>().unsaved() == 2
    });
    let tok = harness::issue(&server, 46, "Bob");
    let mut bob = harness::client(&d, addr, &tok);
    harness::pump_until(
        &mut [&mut server, &mut ann, &mut bob],
        600,
        "Bob refused",
        |a| a[0].world().resource::<DataStoreState>().joins_refused == 1,
    );
    harness::pump_until(&mut [&mut server, &mut ann], 300, "not ready", |a| {
        a[0].world()
            .resource::<IntegrationRegistry>()
            .last
            .as_ref()
            .is_some_and(|r| {
                matches!(&r.overall, HealthStatus::Unready(why) if why.contains("saveQueueMax"))
            })
    });
    // The storage returns: both saves land, Ann's load follows with her last play.
    store.backend().inject_write_failures(0);
    harness::pump_until(&mut [&mut server, &mut ann], 3000, "Ann loaded", |a| {
        a[0].world()
            .resource::<DataStoreState>()
            .profile(45)
            .is_some()
    });
    let state = server.world().resource::<DataStoreState>();
    assert_eq!(state.profile(45).unwrap().profile.stats.coins, 5555);
    assert_eq!(state.unsaved(), 0);
    let (_, cid_stored) = store.peek::<Aquarium>(47).unwrap().unwrap();
    assert_eq!(cid_stored.stats.coins, 7777, "Cid's last play landed");
    assert!(
        store.peek::<Aquarium>(46).unwrap().is_none(),
        "Bob never loaded"
    );
}

#[test]
fn a_store_in_the_old_layout_is_upgraded_in_place_without_losing_a_version() {
    let d = Scratch::new("ds-layout");
    let s = store(&d);
    let o = owner("srv", 1);
    let l = s.load::<Aquarium>(5, &o, T0).unwrap();
    let mut p = l.profile.clone();
    let mut v = 0;
    for coins in [10, 20, 30] {
        p.stats.coins = coins;
        v = save(&s, &p, v, &o, T0).unwrap();
    }
    // Rewrite the store as an older build left it: version rows hold saved-at ‖ blob.
    s.backend()
        .write(true, |ops: &mut dyn WriteOps| {
            for (k, index) in ops.scan(Table::Versions, &[])? {
                let row = ops.get(Table::Blobs, &index[..8])?.unwrap();
                ops.delete(Table::Blobs, &index[..8])?;
                ops.put(Table::Versions, &k, &row)?;
            }
            ops.delete(Table::Meta, b"layout")?;
            ops.delete(Table::Meta, b"next_seq")
        })
        .unwrap();
    drop(s);
    // Opening upgrades it: every version reads back.
    let s = store(&d);
    let versions = s.versions(5).unwrap();
    assert_eq!(versions.len(), 3);
    for (i, (version, at)) in versions.iter().enumerate() {
        assert_eq!(*at, T0);
        assert_eq!(
            s.read_version::<Aquarium>(5, *version).unwrap().stats.coins,
            10 * (i as i64 + 1)
        );
    }
    assert_eq!(s.peek::<Aquarium>(5).unwrap().unwrap().1.stats.coins, 30);
    // And it keeps working: a new save prunes and appends as usual.
    p.stats.coins = 40;
    let v = save(&s, &p, v, &o, T0 + 1).unwrap();
    assert_eq!(s.read_version::<Aquarium>(5, v).unwrap().stats.coins, 40);
}

/// Coins held by players 1 and 2 (their stored profiles) plus coins waiting in any inbox.
fn coins_everywhere(s: &Store) -> i64 {
    goods_everywhere(s).0
}

fn inbox_rows(s: &Store) -> usize {
    s.backend()
        .read(|ops| ops.scan(Table::Inbox, &[]))
        .unwrap()
        .len()
}

/// A gift is two transactions: the sender's save (the debit and the recipient's inbox row)
/// and the recipient's save or load (the credit and the row's deletion). A storage failure
/// injected into either, or a crash (everything in memory lost) after either, leaves the
/// coins counted exactly once: in a profile or in the inbox, never both, never neither.
fn a_gift_survives_a_failure_or_a_crash_between_any_two_steps(on: &On) {
    use bloxquarium::datastore::{Delivery, Outgoing};
    // Where it breaks: 0 the sender's save fails, 1 a crash after it, 2 the recipient's save
    // fails, 3 a crash after it, 4 nothing breaks.
    for point in 0..5 {
        let d = Scratch::new(&format!("ds-gift-fault-{point}"));
        let s = store_on(&d, on);
        let (a, b) = (owner("srv", 1), owner("srv", 2));
        let ann = s.load::<Aquarium>(1, &a, T0).unwrap().profile;
        let bob = s.load::<Aquarium>(2, &b, T0).unwrap().profile;
        let mut va = save(&s, &ann, 0, &a, T0).unwrap();
        let mut vb = save(&s, &bob, 0, &b, T0).unwrap();
        let total = coins_everywhere(&s);
        let check = |s: &Store, step: &str| {
            assert_eq!(coins_everywhere(s), total, "point {point}, {step}");
        };

        // Step 1: the sender's save carries the debit and the message.
        let mut ann = ann;
        ann.stats.coins -= 7;
        let mut req = SaveRequest::new(ann.clone(), va, a.clone());
        req.sends.push(Outgoing::new(
            2,
            9,
            OfflineGift::Coins { amount: 7, from: 1 },
        ));
        if point == 0 {
            s.backend().inject_write_failures(1);
            assert!(s.save(&req, T0 + 1).unwrap_err().is_transient());
            check(&s, "after the sender's save failed");
            assert_eq!(inbox_rows(&s), 0, "no row without the debit");
            assert_eq!(s.peek::<Aquarium>(1).unwrap().unwrap().0, va);
        }
        let sent = s.save(&req, T0 + 2).unwrap();
        va = sent.version;
        assert!(matches!(
            sent.sent[..],
            [bloxquarium::datastore::SentMessage {
                ticket: 9,
                to: 2,
                delivery: Delivery::Queued { .. }
            }]
        ));
        check(&s, "after the sender's save");
        assert_eq!(inbox_rows(&s), 1);

        let mut bob = bob;
        if point == 1 {
            // A crash: the server's memory is gone; a later server loads Bob after the stale
            // interval, and the load delivers.
            drop(bob);
            let stale = config()
                .get::<Duration>("datastore.lockStaleAfter")
                .unwrap()
                .as_millis() as u64;
            let later = owner("srv-2", 7);
            let loaded = s.load::<Aquarium>(2, &later, T0 + stale + 10).unwrap();
            assert_eq!(loaded.applied.len(), 1);
            assert_eq!(loaded.profile.stats.coins, 107);
            check(&s, "after the crash and the recipient's load");
            assert_eq!(inbox_rows(&s), 0);
            s.release(2, &later).unwrap();
            let again = s.load::<Aquarium>(2, &later, T0 + stale + 20).unwrap();
            assert!(again.applied.is_empty(), "delivered once");
            assert_eq!(again.profile.stats.coins, 107);
            continue;
        }

        // Step 2: the recipient's next save takes the message.
        bob.stats.experience += 1; // something of Bob's own in the same save
        let req = SaveRequest::new(bob.clone(), vb, b.clone());
        if point == 2 {
            s.backend().inject_write_failures(1);
            assert!(s.save(&req, T0 + 3).unwrap_err().is_transient());
            check(&s, "after the recipient's save failed");
            assert_eq!(inbox_rows(&s), 1, "the row waits");
        }
        let got = s.save(&req, T0 + 4).unwrap();
        vb = got.version;
        assert_eq!(got.delivered.len(), 1);
        let committed = got.committed.clone().unwrap();
        assert_eq!(committed.stats.coins, 107);
        assert_eq!(committed.stats.experience, 1);
        check(&s, "after the recipient's save");
        assert_eq!(inbox_rows(&s), 0);
        if point == 3 {
            // A crash after delivery: the stored profile has the coins, the inbox nothing.
            let stale = 10 * 60 * 1000;
            let later = owner("srv-2", 7);
            let loaded = s.load::<Aquarium>(2, &later, T0 + stale).unwrap();
            assert!(loaded.applied.is_empty());
            assert_eq!(loaded.profile.stats.coins, 107);
            check(&s, "after a crash after delivery");
            continue;
        }
        // The next save of the (updated) profile delivers nothing again.
        let again = s
            .save(&SaveRequest::new(committed, vb, b.clone()), T0 + 5)
            .unwrap();
        assert!(again.delivered.is_empty());
        assert_eq!(s.peek::<Aquarium>(2).unwrap().unwrap().1.stats.coins, 107);
        assert_eq!(s.peek::<Aquarium>(1).unwrap().unwrap().1.stats.coins, 93);
        assert_eq!(va, 2);
        check(&s, "at the end");
    }
}

/// A refused save sends nothing: the sender's lock was taken over, so neither the debit nor
/// the message is written. A message to a player the store does not know comes back to the
/// sender in the same transaction.
fn a_refused_save_sends_nothing_and_a_gift_to_nobody_comes_back(on: &On) {
    use bloxquarium::datastore::{Delivery, Outgoing};
    let d = Scratch::new("ds-gift-refused");
    let s = store_on(&d, on);
    let a = owner("srv", 1);
    let ann = s.load::<Aquarium>(1, &a, T0).unwrap().profile;
    let v = save(&s, &ann, 0, &a, T0).unwrap();
    let total = coins_everywhere(&s);
    let mut poorer = ann.clone();
    poorer.stats.coins -= 5;
    let mut req = SaveRequest::new(poorer, v, a.clone());
    req.sends.push(Outgoing::new(
        2,
        1,
        OfflineGift::Coins { amount: 5, from: 1 },
    ));
    // Another server took the lock over.
    let thief = owner("srv-b", 2);
    s.load::<Aquarium>(1, &thief, T0 + 10 * 60 * 1000).unwrap();
    assert!(matches!(
        s.save(&req, T0 + 10 * 60 * 1000 + 1),
        Err(StoreError::LockLost { .. })
    ));
    assert_eq!(inbox_rows(&s), 0);
    assert_eq!(coins_everywhere(&s), total);
    s.release(1, &thief).unwrap();

    // Player 77 never played: the gift returns to Ann's own inbox.
    let l = s.load::<Aquarium>(1, &a, T0 + 10 * 60 * 1000 + 2).unwrap();
    let mut poorer = l.profile.clone();
    poorer.stats.coins -= 5;
    let mut req = SaveRequest::new(poorer, l.version, a.clone());
    req.sends.push(Outgoing::new(
        77,
        2,
        OfflineGift::Coins { amount: 5, from: 1 },
    ));
    let saved = s.save(&req, T0 + 10 * 60 * 1000 + 3).unwrap();
    assert!(matches!(saved.sent[0].delivery, Delivery::Returned { .. }));
    assert_eq!(coins_everywhere(&s), total);
    let back = s
        .save(
            &SaveRequest::new(req.profile.clone(), saved.version, a.clone()),
            T0 + 10 * 60 * 1000 + 4,
        )
        .unwrap();
    assert_eq!(back.committed.unwrap().stats.coins, total);
    assert_eq!(inbox_rows(&s), 0);
}

/// Coins and fish held by players 1 and 2 plus what waits for them in the inbox.
fn goods_everywhere(s: &Store) -> (i64, usize) {
    let mut coins = 0;
    let mut fish = 0;
    for p in [1u64, 2] {
        if let Some((_, p)) = s.peek::<Aquarium>(p).unwrap() {
            coins += p.stats.coins;
            fish += p.fish.len();
        }
    }
    for (_, v) in s.backend().read(|ops| ops.scan(Table::Inbox, &[])).unwrap() {
        match serde_json::from_slice::<OfflineGift>(&v).unwrap() {
            OfflineGift::Parcel { parcel, .. } => {
                coins += parcel.coins;
                fish += parcel.fish.len();
            }
            OfflineGift::Coins { amount, .. } => coins += amount,
            OfflineGift::Item { .. } => {}
        }
    }
    (coins, fish)
}

/// Ann (player 1, owner `a`, with her fish Nemo) and Bob (player 2, owner `b`) loaded and saved
/// once; then Ann's fish and 30 of Bob's coins taken out of copies of them, as a trade of one
/// for the other does: ([Ann, Bob] as saved, their versions, [Ann, Bob] after, [Ann's, Bob's]
/// parcel).
type NemoFor30 = (
    [Profile; 2],
    [u64; 2],
    [Profile; 2],
    [bloxquarium::game::rules::Parcel; 2],
);

fn nemo_for_30_coins(s: &Store, a: &LockOwner, b: &LockOwner) -> NemoFor30 {
    use bloxquarium::game::protocol::TradeGoods;
    use bloxquarium::game::rules::take_goods;
    let mut ann = s.load::<Aquarium>(1, a, T0).unwrap().profile;
    ann.fish.push(bloxquarium::game::Fish {
        id: 1,
        species: 1,
        name: "Nemo".into(),
        hunger: 0.0,
        from_trade: None,
    });
    let bob = s.load::<Aquarium>(2, b, T0).unwrap().profile;
    let va = save(s, &ann, 0, a, T0).unwrap();
    let vb = save(s, &bob, 0, b, T0).unwrap();
    let (mut ann2, mut bob2) = (ann.clone(), bob.clone());
    let fish = TradeGoods {
        fish: vec![1],
        ..Default::default()
    };
    let coins = TradeGoods {
        coins: 30,
        ..Default::default()
    };
    let pa = take_goods(&mut ann2, &fish, "Ann").unwrap();
    let pb = take_goods(&mut bob2, &coins, "Bob").unwrap();
    ([ann, bob], [va, vb], [ann2, bob2], [pa, pb])
}

/// A trade is three transactions: both sides' debits and parcels saved together, then each
/// side's next save or load taking the other's parcel. A storage failure injected into any of
/// them, a refusal of one side (its lock taken over), or a crash after any of them leaves every
/// coin and fish counted exactly once.
fn a_trade_survives_a_failure_or_a_crash_between_any_two_steps(on: &On) {
    use bloxquarium::datastore::Outgoing;
    // 0 the joint save fails, 1 one side is refused, 2 a crash after it, 3 Ann's delivery
    // fails, 4 a crash after Ann's delivery, 5 nothing breaks.
    for point in 0..6 {
        let d = Scratch::new(&format!("ds-trade-fault-{point}"));
        let s = store_on(&d, on);
        let (a, b) = (owner("srv", 1), owner("srv", 2));
        let ([ann, _], [va, vb], [ann2, bob2], [pa, pb]) = nemo_for_30_coins(&s, &a, &b);
        let total = goods_everywhere(&s);
        let check = |s: &Store, step: &str| {
            assert_eq!(goods_everywhere(s), total, "point {point}, {step}");
        };
        // Ann gives her fish for 30 of Bob's coins.
        let parcel = |from, parcel| OfflineGift::Parcel {
            from,
            trade: 5,
            parcel,
        };
        let mut ra = SaveRequest::new(ann2.clone(), va, a.clone());
        ra.sends.push(Outgoing::new(2, 1, parcel(1, pa)));
        let mut rb = SaveRequest::new(bob2.clone(), vb, b.clone());
        rb.sends.push(Outgoing::new(1, 2, parcel(2, pb)));
        if point == 0 {
            s.backend().inject_write_failures(1);
            let r = s.save_together(&[ra.clone(), rb.clone()], T0 + 1);
            assert!(
                r.iter()
                    .all(|r| r.as_ref().is_err_and(|e| e.is_transient()))
            );
            check(&s, "after the joint save failed");
            assert_eq!(inbox_rows(&s), 0);
        }
        if point == 1 {
            // Bob's lock was taken over: neither side is written.
            let thief = owner("srv-b", 9);
            s.load::<Aquarium>(2, &thief, T0 + 10 * 60 * 1000).unwrap();
            let r = s.save_together(&[ra.clone(), rb.clone()], T0 + 10 * 60 * 1000 + 1);
            assert!(r.iter().all(Result::is_err), "{r:?}");
            check(&s, "after one side was refused");
            assert_eq!(inbox_rows(&s), 0);
            assert_eq!(
                s.peek::<Aquarium>(1).unwrap().unwrap().0,
                va,
                "Ann not written"
            );
            continue;
        }
        let r = s.save_together(&[ra, rb], T0 + 2);
        let (va, vb) = (
            r[0].as_ref().unwrap().version,
            r[1].as_ref().unwrap().version,
        );
        check(&s, "after the joint save");
        // Bob's save came second in the transaction: it already took Ann's parcel.
        let bob_saved = r[1].as_ref().unwrap();
        assert_eq!(bob_saved.delivered.len(), 1);
        let bob3 = bob_saved.committed.clone().unwrap();
        assert_eq!(bob3.fish.len(), 1);
        assert_eq!(bob3.fish[0].name, "Nemo");
        assert_eq!(bob3.fish[0].from_trade, Some(5));
        assert_eq!(inbox_rows(&s), 1);
        if point == 2 {
            // A crash: both load later; Ann takes Bob's parcel, Bob has Ann's already.
            let later = owner("srv-2", 7);
            for (p, applied) in [(1, 1), (2, 0)] {
                let l = s.load::<Aquarium>(p, &later, T0 + 10 * 60 * 1000).unwrap();
                assert_eq!(l.applied.len(), applied);
                check(&s, "after a crash and a load");
            }
            assert_eq!(inbox_rows(&s), 0);
            continue;
        }
        // Ann's next save takes Bob's coins.
        let req = SaveRequest::new(ann2.clone(), va, a.clone());
        if point == 3 {
            s.backend().inject_write_failures(1);
            assert!(s.save(&req, T0 + 3).unwrap_err().is_transient());
            check(&s, "after Ann's delivery failed");
            assert_eq!(inbox_rows(&s), 1);
        }
        let got = s.save(&req, T0 + 4).unwrap();
        assert_eq!(got.committed.unwrap().stats.coins, ann.stats.coins + 30);
        check(&s, "after Ann's delivery");
        if point == 4 {
            let later = owner("srv-2", 7);
            let l = s.load::<Aquarium>(2, &later, T0 + 10 * 60 * 1000).unwrap();
            assert_eq!(l.profile.fish.len(), 1);
            check(&s, "after a crash and Bob's load");
            continue;
        }
        let got = s
            .save(&SaveRequest::new(bob3.clone(), vb, b.clone()), T0 + 5)
            .unwrap();
        assert!(got.delivered.is_empty(), "taken once");
        assert_eq!(s.peek::<Aquarium>(2).unwrap().unwrap().1.fish.len(), 1);
        check(&s, "at the end");
        assert_eq!(inbox_rows(&s), 0);
    }
}

/// The most play a crash can lose: one auto-save interval of a player's own changes (plus a
/// save in flight). A player's coins rise every frame; the server then dies without a word
/// (dropped: no shutdown, no final save); the next server finds coins at most one interval
/// behind.
#[test]
fn a_crash_loses_at_most_one_autosave_interval_of_play() {
    use bloxquarium::game::DataStoreState;
    let d = Scratch::new("ds-crash-bound");
    let cfg = harness::config_dir(&d, r#"{"datastore.autosaveInterval": 5}"#);
    let mut server = harness::server_with_config(&d, &cfg);
    let (mut client, _) = harness::join_loaded(&mut server, &d, 33, "Shoal");
    // 30 frames a second (the harness's fixed frame); 5 s is 150 frames.
    const FRAMES: i64 = 700;
    const INTERVAL_FRAMES: i64 = 150;
    for f in 1..=FRAMES {
        harness::edit_profile(&mut server, 33, |p| p.stats.coins = 1000 + f);
        harness::pump(&mut [&mut server, &mut client], 1);
    }
    let saves = server.world().resource::<DataStoreState>().errors_total;
    assert_eq!(saves, 0, "no storage errors");
    let store = server
        .world()
        .resource::<bloxquarium::datastore::DataStore>()
        .0
        .clone();
    // The crash: no OnShutdown, no drain.
    drop(client);
    drop(server);
    let (_, p) = store.peek::<Aquarium>(33).unwrap().unwrap();
    let lost = 1000 + FRAMES - p.stats.coins;
    eprintln!("a crash lost {lost} frames of play (one auto-save interval is {INTERVAL_FRAMES})");
    assert!(lost >= 0, "{lost}");
    assert!(
        lost <= INTERVAL_FRAMES + 10,
        "lost {lost} frames of play, more than one auto-save interval ({INTERVAL_FRAMES})"
    );
    assert!(
        store.versions(33).unwrap().len() >= 3,
        "auto-saves ran along the way"
    );
}

/// Coins and fish in `goods_everywhere` plus what is held in escrow for trades.
fn goods_with_escrow(s: &Store) -> (i64, usize) {
    let (mut coins, mut fish) = goods_everywhere(s);
    for (_, v) in s
        .backend()
        .read(|ops| ops.scan(Table::Meta, b"escrow/"))
        .unwrap()
    {
        if let OfflineGift::Parcel { parcel, .. } = serde_json::from_slice(&v[16..]).unwrap() {
            coins += parcel.coins;
            fish += parcel.fish.len();
        }
    }
    (coins, fish)
}

/// A trade between players on two servers: each side's debit and its goods, held in escrow,
/// commit with that side's own save; one settlement then moves both to the other side's inbox,
/// or, called off, gives back whatever is held. A failure between any two steps, a side that
/// comes after the trade was called off, and settling twice leave every coin and fish counted
/// exactly once.
fn a_trade_across_servers_is_settled_once_all_or_nothing(on: &On) {
    use bloxquarium::datastore::{Delivery, Outgoing, Settlement};
    let escrow_rows = |s: &Store| {
        s.backend()
            .read(|ops| ops.scan(Table::Meta, b"escrow/"))
            .unwrap()
            .len()
    };
    // 0 Bob's side fails and the trade is called off (Bob's side comes later: straight back);
    // 1 the settlement fails once, then goes through; 2 both held, then called off.
    for point in 0..3 {
        let d = Scratch::new(&format!("ds-trade-across-{point}"));
        let s = store_on(&d, on);
        // Ann plays on one server, Bob on another.
        let (a, b) = (owner("srv-a", 1), owner("srv-b", 2));
        let ([ann, bob], [va, vb], [ann2, bob2], [pa, pb]) = nemo_for_30_coins(&s, &a, &b);
        let total = goods_with_escrow(&s);
        let check = |s: &Store, step: &str| {
            assert_eq!(goods_with_escrow(s), total, "point {point}, {step}");
        };
        let trade = 70 + point;
        let held = |to, from, parcel| {
            let mut o = Outgoing::new(
                to,
                from,
                OfflineGift::Parcel {
                    from,
                    trade,
                    parcel,
                },
            );
            o.hold = Some(trade);
            o
        };
        let mut ra = SaveRequest::new(ann2.clone(), va, a.clone());
        ra.sends.push(held(2, 1, pa));
        let mut rb = SaveRequest::new(bob2.clone(), vb, b.clone());
        rb.sends.push(held(1, 2, pb));

        // Ann's side: her debit and her goods in escrow, in her own save.
        let sa = s.save(&ra, T0 + 1).unwrap();
        assert_eq!(sa.sent[0].delivery, Delivery::Held { trade });
        assert_eq!(s.trade_decision(trade).unwrap(), None);
        check(&s, "Ann's side held");
        assert_eq!((escrow_rows(&s), inbox_rows(&s)), (1, 0));
        assert_eq!(
            s.settle_trade(trade, &[1, 2], false).unwrap().0,
            Settlement::Pending,
            "one side is not enough"
        );
        assert_eq!(escrow_rows(&s), 1);
        // A store-wide job finds the side held since before T0 + 2, not before T0 + 1.
        assert_eq!(s.stale_escrows(T0 + 2).unwrap(), vec![(trade, vec![1])]);
        assert!(s.stale_escrows(T0 + 1).unwrap().is_empty());

        if point == 0 {
            s.backend().inject_write_failures(1);
            assert!(s.save(&rb, T0 + 2).unwrap_err().is_transient());
            check(&s, "Bob's side failed");
            let (outcome, told) = s.settle_trade(trade, &[1, 2], true).unwrap();
            assert_eq!((outcome, told), (Settlement::Void, vec![1]));
            assert_eq!(s.trade_decision(trade).unwrap(), Some(Settlement::Void));
            check(&s, "called off");
            assert_eq!((escrow_rows(&s), inbox_rows(&s)), (0, 1));
            // Bob's side, saved again after the trade was called off, goes back to him.
            let sb = s.save(&rb, T0 + 3).unwrap();
            assert!(matches!(sb.sent[0].delivery, Delivery::Returned { .. }));
            check(&s, "Bob's late side");
            assert_eq!(escrow_rows(&s), 0);
            let later = owner("srv-c", 3);
            for (p, coins, fish) in [(1, ann.stats.coins, 1), (2, bob.stats.coins, 0)] {
                let l = s.load::<Aquarium>(p, &later, T0 + 10 * 60 * 1000).unwrap();
                assert_eq!((l.profile.stats.coins, l.profile.fish.len()), (coins, fish));
            }
            check(&s, "both loaded");
            assert_eq!(inbox_rows(&s), 0);
            continue;
        }
        let sb = s.save(&rb, T0 + 2).unwrap();
        assert_eq!(sb.sent[0].delivery, Delivery::Held { trade });
        check(&s, "both sides held");
        assert_eq!((escrow_rows(&s), inbox_rows(&s)), (2, 0));
        if point == 2 {
            // Called off naming one side only (as the store-wide job does for a stale side):
            // everything held of the trade goes back.
            let (outcome, mut told) = s.settle_trade(trade, &[1], true).unwrap();
            told.sort();
            assert_eq!((outcome, told), (Settlement::Void, vec![1, 2]));
            check(&s, "called off");
            assert_eq!(
                s.settle_trade(trade, &[1, 2], false).unwrap(),
                (Settlement::Void, vec![]),
                "decided once"
            );
        } else {
            s.backend().inject_write_failures(1);
            assert!(s.settle_trade(trade, &[1, 2], false).is_err());
            check(&s, "the settlement failed");
            assert_eq!((escrow_rows(&s), inbox_rows(&s)), (2, 0));
            let (outcome, mut told) = s.settle_trade(trade, &[1, 2], false).unwrap();
            told.sort();
            assert_eq!((outcome, told), (Settlement::Done, vec![1, 2]));
            assert_eq!(s.trade_decision(trade).unwrap(), Some(Settlement::Done));
            check(&s, "settled");
            assert_eq!(
                s.settle_trade(trade, &[1, 2], true).unwrap(),
                (Settlement::Done, vec![]),
                "a done trade is not called off"
            );
        }
        assert_eq!((escrow_rows(&s), inbox_rows(&s)), (0, 2));
        assert!(s.stale_escrows(u64::MAX).unwrap().is_empty());
        // Each side's next save takes what came.
        let got_a = s
            .save(
                &SaveRequest::new(ann2.clone(), sa.version, a.clone()),
                T0 + 5,
            )
            .unwrap()
            .committed
            .unwrap();
        let got_b = s
            .save(
                &SaveRequest::new(bob2.clone(), sb.version, b.clone()),
                T0 + 5,
            )
            .unwrap()
            .committed
            .unwrap();
        check(&s, "delivered");
        assert_eq!(inbox_rows(&s), 0);
        let (ann_coins, bob_coins, bob_fish) = if point == 2 {
            (ann.stats.coins, bob.stats.coins, 0)
        } else {
            (ann.stats.coins + 30, bob.stats.coins - 30, 1)
        };
        assert_eq!(got_a.stats.coins, ann_coins);
        assert_eq!(got_a.fish.len(), 1 - bob_fish);
        assert_eq!((got_b.stats.coins, got_b.fish.len()), (bob_coins, bob_fish));
    }
}

/// Each save writes its player's (player, name, score) row in the same transaction; the board
/// ranks every stored player; a refused save changes nothing; a gift moves both rows; an
/// erasure removes the row; a backup carries the rows.
fn the_leaderboard_is_written_with_each_save_and_ranks_every_player(on: &On) {
    use bloxquarium::datastore::{RankRow, RedbBackend};
    let d = Scratch::new("ds-ranks");
    let s = store_on(&d, on);
    let row = |player: u64, name: &str, score: i64| RankRow {
        player,
        name: name.into(),
        score,
    };
    let mut owners = Vec::new();
    for player in 1..=5u64 {
        let o = owner("srv", u128::from(player));
        let mut l = s.load::<Aquarium>(player, &o, T0).unwrap();
        l.profile.stats.coins = player as i64 * 100;
        let mut req = SaveRequest::new(l.profile, 0, o.clone());
        req.name = Some(format!("P{player}"));
        s.save(&req, T0).unwrap();
        owners.push(o);
    }
    let (top, ranks) = s.standings(3, &[(1, 100), (1, 350), (1, 600)]).unwrap();
    assert_eq!(
        top,
        vec![row(5, "P5", 500), row(4, "P4", 400), row(3, "P3", 300)]
    );
    // Player 1's own row (100) never counts against it.
    assert_eq!(ranks, vec![(1, 5), (1, 3), (1, 1)]);

    // A save without a name keeps the name; a refused save (stale version) writes nothing.
    let (v, mut p2) = s.peek::<Aquarium>(2).unwrap().unwrap();
    p2.stats.coins = 450;
    s.save(&SaveRequest::new(p2.clone(), v, owners[1].clone()), T0)
        .unwrap();
    p2.stats.coins = 9999;
    let refused = s.save(&SaveRequest::new(p2, v, owners[1].clone()), T0);
    assert!(
        matches!(refused, Err(StoreError::VersionConflict { .. })),
        "{refused:?}"
    );
    let (top, _) = s.standings(2, &[]).unwrap();
    assert_eq!(top, vec![row(5, "P5", 500), row(2, "P2", 450)]);

    // A gift of 200 from 5 to 1 moves both rows in its transaction.
    s.transact::<Aquarium>(&[5, 1], "srv", T0, |ps| {
        ps.get_mut(&5).ok_or("no 5")?.stats.coins -= 200;
        ps.get_mut(&1).ok_or("no 1")?.stats.coins += 200;
        Ok(())
    })
    .unwrap();
    let (top, ranks) = s.standings(5, &[(3, 300)]).unwrap();
    assert_eq!(
        top,
        vec![
            row(2, "P2", 450),
            row(4, "P4", 400),
            row(1, "P1", 300),
            row(3, "P3", 300),
            row(5, "P5", 300),
        ],
        "ties: the lower player id first"
    );
    assert_eq!(ranks, vec![(3, 3)], "ties share a rank");

    // A look at a player who is not here: the saved profile and the row.
    let (p, r) = s.peek_named::<Aquarium>(4).unwrap().unwrap();
    assert_eq!((p.stats.coins, r), (400, Some(row(4, "P4", 400))));
    assert!(s.peek_named::<Aquarium>(99).unwrap().is_none());

    // A backup carries the rows.
    let copy = d.0.join("ranks-backup.redb");
    s.backend().backup_to(&copy).unwrap();
    let backed = RedbBackend::open_existing(&copy)
        .unwrap()
        .read(|ops| ops.top_ranks(10))
        .unwrap();
    assert_eq!(backed.len(), 5);
    assert_eq!(backed[0], row(2, "P2", 450));

    // An erasure removes the row.
    s.release(2, &owners[1]).unwrap();
    s.erase_player(2, "test", T0).unwrap();
    let (top, _) = s.standings(10, &[]).unwrap();
    assert_eq!(top.len(), 4);
    assert!(top.iter().all(|r| r.player != 2), "{top:?}");
}

/// The store-wide jobs: every player's versions past `datastore.versionsMaxAge` go (the newest
/// stays), also for a player who no longer saves; audit records in the store past retention go.
fn the_store_wide_jobs_prune_old_versions_and_audit_records(on: &On) {
    use bloxquarium::security::{AuditKind, AuditQuery, AuditRecord};
    let d = Scratch::new("ds-jobs");
    let s = store_on(&d, on);
    let o = owner("srv", 1);
    let day = 24 * 3600 * 1000;
    for player in [1u64, 2] {
        let l = s.load::<Aquarium>(player, &o, T0).unwrap();
        let mut v = 0;
        for i in 0..4 {
            v = save(&s, &l.profile, v, &o, T0 + i).unwrap();
        }
        s.release(player, &o).unwrap();
    }
    // Player 2 saves again 40 days later; player 1 never comes back.
    let l = s.load::<Aquarium>(2, &o, T0 + 40 * day).unwrap();
    save(&s, &l.profile, 4, &o, T0 + 40 * day).unwrap();
    assert_eq!(s.versions(1).unwrap().len(), 4);
    // 31 days after player 1's last save (versionsMaxAge is 30 days).
    let pruned = s.prune_versions(T0 + 41 * day).unwrap();
    assert_eq!(
        pruned,
        3 + 4,
        "player 1 keeps its newest; player 2 its save of day 40"
    );
    assert_eq!(
        s.versions(1)
            .unwrap()
            .iter()
            .map(|v| v.0)
            .collect::<Vec<_>>(),
        vec![4]
    );
    assert_eq!(
        s.versions(2)
            .unwrap()
            .iter()
            .map(|v| v.0)
            .collect::<Vec<_>>(),
        vec![5]
    );
    assert_eq!(
        s.peek::<Aquarium>(1).unwrap().unwrap().0,
        4,
        "the current version stays"
    );
    assert_eq!(s.prune_versions(T0 + 41 * day).unwrap(), 0);

    let rec = |at_ms: u64, player: u64| AuditRecord {
        at_ms,
        player: Some(player),
        session: None,
        kind: AuditKind::AdminAction,
        details: format!("at {at_ms}"),
    };
    s.append_audit(&[rec(1000, 7), rec(2000, 8), rec(3000, 7)])
        .unwrap();
    let all = AuditQuery::default();
    assert_eq!(s.audit_records(&all).unwrap().len(), 3);
    let sevens = AuditQuery {
        player: Some(7),
        ..Default::default()
    };
    assert_eq!(s.audit_records(&sevens).unwrap().len(), 2);
    assert_eq!(s.expire_audit(2500).unwrap(), 2);
    assert_eq!(s.audit_records(&all).unwrap(), vec![rec(3000, 7)]);
}
