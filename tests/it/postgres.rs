//! The tests of the PostgreSQL backend itself, and of servers sharing one database (the data
//! store's conformance suite runs on it from `datastore.rs`). Each test takes its own database
//! of the process's throwaway cluster (`pg_cluster.rs`); without PostgreSQL installed they say
//! they are skipped and pass, unless `BLOXQUARIUM_REQUIRE_POSTGRES=1`.

pub use crate::pg_cluster::{Cluster, cluster, private_cluster};

mod backend {
    use std::sync::Arc;

    use bloxquarium::datastore::{
        Backend, BackendError, PostgresBackend, StoreBackend, Table, schema_version,
    };

    use super::cluster;

    #[test]
    fn migrations_apply_once_and_a_newer_incompatible_schema_is_refused() {
        let Some(c) = cluster() else { return };
        let url = c.fresh("migrate");
        let first = PostgresBackend::connect(&url).unwrap();
        // A second server on the same database applies nothing again.
        let second = PostgresBackend::connect(&url).unwrap();
        drop((first, second));
        let mut admin = c.admin(url.rsplit('/').next().unwrap());
        let n: i64 = admin
            .query_one("SELECT count(*) FROM bq_schema", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, i64::from(schema_version()));

        // A newer release added an expanding migration: this build still runs beside it.
        let next = schema_version() + 1;
        admin
            .execute(
                "INSERT INTO bq_schema (version, name, oldest_reader) VALUES ($1, 'a new column', $2)",
                &[&next, &schema_version()],
            )
            .unwrap();
        PostgresBackend::connect(&url).expect("expand-only: still compatible");

        // Then a contracting one: this build is refused, in one line that says what to do.
        admin
            .execute(
                "INSERT INTO bq_schema (version, name, oldest_reader) VALUES ($1, 'drop a column', $1)",
                &[&(next + 1)],
            )
            .unwrap();
        let e = PostgresBackend::connect(&url).err().expect("refused").0;
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.contains(&format!("needs a release that knows version {}", next + 1)),
            "{e}"
        );
        assert!(
            e.contains(&format!("this build knows up to {}", schema_version())),
            "{e}"
        );
        assert!(!e.contains("password"), "{e}");
    }

    #[test]
    fn a_password_in_the_store_url_is_refused_and_never_echoed() {
        let Some(c) = cluster() else { return };
        let url = format!("postgres://bq:s3cret@127.0.0.1:{}/postgres", c.port);
        let e = PostgresBackend::connect(&url).err().expect("refused").0;
        assert!(e.contains("PGPASSWORD or a PGPASSFILE"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        // And the binary says so in one line before doing anything else.
        let mut cmd = crate::harness::bin();
        let data = crate::harness::Scratch::new("pg-url-password");
        cmd.args([
            "--data",
            data.path(),
            "--store",
            &url,
            "datastore",
            "list-backups",
        ]);
        let out = crate::harness::output_within(cmd, std::time::Duration::from_secs(60));
        let text = crate::harness::text(&out);
        assert!(!out.status.success(), "{text}");
        assert!(text.contains("PGPASSWORD"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn an_unreachable_database_is_named_in_the_error() {
        // Nothing listens on port 1.
        let e = PostgresBackend::connect("postgres://bq@127.0.0.1:1/game")
            .err()
            .expect("refused")
            .0;
        assert!(e.contains("postgres://bq@127.0.0.1:1/game"), "{e}");
    }

    /// Leases are timed by the database's clock: a server whose own clock runs two hours
    /// ahead cannot take a lock another server just took (by its own clock the lock looks
    /// stale; by the database's it is fresh). The same load timed by that server's clock would
    /// have taken it, with a higher fencing token, and the first server's save is then fenced
    /// off.
    #[test]
    fn leases_follow_the_databases_clock_not_a_servers() {
        use bloxquarium::datastore::{LockOwner, SaveRequest, StoreError, open_on};
        use bloxquarium::game::Aquarium;
        let Some(c) = cluster() else { return };
        let url = c.fresh("lease_clock");
        let keys = crate::harness::Scratch::new("pg-lease-keys");
        let config = bloxquarium::config::load_server(
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
            &bloxquarium::game::KEYS,
        )
        .unwrap();
        let open = || {
            let backend = StoreBackend::Postgres(Box::new(PostgresBackend::connect(&url).unwrap()));
            open_on::<Aquarium>(backend, &keys.0, &config).unwrap()
        };
        let (a_store, b_store) = (open(), open());
        let a = LockOwner {
            server_id: "server-a".into(),
            session: 1,
        };
        let b = LockOwner {
            server_id: "server-b".into(),
            session: 2,
        };
        let now = bloxquarium::clock::now_ms();
        let two_hours = 2 * 3600 * 1000;
        let held = a_store.load::<Aquarium>(5, &a, now).unwrap();
        assert_eq!(held.token, 1);
        match b_store.load::<Aquarium>(5, &b, now + two_hours) {
            Err(StoreError::Locked { holder, age_ms, .. }) => {
                assert_eq!(holder, "server-a");
                assert!(age_ms < 60_000, "aged by the database's clock: {age_ms} ms");
            }
            other => panic!("a skewed clock took a fresh lock: {other:?}"),
        }
        // Timed by the skewed server's own clock, the same load takes the lock.
        let mut skewed = open();
        skewed.use_caller_clock();
        let taken = skewed.load::<Aquarium>(5, &b, now + two_hours).unwrap();
        assert_eq!(taken.token, 2, "a takeover raises the fencing token");
        let refused = a_store.save(&SaveRequest::new(held.profile, 0, a.clone()), now);
        assert!(
            matches!(refused, Err(StoreError::LockLost { .. })),
            "{refused:?}"
        );
    }

    /// Two connections (two servers) race to take one row in many transactions at once: every
    /// increment lands exactly once, because a serialization failure runs the transaction again.
    #[test]
    fn racing_writers_are_serialized_and_retried_not_lost() {
        let Some(c) = cluster() else { return };
        let url = c.fresh("race");
        let a = Arc::new(StoreBackend::Postgres(Box::new(
            PostgresBackend::connect(&url).unwrap(),
        )));
        let b = Arc::new(StoreBackend::Postgres(Box::new(
            PostgresBackend::connect(&url).unwrap(),
        )));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let backend = if i % 2 == 0 { a.clone() } else { b.clone() };
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        backend
                            .write(true, |ops| {
                                let n = ops
                                    .get(Table::Meta, b"counter")?
                                    .map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()));
                                ops.put(Table::Meta, b"counter", &(n + 1).to_be_bytes())?;
                                Ok::<_, BackendError>(())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = a
            .read(|ops| ops.get(Table::Meta, b"counter"))
            .unwrap()
            .unwrap();
        assert_eq!(u64::from_be_bytes(n.try_into().unwrap()), 200);
    }

    /// The database restarts under a server: the pooled connections are dead, and the next
    /// transaction opens a new one instead of failing.
    #[test]
    fn a_database_restart_costs_no_transaction() {
        let Some(c) = super::private_cluster("restart") else {
            return;
        };
        let url = c.database("game");
        let db = PostgresBackend::connect(&url).unwrap();
        let put = |n: u8| {
            db.write(true, |ops| ops.put(Table::Meta, b"n", &[n]))
                .map_err(|e: BackendError| e.0)
        };
        put(1).unwrap();
        c.restart();
        put(2).expect("the next write after the restart");
        let got = db.read(|ops| ops.get(Table::Meta, b"n")).unwrap();
        assert_eq!(got, Some(vec![2]));
    }

    /// `?sslmode=require`: TLS to the database, verified against PGSSLROOTCERT. The cluster
    /// refuses TCP without TLS, so a connection that works is an encrypted one.
    #[test]
    fn tls_to_the_database_is_verified_against_pgsslrootcert() {
        let Some(c) = super::private_cluster("tls") else {
            return;
        };
        let plain = c.database("game");
        let made = |name: &str| {
            let pair = rcgen::KeyPair::generate().unwrap();
            let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
            (
                params.self_signed(&pair).unwrap().pem(),
                pair.serialize_pem(),
            )
        };
        let (cert, key) = made("127.0.0.1");
        let (other, _) = made("127.0.0.1");
        c.require_tls(&cert, &key);
        let files = crate::harness::Scratch::new("pg-tls");
        std::fs::write(files.0.join("root.crt"), &cert).unwrap();
        std::fs::write(files.0.join("other.crt"), &other).unwrap();
        let servers = |url: &str, root: Option<&str>| {
            let mut cmd = crate::harness::bin();
            cmd.args(["--store", url, "servers"]);
            match root {
                Some(r) => cmd.env("PGSSLROOTCERT", files.0.join(r)),
                None => cmd.env_remove("PGSSLROOTCERT"),
            };
            let out = crate::harness::output_within(cmd, std::time::Duration::from_secs(60));
            (out.status.success(), crate::harness::text(&out))
        };
        let tls = format!("{plain}?sslmode=require");
        let (ok, text) = servers(&tls, Some("root.crt"));
        assert!(ok, "{text}");
        assert!(text.contains("no servers on"), "{text}");
        let (ok, text) = servers(&tls, None);
        assert!(!ok && text.contains("PGSSLROOTCERT"), "{text}");
        let (ok, text) = servers(&tls, Some("other.crt"));
        assert!(
            !ok && text.to_lowercase().contains("certificate"),
            "a certificate from another authority is refused: {text}"
        );
        let (ok, text) = servers(&plain, Some("root.crt"));
        assert!(
            !ok && text.contains("no encryption"),
            "the cluster takes no plain TCP: {text}"
        );
    }

    #[test]
    fn prefix_scans_keep_byte_order_across_the_ff_boundary() {
        let Some(c) = cluster() else { return };
        let url = c.fresh("scan");
        let db = PostgresBackend::connect(&url).unwrap();
        let keys: [&[u8]; 6] = [
            &[1, 0xFF],
            &[1, 0xFF, 0],
            &[2],
            &[1],
            &[1, 0],
            &[0xFF, 0xFF],
        ];
        db.write(true, |ops| {
            for k in keys {
                ops.put(Table::Inbox, k, b"v")?;
            }
            Ok::<_, BackendError>(())
        })
        .unwrap();
        let scan = |p: &[u8]| -> Vec<Vec<u8>> {
            db.read(|ops| ops.scan(Table::Inbox, p))
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(
            scan(&[1]),
            vec![vec![1], vec![1, 0], vec![1, 0xFF], vec![1, 0xFF, 0]]
        );
        assert_eq!(scan(&[1, 0xFF]), vec![vec![1, 0xFF], vec![1, 0xFF, 0]]);
        assert_eq!(scan(&[0xFF]), vec![vec![0xFF, 0xFF]]);
        assert_eq!(scan(&[]).len(), 6);
    }
}

mod servers {
    use bloxquarium::datastore::DataStore;
    use bloxquarium::game::{Aquarium, DataStoreState};

    use crate::harness::{self, Scratch};

    fn server_on(data: &Scratch, keys: &Scratch, url: &str) -> bevy::prelude::App {
        harness::app(&[
            "--data",
            data.path(),
            "--keys",
            keys.path(),
            "--store",
            url,
            "server",
            "--bind",
            "127.0.0.1:0",
        ])
    }

    fn leave(server: &mut bevy::prelude::App, client: &mut bevy::prelude::App, player: u64) {
        client
            .world_mut()
            .resource_mut::<bloxquarium::shutdown::Shutdown>()
            .request(bloxquarium::shutdown::ShutdownReason::Requested(
                "leave".into(),
            ));
        harness::pump_until(&mut [server, client], 300, "save on leave", |a| {
            let s = a[0].world().resource::<DataStoreState>();
            s.profile(player).is_none() && s.busy() == 0
        });
    }

    /// Two servers on one fresh database, each with its own data folder, sharing one keys
    /// folder (the apps first: they end before their folders go).
    struct Two {
        a: bevy::prelude::App,
        b: bevy::prelude::App,
        url: String,
        da: Scratch,
        db: Scratch,
        _keys: Scratch,
    }

    fn two_servers(tag: &str) -> Option<Two> {
        let url = super::cluster()?.fresh(tag);
        let keys = Scratch::new(&format!("pg-{tag}-keys"));
        let (da, db) = (
            Scratch::new(&format!("pg-{tag}-a")),
            Scratch::new(&format!("pg-{tag}-b")),
        );
        Some(Two {
            a: server_on(&da, &keys, &url),
            b: server_on(&db, &keys, &url),
            url,
            da,
            db,
            _keys: keys,
        })
    }

    /// Sets a loaded player's coins and gives them one fish, Dory (species 2).
    fn coins_and_dory(server: &mut bevy::prelude::App, player: u64, coins: i64) {
        harness::edit_profile(server, player, |p| {
            p.stats.coins = coins;
            p.fish.push(bloxquarium::game::Fish {
                id: 1,
                species: 2,
                name: "Dory".into(),
                hunger: 0.0,
                from_trade: None,
            });
        });
    }

    /// Two servers, each with its own data folder, on one database and one keys folder: a
    /// player plays on the first, leaves, and finds coins and fish on the second.
    #[test]
    fn a_player_moves_between_two_servers_on_one_database() {
        let Some(Two {
            mut a,
            mut b,
            da,
            db,
            _keys,
            ..
        }) = two_servers("two_servers")
        else {
            return;
        };

        let (mut client, _) = harness::join_loaded(&mut a, &da, 31, "Coral");
        coins_and_dory(&mut a, 31, 777);
        leave(&mut a, &mut client, 31);

        // The second server's own token (the same netcode key) and its own load.
        let (_client, _) = harness::join_loaded(&mut b, &db, 31, "Coral");
        let state = b.world().resource::<DataStoreState>();
        let p = &state
            .profile(31)
            .expect("loaded on the second server")
            .profile;
        assert_eq!(p.stats.coins, 777);
        assert_eq!(p.fish.len(), 1);
        assert_eq!(p.fish[0].name, "Dory");
        let held = b
            .world()
            .resource::<DataStore>()
            .peek::<Aquarium>(31)
            .unwrap();
        assert_eq!(held.unwrap().1.stats.coins, 777, "the stored profile too");
    }

    /// The leaderboard ranks every player of the store, not only this server's: a player on
    /// one server sees another server's player on the board (at their saved coins), their own
    /// rank, and can visit that player's aquarium as last saved.
    #[test]
    fn the_leaderboard_and_visits_reach_players_on_another_server() {
        let Some(Two {
            mut a,
            mut b,
            da,
            db,
            _keys,
            ..
        }) = two_servers("board")
        else {
            return;
        };
        // Coral plays on server A: 900 coins and a fish, saved when she leaves and rejoins.
        let (mut coral, _) = harness::join_loaded(&mut a, &da, 71, "Coral");
        coins_and_dory(&mut a, 71, 900);
        leave(&mut a, &mut coral, 71);
        let (mut coral, _) = harness::join_loaded(&mut a, &da, 71, "Coral");
        // Bob plays on server B with fewer coins.
        let (mut bob, _) = harness::join_loaded(&mut b, &db, 72, "Bob");
        harness::edit_profile(&mut b, 72, |p| p.stats.coins = 5);
        harness::pump_until(
            &mut [&mut a, &mut b, &mut coral, &mut bob],
            20_000,
            "Bob's board lists Coral from the other server, and Bob's own rank",
            |apps| {
                let board = apps[3].world().resource::<bloxquarium::game::Leaderboard>();
                board.0.first().is_some_and(|r| r.0 == 71) && board.1 == Some(2)
            },
        );
        let board = bob
            .world()
            .resource::<bloxquarium::game::Leaderboard>()
            .clone();
        // Coral's fish earns: her row holds 900 or more (her last save on server A).
        assert_eq!(
            (board.0[0].0, board.0[0].1.as_str()),
            (71, "Coral"),
            "{board:?}"
        );
        assert!(board.0[0].2 >= 900, "{board:?}");
        assert_eq!(board.0[1], (72, "Bob".to_string(), 5), "{board:?}");
        // Bob visits Coral, who is on the other server: her tank as last saved.
        {
            let t = bob
                .world()
                .resource::<bevy::time::Time<bevy::time::Real>>()
                .elapsed();
            let world = bob.world_mut();
            let mut net = world
                .remove_resource::<bloxquarium::transport::ClientNet>()
                .unwrap();
            world
                .resource_mut::<bloxquarium::game::Visit>()
                .request(&mut net, 71, t);
            world.insert_resource(net);
        }
        harness::pump_until(
            &mut [&mut a, &mut b, &mut coral, &mut bob],
            3000,
            "Bob sees Coral's aquarium",
            |apps| {
                apps[3]
                    .world()
                    .resource::<bloxquarium::game::Visit>()
                    .showing
                    .is_some()
            },
        );
        let (who, name, state) = bob
            .world()
            .resource::<bloxquarium::game::Visit>()
            .showing
            .clone()
            .unwrap();
        assert_eq!((who, name.as_str()), (71, "Coral"));
        assert!(state.coins >= 900, "{state:?}");
        assert_eq!(state.fish.len(), 1);
    }

    /// The login service of one server sends a new player to the live server with the most
    /// room, by the server directory, or to the server a friend they name plays on; the token it
    /// hands out is good there.
    #[test]
    fn the_login_service_sends_a_player_to_the_least_loaded_server() {
        let Some(Two {
            mut a,
            mut b,
            da,
            db,
            _keys,
            url,
        }) = two_servers("login_pick")
        else {
            return;
        };
        let (mut first, _) = harness::join_loaded(&mut a, &da, 81, "Busy");
        // Both servers have beaten since: A with one player, B with none.
        let pg = bloxquarium::datastore::PostgresBackend::connect(&url).unwrap();
        harness::pump_until(
            &mut [&mut a, &mut b, &mut first],
            1000,
            "the directory shows A's player",
            |_| {
                let e = pg.servers().unwrap();
                e.len() == 2 && e.iter().map(|e| e.players).sum::<i32>() == 1
            },
        );
        let login = a
            .world()
            .get_resource::<bloxquarium::accounts::login::LoginService>()
            .and_then(|s| s.local_addr)
            .expect("A runs the login service");
        let home = Scratch::new("pg-login-pick-home");
        let grant = bloxquarium::accounts::login::LoginClient::new(
            &login.to_string(),
            &home.0.join("client"),
            None,
        )
        .unwrap()
        .register(&bloxquarium::accounts::login::Credentials {
            username: "newcomer".into(),
            password: "a long enough password".into(),
            friend: None,
        })
        .unwrap();
        assert_eq!(
            grant.server,
            harness::server_addr(&b),
            "sent to B, the server with room"
        );
        // The token A's service made is good on B.
        let token =
            bloxquarium::transport::IssuedToken::from_bytes(&hex::decode(&grant.token).unwrap())
                .unwrap();
        let mut player = harness::client(&db, grant.server, &token);
        harness::pump_until(
            &mut [&mut a, &mut b, &mut first, &mut player],
            600,
            "the newcomer plays on B",
            |apps| {
                apps[1]
                    .world()
                    .resource::<DataStoreState>()
                    .profile(grant.player_id)
                    .is_some()
            },
        );
        // B fills up more than A: a player asking to join the newcomer still goes to B; one
        // with no friend goes to A, now the server with more room.
        let (mut third, _) = harness::join_loaded(&mut b, &db, 83, "Third");
        harness::pump_until(
            &mut [&mut a, &mut b, &mut first, &mut player, &mut third],
            1000,
            "the directory shows B with two players",
            |_| {
                let e = pg.servers().unwrap();
                e.iter().map(|e| e.players).collect::<Vec<_>>().contains(&2)
            },
        );
        let register = |name: &str, friend: Option<&str>| {
            bloxquarium::accounts::login::LoginClient::new(
                &login.to_string(),
                &home.0.join("client"),
                None,
            )
            .unwrap()
            .register(&bloxquarium::accounts::login::Credentials {
                username: name.into(),
                password: "a long enough password".into(),
                friend: friend.map(str::to_string),
            })
            .unwrap()
            .server
        };
        assert_eq!(
            register("buddy", Some("newcomer")),
            harness::server_addr(&b),
            "to the friend's server"
        );
        assert_eq!(
            register("loner", None),
            harness::server_addr(&a),
            "to the one with room"
        );
        assert_eq!(
            register("stranger", Some("nobody")),
            harness::server_addr(&a),
            "a friend who is not playing: the one with room"
        );
    }

    /// `admin drain`: every player of a server is sent to the other server (their clients
    /// dial it with a token the first made), their profiles follow by handoff with nothing
    /// lost, and the drained server stops. On the embedded store the command is refused.
    #[test]
    fn a_drained_server_hands_every_player_to_another_and_stops() {
        let Some(Two {
            mut a,
            mut b,
            da,
            _keys,
            ..
        }) = two_servers("drain")
        else {
            return;
        };
        let (mut ann, _) = harness::join_loaded(&mut a, &da, 91, "Ann");
        let (mut bob, _) = harness::join_loaded(&mut a, &da, 92, "Bob");
        harness::edit_profile(&mut a, 91, |p| p.stats.coins = 9100);
        harness::edit_profile(&mut a, 92, |p| p.stats.coins = 9200);
        a.world_mut()
            .resource_mut::<bloxquarium::security::Security>()
            .assign_role(71, "admin", "test")
            .unwrap();
        // The directory knows both servers.
        harness::pump_until(
            &mut [&mut a, &mut b, &mut ann, &mut bob],
            600,
            "both in the directory",
            |apps| {
                apps[0]
                    .world()
                    .resource::<DataStore>()
                    .backend()
                    .postgres()
                    .and_then(|pg| pg.servers().ok())
                    .is_some_and(|e| e.len() == 2)
            },
        );
        let addr = harness::server_addr(&a).to_string();
        let out = crate::security::admin_cli(
            &mut a,
            &mut [&mut b, &mut ann, &mut bob],
            &[
                "--as",
                "71",
                "--data",
                da.path(),
                "--keys",
                _keys.path(),
                "--server",
                &addr,
            ],
            &["drain"],
        );
        let text = harness::text(&out);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("sending 2 player(s) to 1 other server(s)"),
            "{text}"
        );
        harness::pump_until(
            &mut [&mut a, &mut b, &mut ann, &mut bob],
            3000,
            "both players play on B, and A stops",
            |apps| {
                let on_b = apps[1].world().resource::<DataStoreState>();
                on_b.profile(91).is_some()
                    && on_b.profile(92).is_some()
                    && apps[0]
                        .world()
                        .resource::<bloxquarium::shutdown::Shutdown>()
                        .is_shutting_down()
            },
        );
        let on_b = b.world().resource::<DataStoreState>();
        assert_eq!(on_b.profile(91).unwrap().profile.stats.coins, 9100);
        assert_eq!(on_b.profile(92).unwrap().profile.stats.coins, 9200);
        assert!(a.world().resource::<DataStoreState>().profile(91).is_none());
    }

    /// A kick and a ban on one server end the player's session on the server they play on;
    /// the ban, a role assignment and a Shared config key an admin changes on one server reach
    /// the other at once, and a server started later finds them in the store.
    #[test]
    fn kicks_bans_and_config_changes_reach_the_other_servers() {
        use bloxquarium::protocol::ConfigValue;
        let Some(Two {
            mut a,
            mut b,
            da,
            db,
            _keys,
            url,
        }) = two_servers("across")
        else {
            return;
        };
        a.world_mut()
            .resource_mut::<bloxquarium::security::Security>()
            .assign_role(71, "admin", "test")
            .unwrap();
        let addr = harness::server_addr(&a).to_string();
        let ops = [
            "--as",
            "71",
            "--data",
            da.path(),
            "--keys",
            _keys.path(),
            "--server",
            &addr,
        ];
        for (player, command) in [
            (121u64, vec!["kick", "121"]),
            (122, vec!["ban", "122", "--for", "1h"]),
        ] {
            let (mut client, _) = harness::join_loaded(&mut b, &db, player, "Reef");
            let out =
                crate::security::admin_cli(&mut a, &mut [&mut b, &mut client], &ops, &command);
            let text = harness::text(&out);
            assert!(out.status.success(), "{command:?}: {text}");
            harness::pump_until(
                &mut [&mut a, &mut b, &mut client],
                300,
                &format!("{command:?} ends the session on B"),
                |apps| {
                    apps[1]
                        .world()
                        .resource::<DataStoreState>()
                        .profile(player)
                        .is_none()
                },
            );
        }

        // The store's audit log has A's records: read from anywhere with --store.
        let elsewhere = Scratch::new("pg-across-audit");
        harness::pump(&mut [&mut a, &mut b], 10);
        let mut cmd = harness::bin();
        cmd.args([
            "--data",
            elsewhere.path(),
            "--keys",
            _keys.path(),
            "--store",
            &url,
        ])
        .args(["audit", "--player", "122"]);
        let out = harness::output_within(cmd, std::time::Duration::from_secs(60));
        let text = harness::text(&out);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("Ban") && text.contains("banned for 3600 s"),
            "{text}"
        );

        // The ban, and a role assigned on A, hold on B too.
        let out =
            crate::security::admin_cli(&mut a, &mut [&mut b], &ops, &["role", "121", "moderator"]);
        assert!(out.status.success(), "{}", harness::text(&out));
        let security = |app: &bevy::prelude::App| {
            let s = app.world().resource::<bloxquarium::security::Security>();
            (s.bans.contains_key(&122), s.role_of(121).to_string())
        };
        harness::pump_until(
            &mut [&mut a, &mut b],
            300,
            "B has the ban and the role",
            |apps| security(apps[1]) == (true, "moderator".to_string()),
        );

        // An admin's change of a Shared key on A.
        let setting = |app: &bevy::prelude::App, key: &str| {
            app.world()
                .resource::<bloxquarium::config::Config>()
                .value(key)
                .unwrap()
        };
        let value = |app: &bevy::prelude::App| setting(app, "ui.toastSeconds");
        assert_eq!(value(&b), ConfigValue::Float(4.0));
        let now = a
            .world()
            .resource::<bevy::time::Time<bevy::time::Real>>()
            .elapsed();
        a.world_mut()
            .resource_mut::<bloxquarium::config::Config>()
            .set(
                "ui.toastSeconds",
                ConfigValue::Float(9.0),
                "player 71",
                bloxquarium::config_sync::CLIENT_REQUEST,
                now,
            )
            .unwrap();
        harness::pump_until(&mut [&mut a, &mut b], 300, "B has A's change", |apps| {
            value(apps[1]) == ConfigValue::Float(9.0)
        });
        // An edit of B's config files (what the hot reload applies) reaches A the same way (a
        // key no admin has overridden: an admin's override outranks the files, as on one server).
        let fps = |app: &bevy::prelude::App| setting(app, "performance.targetFPS");
        assert_eq!(fps(&a), ConfigValue::Int(60));
        let now = b
            .world()
            .resource::<bevy::time::Time<bevy::time::Real>>()
            .elapsed();
        b.world_mut()
            .resource_mut::<bloxquarium::config::Config>()
            .apply_base(
                [("performance.targetFPS".to_string(), ConfigValue::Int(45))].into(),
                false,
                bloxquarium::config::RELOAD.0,
                bloxquarium::config::RELOAD.1,
                now,
            );
        harness::pump_until(&mut [&mut a, &mut b], 300, "A has B's file edit", |apps| {
            fps(apps[0]) == ConfigValue::Int(45)
        });
        let dc = Scratch::new("pg-across-c");
        let mut c = server_on(&dc, &_keys, &url);
        harness::pump_until(
            &mut [&mut a, &mut b, &mut c],
            300,
            "a later server has the change, the ban and the role",
            |apps| {
                value(apps[2]) == ConfigValue::Float(9.0)
                    && fps(apps[2]) == ConfigValue::Int(45)
                    && security(apps[2]) == (true, "moderator".to_string())
            },
        );
    }

    /// The channel between servers survives a database restart: afterwards a player who turns
    /// up on the second server is still handed over by the first (the note goes through).
    #[test]
    fn the_channel_between_servers_survives_a_database_restart() {
        let Some(c) = super::private_cluster("channel") else {
            return;
        };
        let url = c.database("game");
        let keys = Scratch::new("pg-chan-keys");
        let (da, db) = (Scratch::new("pg-chan-a"), Scratch::new("pg-chan-b"));
        let mut a = server_on(&da, &keys, &url);
        let mut b = server_on(&db, &keys, &url);
        let (mut first, _) = harness::join_loaded(&mut a, &da, 131, "Wave");
        harness::edit_profile(&mut a, 131, |p| p.stats.coins = 1310);
        c.restart();
        // Both listeners notice and reconnect.
        harness::pump(&mut [&mut a, &mut b, &mut first], 90);
        let token = harness::issue(&b, 131, "Wave");
        let mut second = harness::client(&db, harness::server_addr(&b), &token);
        harness::pump_until(
            &mut [&mut a, &mut b, &mut first, &mut second],
            3000,
            "handed over after the restart",
            |apps| {
                apps[1]
                    .world()
                    .resource::<DataStoreState>()
                    .profile(131)
                    .is_some()
            },
        );
        let state = b.world().resource::<DataStoreState>();
        assert_eq!(state.profile(131).unwrap().profile.stats.coins, 1310);
        assert_eq!(state.handoffs, 1, "by handoff, not by the stale lock");
    }

    /// A player hops between two live servers: each time they turn up on the other server while
    /// the first still holds their profile, the new server asks the holder over the store's
    /// channel; the holder ends the session, saves and releases; the new server loads. Never two
    /// owners at once, nothing lost (a coin added on each server before each hop), and the
    /// handoff times are printed.
    #[test]
    fn a_player_hops_between_two_live_servers_by_handoff() {
        let Some(Two {
            a,
            b,
            da,
            db,
            _keys,
            ..
        }) = two_servers("hops")
        else {
            return;
        };
        let mut servers = [a, b];
        let scratch = [&da, &db];
        const PLAYER: u64 = 51;
        const HOPS: usize = 50;
        let (first, _) = harness::join_loaded(&mut servers[0], &da, PLAYER, "Finn");
        let mut client = first;
        harness::edit_profile(&mut servers[0], PLAYER, |p| p.stats.coins = 1000);
        let mut times = Vec::new();
        for hop in 0..HOPS {
            let (from, to) = (hop % 2, (hop + 1) % 2);
            harness::edit_profile(&mut servers[from], PLAYER, |p| p.stats.coins += 1);
            let token = harness::issue(&servers[to], PLAYER, "Finn");
            let addr = harness::server_addr(&servers[to]);
            let mut next = harness::client(scratch[to], addr, &token);
            let started = std::time::Instant::now();
            let [a, b] = &mut servers;
            harness::pump_until(
                &mut [a, b, &mut client, &mut next],
                3000,
                &format!("hop {hop}: handed over"),
                |apps| {
                    let live = |i: usize| {
                        apps[i]
                            .world()
                            .resource::<DataStoreState>()
                            .profile(PLAYER)
                            .is_some()
                    };
                    assert!(!(live(0) && live(1)), "hop {hop}: two owners at once");
                    live(to)
                },
            );
            times.push(started.elapsed());
            client = next;
        }
        let state = servers[HOPS % 2].world().resource::<DataStoreState>();
        let coins = state.profile(PLAYER).unwrap().profile.stats.coins;
        assert_eq!(
            coins,
            1000 + HOPS as i64,
            "a coin from every server before every hop"
        );
        let handed: u64 = servers
            .iter()
            .map(|s| s.world().resource::<DataStoreState>().handoffs)
            .sum();
        assert_eq!(handed, HOPS as u64);
        times.sort();
        let pct = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        eprintln!(
            "handoff over {HOPS} hops: p50 {:?}, p99 {:?} (the tests' pumping included)",
            pct(0.5),
            pct(0.99)
        );
    }

    /// `datastore restore-version` on a shared store while the player plays: the command asks
    /// the server over the channel to end the session (which saves and releases), then
    /// restores.
    #[test]
    fn restoring_a_version_while_the_player_plays_elsewhere_ends_their_session_first() {
        let Some(c) = super::cluster() else { return };
        let url = c.fresh("restore_live");
        let keys = Scratch::new("pg-rv-keys");
        let da = Scratch::new("pg-rv-a");
        let mut a = server_on(&da, &keys, &url);
        let (mut client, _) = harness::join_loaded(&mut a, &da, 61, "Pearl");
        harness::edit_profile(&mut a, 61, |p| p.stats.coins = 500);
        leave(&mut a, &mut client, 61); // version 1: 500 coins
        let (mut client, _) = harness::join_loaded(&mut a, &da, 61, "Pearl");
        harness::edit_profile(&mut a, 61, |p| p.stats.coins = 9);
        let mut cmd = harness::bin();
        cmd.args(["--data", da.path(), "--keys", keys.path(), "--store", &url])
            .args([
                "datastore",
                "restore-version",
                "--player",
                "61",
                "--version",
                "1",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut status = None;
        harness::pump_until(
            &mut [&mut a, &mut client],
            20_000,
            "the command ends",
            |_| {
                status = child.try_wait().unwrap();
                status.is_some()
            },
        );
        let out = child.wait_with_output().unwrap();
        let text = harness::text(&out);
        assert!(status.unwrap().success(), "{text}");
        assert!(text.contains("version 1 restored as version"), "{text}");
        assert!(
            a.world().resource::<DataStoreState>().profile(61).is_none(),
            "the session ended"
        );
        let (_, p) = a
            .world()
            .resource::<DataStore>()
            .peek::<Aquarium>(61)
            .unwrap()
            .unwrap();
        assert_eq!(p.stats.coins, 500, "the restored version is current");
    }

    /// The database goes away under a server with players and comes back: the players keep
    /// playing, the auto-saves fail and are retried, and once the database is back every
    /// change is saved without anyone touching anything.
    #[test]
    fn a_database_outage_under_players_loses_nothing_and_recovers_by_itself() {
        let Some(c) = super::private_cluster("outage") else {
            return;
        };
        let url = c.database("game");
        let (d, keys) = (Scratch::new("pg-outage"), Scratch::new("pg-outage-keys"));
        let cfg = harness::config_dir(&d, r#"{"datastore.autosaveInterval": 5}"#);
        let mut server =
            harness::server_with_config_args(&d, &cfg, &["--store", &url, "--keys", keys.path()]);
        let players = [71u64, 72, 73, 74];
        let mut clients: Vec<_> = players
            .iter()
            .map(|&p| harness::join_loaded(&mut server, &d, p, "Reef").0)
            .collect();
        let stored = |server: &bevy::prelude::App, p: u64| {
            server
                .world()
                .resource::<DataStore>()
                .peek::<Aquarium>(p)
                .ok()
                .flatten()
                .map(|(_, prof)| prof.stats.coins)
        };
        let mut pump_until =
            |server: &mut bevy::prelude::App,
             what: &str,
             frames: usize,
             done: &dyn Fn(&bevy::prelude::App) -> bool| {
                let mut apps: Vec<&mut bevy::prelude::App> = vec![server];
                apps.extend(clients.iter_mut());
                harness::pump_until(&mut apps, frames, what, |a| done(a[0]));
            };
        for (i, &p) in players.iter().enumerate() {
            harness::edit_profile(&mut server, p, |prof| prof.stats.coins = 100 + i as i64);
        }
        pump_until(&mut server, "saved before the outage", 600, &|s| {
            players
                .iter()
                .enumerate()
                .all(|(i, &p)| stored(s, p) == Some(100 + i as i64))
        });

        c.stop();
        for (i, &p) in players.iter().enumerate() {
            harness::edit_profile(&mut server, p, |prof| prof.stats.coins = 200 + i as i64);
        }
        // Five seconds of play without a database: every player stays.
        pump_until(&mut server, "failed saves retried", 600, &|s| {
            s.world().resource::<DataStoreState>().save_retries >= players.len() as u64
        });
        for &p in &players {
            assert!(
                server
                    .world()
                    .resource::<DataStoreState>()
                    .profile(p)
                    .is_some(),
                "player {p} still playing"
            );
        }
        // The store turns critical: unready (no new players), not unhealthy (alive).
        pump_until(&mut server, "unready", 3000, &|s| {
            s.world()
                .resource::<bloxquarium::integration::IntegrationRegistry>()
                .last
                .as_ref()
                .is_some_and(|r| {
                    matches!(
                        r.overall,
                        bloxquarium::integration::HealthStatus::Unready(_)
                    )
                })
        });

        c.start();
        pump_until(&mut server, "saved after the outage", 3000, &|s| {
            players
                .iter()
                .enumerate()
                .all(|(i, &p)| stored(s, p) == Some(200 + i as i64))
        });
        for &p in &players {
            assert!(
                server
                    .world()
                    .resource::<DataStoreState>()
                    .profile(p)
                    .is_some()
            );
        }
    }

    /// Servers register in the directory, `bloxquarium servers` lists them, one of them runs
    /// the store-wide jobs (it expires a dead server's entry), a server leaves the directory
    /// when it stops, and the other takes the jobs over.
    #[test]
    fn the_directory_lists_live_servers_and_one_runs_the_store_wide_jobs() {
        use bloxquarium::datastore::{Directory, PostgresBackend};
        let Some(c) = super::cluster() else { return };
        let Some(Two {
            mut a,
            mut b,
            url,
            da: _da,
            db: _db,
            _keys,
        }) = two_servers("directory")
        else {
            return;
        };
        let pg = PostgresBackend::connect(&url).unwrap();
        let ids = |pg: &PostgresBackend| -> Vec<String> {
            pg.servers().unwrap().into_iter().map(|s| s.id).collect()
        };
        let id_of =
            |app: &bevy::prelude::App| app.world().resource::<DataStoreState>().server_id.clone();
        let (id_a, id_b) = (id_of(&a), id_of(&b));
        harness::pump_until(&mut [&mut a, &mut b], 3000, "both registered", |_| {
            ids(&pg).len() == 2
        });
        let entry = pg
            .servers()
            .unwrap()
            .into_iter()
            .find(|s| s.id == id_a)
            .unwrap();
        assert!(entry.address.starts_with("127.0.0.1:"), "{entry:?}");
        assert_eq!((entry.players, entry.capacity), (0, 100), "{entry:?}");
        let jobs = |app: &bevy::prelude::App| app.world().resource::<Directory>().runs_store_jobs();
        harness::pump_until(&mut [&mut a, &mut b], 5000, "one runs the jobs", |apps| {
            jobs(apps[0]) || jobs(apps[1])
        });
        for _ in 0..50 {
            harness::pump(&mut [&mut a, &mut b], 1);
            assert!(
                !(jobs(&a) && jobs(&b)),
                "two servers run the store-wide jobs"
            );
        }

        // A dead server's entry: the elected server removes it.
        c.admin(url.rsplit('/').next().unwrap())
            .execute(
                "INSERT INTO bq_servers (id, address, players, capacity, heartbeat)
                 VALUES ('dead-server', '10.0.0.9:5000', 3, 100, now() - interval '1 hour')",
                &[],
            )
            .unwrap();
        assert_eq!(ids(&pg).len(), 3);
        harness::pump_until(
            &mut [&mut a, &mut b],
            3000,
            "the dead entry expires",
            |_| !ids(&pg).contains(&"dead-server".to_string()),
        );

        // The command line lists both.
        let mut cmd = harness::bin();
        cmd.args(["--store", &url, "servers"]);
        let out = harness::output_within(cmd, std::time::Duration::from_secs(60));
        let text = harness::text(&out);
        assert!(out.status.success(), "{text}");
        assert!(text.contains(&id_a) && text.contains(&id_b), "{text}");
        assert!(text.contains("0/100"), "{text}");

        // The leader stops: it leaves the directory, and the other takes the jobs over.
        let (mut leader, mut other, other_id) = if jobs(&a) { (a, b, id_b) } else { (b, a, id_a) };
        leader
            .world_mut()
            .resource_mut::<bloxquarium::shutdown::Shutdown>()
            .request(bloxquarium::shutdown::ShutdownReason::Requested(
                "test".into(),
            ));
        harness::pump_until(&mut [&mut leader], 300, "the leader exits", |apps| {
            apps[0].should_exit().is_some()
        });
        drop(leader);
        assert_eq!(ids(&pg), vec![other_id]);
        harness::pump_until(
            &mut [&mut other],
            10_000,
            "the other takes the jobs over",
            |apps| jobs(apps[0]),
        );
    }

    /// A server process is killed with SIGKILL while its player plays: no save on the way out,
    /// no release. Another server takes the profile over once the lock is stale
    /// (`datastore.lockStaleAfter`, 5 s here) and finds what the last auto-save committed.
    #[test]
    fn a_server_killed_mid_session_has_its_profiles_taken_over_after_the_stale_interval() {
        let Some(c) = super::cluster() else { return };
        let url = c.fresh("sigkill");
        let keys = Scratch::new("pg-kill-keys");
        let (da, db) = (Scratch::new("pg-kill-a"), Scratch::new("pg-kill-b"));
        let ron = r#"{"datastore.autosaveInterval": 5, "datastore.lockStaleAfter": 5}"#;
        let cfg_a = harness::config_dir(&da, ron);
        let cfg_b = harness::config_dir(&db, ron);
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let global = |data: &Scratch, cfg: &str| {
            let mut cmd = harness::bin();
            cmd.args([
                "--config",
                cfg,
                "--data",
                data.path(),
                "--keys",
                keys.path(),
            ])
            .args(["--store", &url]);
            cmd
        };
        let mut server = global(&da, &cfg_a)
            .args(["server", "--bind", &addr, "--metrics-bind", "127.0.0.1:0"])
            .args(["--login-bind", "127.0.0.1:0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pg = bloxquarium::datastore::PostgresBackend::connect(&url).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while pg.servers().unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "server A never registered"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let token = da.0.join("kill.token");
        let out = harness::output_within(
            {
                let mut cmd = global(&da, &cfg_a);
                cmd.args([
                    "token", "--player", "81", "--name", "Kelp", "--server", &addr,
                ])
                .arg("--out")
                .arg(&token);
                cmd
            },
            std::time::Duration::from_secs(60),
        );
        assert!(out.status.success(), "{}", harness::text(&out));
        let client_data = Scratch::new("pg-kill-client");
        let mut client = harness::bin()
            .args([
                "--data",
                client_data.path(),
                "--exit-after",
                "120",
                "client",
                "--headless",
            ])
            .arg("--token")
            .arg(&token)
            .args(["--then", "buy-fish:0,buy-fish:1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The purchases reach the store with an auto-save.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        let store_b_view = || {
            let paths = bloxquarium::process::Paths::new(&db.0, &db.0, &db.0)
                .with_store(Some(url.clone()))
                .with_keys(Some(&keys.0));
            let config = bloxquarium::config::load_server(
                std::path::Path::new(&cfg_b),
                &bloxquarium::game::KEYS,
            )
            .unwrap();
            bloxquarium::datastore::open_at::<Aquarium>(&paths, &config).unwrap()
        };
        let view = store_b_view();
        loop {
            let fish = view
                .peek::<Aquarium>(81)
                .unwrap()
                .map_or(0, |(_, p)| p.fish.len());
            if fish == 2 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the purchases were never saved"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        // SIGKILL: no final save, no release, no leaving the directory.
        server.kill().unwrap();
        let _ = server.wait();
        let killed = std::time::Instant::now();
        let _ = client.kill();
        let _ = client.wait();
        // Within the stale interval the lock still holds; after it, server B takes over.
        assert!(matches!(
            view.load::<Aquarium>(
                81,
                &bloxquarium::datastore::LockOwner {
                    server_id: "probe".into(),
                    session: 1
                },
                bloxquarium::clock::now_ms()
            ),
            Err(bloxquarium::datastore::StoreError::Locked { .. })
        ));
        std::thread::sleep(std::time::Duration::from_secs(6).saturating_sub(killed.elapsed()));
        let mut b = harness::server_with_config_args(
            &db,
            &cfg_b,
            &["--store", &url, "--keys", keys.path()],
        );
        let (_client_b, _) = harness::join_loaded(&mut b, &db, 81, "Kelp");
        let state = b.world().resource::<DataStoreState>();
        assert_eq!(state.profile(81).unwrap().profile.fish.len(), 2);
    }

    /// A gift from a player on one server to a player on another: the debit and the inbox row
    /// commit together on the first; the note on the channel makes the second save its player
    /// at once, which takes the row and credits, long before an auto-save would.
    #[test]
    fn a_gift_reaches_a_player_on_another_server_at_once() {
        let Some(Two {
            mut a,
            mut b,
            da,
            db,
            _keys,
            ..
        }) = two_servers("gift_across")
        else {
            return;
        };
        let (mut ann, _) = harness::join_loaded(&mut a, &da, 91, "Ann");
        let (mut bob, _) = harness::join_loaded(&mut b, &db, 92, "Bob");
        let coins = |app: &bevy::prelude::App, p: u64| {
            app.world()
                .resource::<DataStoreState>()
                .profile(p)
                .unwrap()
                .profile
                .stats
                .coins
        };
        let (ann0, bob0) = (coins(&a, 91), coins(&b, 92));
        harness::edit_profile(&mut a, 91, |p| p.stats.coins -= 10);
        let sent = a.world_mut().resource_mut::<DataStoreState>().send(
            91,
            92,
            (
                1,
                bloxquarium::game::OfflineGift::Coins {
                    amount: 10,
                    from: 91,
                },
            ),
        );
        assert!(sent);
        // The auto-save interval is 60 s (1800 frames); the gift lands within 5 s of frames.
        harness::pump_until(
            &mut [&mut a, &mut b, &mut ann, &mut bob],
            150,
            "the gift lands",
            |apps| coins(apps[1], 92) == bob0 + 10,
        );
        assert_eq!(coins(&a, 91), ann0 - 10);
        let stored = |app: &bevy::prelude::App, p: u64| {
            app.world()
                .resource::<DataStore>()
                .peek::<Aquarium>(p)
                .unwrap()
                .unwrap()
                .1
                .stats
                .coins
        };
        harness::pump_until(
            &mut [&mut a, &mut b, &mut ann, &mut bob],
            150,
            "both stored",
            |apps| stored(apps[0], 91) == ann0 - 10 && stored(apps[1], 92) == bob0 + 10,
        );
    }

    /// The sender's server dies (dropped without a word: no final save, no shutdown) between
    /// the steps of a gift to a player on another server. Before the debit and the inbox row
    /// commit: neither happened (the gift and the debit die together). After: the recipient
    /// is credited exactly once, however often their server saves afterwards.
    #[test]
    fn a_gift_survives_its_senders_server_dying_between_steps() {
        let stored = |app: &bevy::prelude::App, p: u64| {
            app.world()
                .resource::<DataStore>()
                .peek::<Aquarium>(p)
                .unwrap()
                .map_or(0, |(_, p)| p.stats.coins)
        };
        let live = |app: &bevy::prelude::App, p: u64| {
            app.world()
                .resource::<DataStoreState>()
                .profile(p)
                .map_or(0, |l| l.profile.stats.coins)
        };
        let gift = |a: &mut bevy::prelude::App, amount: i64| {
            harness::edit_profile(a, 111, |p| p.stats.coins -= amount);
            assert!(a.world_mut().resource_mut::<DataStoreState>().send(
                111,
                112,
                (
                    amount as u64,
                    bloxquarium::game::OfflineGift::Coins { amount, from: 111 },
                ),
            ));
        };
        for died_after_commit in [false, true] {
            let tag = if died_after_commit {
                "gift_die_after"
            } else {
                "gift_die_before"
            };
            let Some(Two {
                mut a,
                mut b,
                da,
                db,
                _keys,
                ..
            }) = two_servers(tag)
            else {
                return;
            };
            let (mut ann, _) = harness::join_loaded(&mut a, &da, 111, "Ann");
            let (mut bob, _) = harness::join_loaded(&mut b, &db, 112, "Bob");
            // Both saved once, so the stored figures are the starting ones.
            harness::edit_profile(&mut a, 111, |p| p.stats.coins = 500);
            harness::edit_profile(&mut b, 112, |p| p.stats.coins = 50);
            leave(&mut a, &mut ann, 111);
            let (mut ann, _) = harness::join_loaded(&mut a, &da, 111, "Ann");
            leave(&mut b, &mut bob, 112);
            let (mut bob, _) = harness::join_loaded(&mut b, &db, 112, "Bob");
            gift(&mut a, 30);
            if died_after_commit {
                harness::pump_until(&mut [&mut a, &mut ann], 300, "the gift commits", |apps| {
                    stored(apps[0], 111) == 470
                });
            }
            // Server A dies.
            drop(ann);
            drop(a);
            let expect_bob = if died_after_commit { 80 } else { 50 };
            // The note that tells B may have died with A: then the row waits for Bob's next
            // save, which takes it and credits in one transaction.
            harness::pump(&mut [&mut b, &mut bob], 150);
            assert!(
                [50, expect_bob].contains(&live(&b, 112)),
                "{tag}: Bob in play has {}",
                live(&b, 112)
            );
            // Bob leaves and comes back twice (a save and a load each time): nothing twice.
            for _ in 0..2 {
                harness::edit_profile(&mut b, 112, |p| p.away.last_seen_ms += 1);
                leave(&mut b, &mut bob, 112);
                assert_eq!(stored(&b, 112), expect_bob, "{tag}: Bob stored");
                bob = harness::join_loaded(&mut b, &db, 112, "Bob").0;
                assert_eq!(live(&b, 112), expect_bob, "{tag}: Bob loaded");
            }
            assert_eq!(
                stored(&b, 111),
                if died_after_commit { 470 } else { 500 },
                "{tag}: Ann's stored coins match what Bob got"
            );
        }
    }

    /// A trade between players on two servers. Ann (on A) offers Dory for 40 of Bob's (on B)
    /// coins: B shows Bob the offer, his acts go to A (which leads the trade), both confirm,
    /// each side goes into escrow with its own server's save, and one settlement moves both.
    /// Then Bob (leading) offers Dory back for 30 coins and Ann, on the follower, accepts and
    /// confirms; her coins go before A starts her side, which fails: the trade is called off
    /// and Bob gets Dory back. An offer asking for more than Bob has is refused by B; one to a
    /// player on no server fails.
    #[test]
    fn two_players_on_two_servers_trade_all_or_nothing() {
        use bevy::prelude::App;
        use bloxquarium::game::protocol::{TradeAct, TradeAction, TradeOffer, TradeStage};
        let Some(Two {
            mut a,
            mut b,
            da,
            db,
            _keys,
            ..
        }) = two_servers("trade_across")
        else {
            return;
        };
        let (mut ann, _) = harness::join_loaded(&mut a, &da, 91, "Ann");
        let (mut bob, _) = harness::join_loaded(&mut b, &db, 92, "Bob");
        coins_and_dory(&mut a, 91, 100);
        // A starving fish earns nothing, so coins stay exact.
        harness::edit_profile(&mut a, 91, |p| p.fish[0].hunger = 100.0);
        harness::edit_profile(&mut b, 92, |p| p.stats.coins = 50);
        let live = |s: &App, p: u64| {
            let l = &s
                .world()
                .resource::<DataStoreState>()
                .profile(p)
                .unwrap()
                .profile;
            (
                l.stats.coins,
                l.fish.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
            )
        };

        // Too greedy: B refuses on Bob's behalf, and Ann hears why.
        let greedy = TradeOffer::fish_for_coins(92, 1, 500);
        let v = harness::call(&mut a, &mut ann, &mut [&mut b, &mut bob], greedy).unwrap();
        assert_eq!(v.stage, TradeStage::Offered);
        harness::pump_until(
            &mut [&mut a, &mut b, &mut ann, &mut bob],
            600,
            "refused",
            |x| matches!(trade_stage(x[2], v.trade), Some(TradeStage::Failed { reason }) if reason.contains("coins")),
        );
        // Nobody plays as player 93.
        let lost = TradeOffer::fish_for_coins(93, 1, 5);
        let v = harness::call(&mut a, &mut ann, &mut [&mut b, &mut bob], lost).unwrap();
        harness::pump_until(
            &mut [&mut a, &mut b, &mut ann, &mut bob],
            3000,
            "nobody",
            |x| matches!(trade_stage(x[2], v.trade), Some(TradeStage::Failed { reason }) if reason.contains("not online on any server")),
        );

        // Ann's Dory for 40 of Bob's coins.
        let offer = TradeOffer::fish_for_coins(92, 1, 40);
        let t = harness::call(&mut a, &mut ann, &mut [&mut b, &mut bob], offer)
            .unwrap()
            .trade;
        harness::pump_until(
            &mut [&mut a, &mut b, &mut ann, &mut bob],
            600,
            "Bob sees it",
            |x| trade_stage(x[3], t) == Some(TradeStage::Offered),
        );
        let act = |server: &mut App, who: &mut App, others: &mut [&mut App], action| {
            harness::call(server, who, others, TradeAct { trade: t, action })
        };
        // Ann cannot accept her own offer; Bob can, on his server.
        assert!(
            act(
                &mut a,
                &mut ann,
                &mut [&mut b, &mut bob],
                TradeAction::Accept
            )
            .is_err()
        );
        act(
            &mut b,
            &mut bob,
            &mut [&mut a, &mut ann],
            TradeAction::Accept,
        )
        .unwrap();
        let accepted = |from_confirmed, to_confirmed| {
            Some(TradeStage::Accepted {
                from_confirmed,
                to_confirmed,
            })
        };
        harness::pump_until(
            &mut [&mut a, &mut b, &mut ann, &mut bob],
            600,
            "accepted",
            |x| trade_stage(x[2], t) == accepted(false, false),
        );
        act(
            &mut a,
            &mut ann,
            &mut [&mut b, &mut bob],
            TradeAction::Confirm,
        )
        .unwrap();
        harness::pump_until(
            &mut [&mut a, &mut b, &mut ann, &mut bob],
            600,
            "Ann confirmed",
            |x| trade_stage(x[3], t) == accepted(true, false),
        );
        let v = act(
            &mut b,
            &mut bob,
            &mut [&mut a, &mut ann],
            TradeAction::Confirm,
        )
        .unwrap();
        assert_eq!(v.stage, TradeStage::Committing);
        harness::pump_until(
            &mut [&mut a, &mut b, &mut ann, &mut bob],
            1500,
            "done and delivered",
            |x| {
                trade_stage(x[2], t) == Some(TradeStage::Done)
                    && trade_stage(x[3], t) == Some(TradeStage::Done)
                    && live(x[0], 91) == (140, vec![])
                    && live(x[1], 92) == (10, vec!["Dory".to_string()])
            },
        );
        let stored = |s: &App, p: u64| {
            let (_, p) = s
                .world()
                .resource::<DataStore>()
                .peek::<Aquarium>(p)
                .unwrap()
                .unwrap();
            (p.stats.coins, p.fish.len())
        };
        harness::pump_until(
            &mut [&mut a, &mut b, &mut ann, &mut bob],
            600,
            "both stored",
            |x| stored(x[0], 91) == (140, 0) && stored(x[1], 92) == (10, 1),
        );
        // Each profile keeps the trade.
        for (s, p) in [(&a, 91), (&b, 92)] {
            let l = &s
                .world()
                .resource::<DataStoreState>()
                .profile(p)
                .unwrap()
                .profile;
            assert!(
                l.operations
                    .iter()
                    .any(|o| o.kind == "trade" && o.detail.contains(&t.to_string())),
                "player {p} keeps trade {t}"
            );
        }

        // Bob (B leads now) offers Dory back for 30; Ann accepts and confirms on A.
        let dory = live_profile_fish(&b, 92);
        let back = TradeOffer::fish_for_coins(91, dory, 30);
        let t = ann_accepts_and_confirms_bobs_offer((&mut a, &mut ann), (&mut b, &mut bob), back);
        let act = |server: &mut App, who: &mut App, others: &mut [&mut App], action| {
            harness::call(server, who, others, TradeAct { trade: t, action }).unwrap()
        };
        // Bob confirms with A standing still: A has not heard that the trade is committing
        // when Ann's coins go (spent elsewhere, as far as the trade knows).
        let v = act(&mut b, &mut bob, &mut [&mut ann], TradeAction::Confirm);
        assert_eq!(v.stage, TradeStage::Committing);
        harness::edit_profile(&mut a, 91, |p| p.stats.coins = 0);
        harness::pump_until(
            &mut [&mut a, &mut b, &mut ann, &mut bob],
            1500,
            "called off",
            |x| {
                matches!(trade_stage(x[2], t), Some(TradeStage::Failed { .. }))
                    && matches!(trade_stage(x[3], t), Some(TradeStage::Failed { .. }))
                    && live(x[1], 92) == (10, vec!["Dory".to_string()])
            },
        );
        assert_eq!(live(&a, 91), (0, vec![]));
        // Bob hears why; his profile keeps that the trade failed (a reversal refuses it).
        match trade_stage(&bob, t) {
            Some(TradeStage::Failed { reason }) => {
                assert!(
                    reason.contains("nothing moved") && reason.contains("coins"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        let l = &b
            .world()
            .resource::<DataStoreState>()
            .profile(92)
            .unwrap()
            .profile;
        assert!(l.operations.iter().any(|o| o.kind == "trade_failed"));
        harness::pump_until(
            &mut [&mut a, &mut b, &mut ann, &mut bob],
            600,
            "both stored",
            |x| stored(x[0], 91).1 == 0 && stored(x[1], 92) == (10, 1),
        );
        let held = a
            .world()
            .resource::<DataStore>()
            .stale_escrows(u64::MAX)
            .unwrap();
        assert!(held.is_empty(), "nothing left in escrow: {held:?}");
    }

    /// The server that leads a trade between players on two servers dies (dropped without a
    /// word) once its side is held in escrow. The other server holds its own side too, hears
    /// nothing more, and after three times `game.tradeCommitWait` calls the trade off, which
    /// gives both sides back: nothing is lost or doubled.
    #[test]
    fn a_trade_whose_leading_server_dies_is_called_off_by_the_other() {
        use bevy::prelude::App;
        use bloxquarium::datastore::{Backend, Table};
        use bloxquarium::game::OfflineGift;
        use bloxquarium::game::protocol::{
            TradeAct, TradeAction, TradeGoods, TradeOffer, TradeStage,
        };
        let Some(c) = super::cluster() else { return };
        let url = c.fresh("trade_leader_dies");
        let keys = Scratch::new("pg-tld-keys");
        let (da, db) = (Scratch::new("pg-tld-a"), Scratch::new("pg-tld-b"));
        let cfg = harness::config_dir(&da, r#"{"game.tradeCommitWait": 1}"#);
        let server = |d: &Scratch| {
            harness::app(&[
                "--config",
                &cfg,
                "--data",
                d.path(),
                "--keys",
                keys.path(),
                "--store",
                &url,
                "server",
                "--bind",
                "127.0.0.1:0",
            ])
        };
        let (mut a, mut b) = (server(&da), server(&db));
        let (mut ann, _) = harness::join_loaded(&mut a, &da, 95, "Ann");
        let (mut bob, _) = harness::join_loaded(&mut b, &db, 96, "Bob");
        coins_and_dory(&mut a, 95, 100);
        harness::edit_profile(&mut a, 95, |p| p.fish[0].hunger = 100.0);
        harness::edit_profile(&mut b, 96, |p| p.stats.coins = 50);
        let held = |s: &App| {
            s.world()
                .resource::<DataStore>()
                .stale_escrows(u64::MAX)
                .unwrap()
        };
        // Bob (B leads) offers 30 coins for Ann's Dory; Ann accepts and confirms on A.
        let offer = TradeOffer {
            to: 95,
            give: TradeGoods {
                coins: 30,
                ..Default::default()
            },
            want: TradeGoods {
                fish: vec![1],
                ..Default::default()
            },
        };
        let t = ann_accepts_and_confirms_bobs_offer((&mut a, &mut ann), (&mut b, &mut bob), offer);
        let act = |server: &mut App, who: &mut App, others: &mut [&mut App], action| {
            harness::call(server, who, others, TradeAct { trade: t, action }).unwrap()
        };
        // Bob confirms; B holds his side in escrow (A stands still meanwhile), then dies.
        let v = act(&mut b, &mut bob, &mut [&mut ann], TradeAction::Confirm);
        assert_eq!(v.stage, TradeStage::Committing);
        harness::pump_until(&mut [&mut b, &mut bob], 600, "Bob's side held", |x| {
            held(x[0]) == vec![(t, vec![96])]
        });
        drop(bob);
        drop(b);

        // A holds Ann's side, waits 3 s for a decision that never comes, and calls it off.
        harness::pump_until(&mut [&mut a, &mut ann], 3000, "called off", |x| {
            let live = &x[0]
                .world()
                .resource::<bloxquarium::game::DataStoreState>()
                .profile(95)
                .unwrap()
                .profile;
            matches!(trade_stage(x[1], t), Some(TradeStage::Failed { .. }))
                && live.stats.coins == 100
                && live.fish.len() == 1
        });
        match trade_stage(&ann, t) {
            Some(TradeStage::Failed { reason }) => {
                assert!(reason.contains("did not decide"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(held(&a).is_empty(), "nothing left in escrow");
        // Bob's 30 coins wait in his inbox for his next load; his stored profile paid them.
        let store = a.world().resource::<DataStore>();
        let (_, stored) = store.peek::<Aquarium>(96).unwrap().unwrap();
        assert_eq!(stored.stats.coins, 20);
        let inbox = store
            .backend()
            .read(|ops| ops.scan(Table::Inbox, &96u64.to_be_bytes()))
            .unwrap();
        let waiting: Vec<OfflineGift> = inbox
            .iter()
            .map(|(_, v)| serde_json::from_slice(v).unwrap())
            .collect();
        match waiting.as_slice() {
            [OfflineGift::Parcel { parcel, trade, .. }] => {
                assert_eq!((parcel.coins, *trade), (30, t));
            }
            other => panic!("Bob's inbox: {other:?}"),
        }
    }

    fn live_profile_fish(server: &bevy::prelude::App, player: u64) -> u64 {
        server
            .world()
            .resource::<DataStoreState>()
            .profile(player)
            .unwrap()
            .profile
            .fish[0]
            .id
    }

    /// Where trade `t` stands in `client`'s book of trades.
    fn trade_stage(
        client: &bevy::prelude::App,
        t: u64,
    ) -> Option<bloxquarium::game::protocol::TradeStage> {
        client
            .world()
            .resource::<bloxquarium::game::TradeBook>()
            .trades
            .get(&t)
            .map(|v| v.stage.clone())
    }

    /// Bob on server B offers Ann on server A `offer` (B leads the trade); Ann sees it,
    /// accepts and confirms on A (each after A's copy has caught up), and Bob hears her
    /// confirmation. Returns the trade; Bob's confirmation is left to the caller.
    fn ann_accepts_and_confirms_bobs_offer(
        (a, ann): (&mut bevy::prelude::App, &mut bevy::prelude::App),
        (b, bob): (&mut bevy::prelude::App, &mut bevy::prelude::App),
        offer: bloxquarium::game::protocol::TradeOffer,
    ) -> u64 {
        use bloxquarium::game::protocol::{TradeAct, TradeAction, TradeStage};
        let t = harness::call(b, bob, &mut [&mut *a, &mut *ann], offer)
            .unwrap()
            .trade;
        let accepted = |to_confirmed| {
            Some(TradeStage::Accepted {
                from_confirmed: false,
                to_confirmed,
            })
        };
        let mut all = [&mut *a, &mut *b, &mut *ann, &mut *bob];
        harness::pump_until(&mut all, 600, "Ann sees it", |x| {
            trade_stage(x[2], t) == Some(TradeStage::Offered)
        });
        for (action, seen) in [(TradeAction::Accept, 2), (TradeAction::Confirm, 3)] {
            harness::call(
                a,
                ann,
                &mut [&mut *b, &mut *bob],
                TradeAct { trade: t, action },
            )
            .unwrap();
            // A acts on its copy of the trade, which B's answer updates.
            let mut all = [&mut *a, &mut *b, &mut *ann, &mut *bob];
            harness::pump_until(&mut all, 600, "B's answer", |x| {
                trade_stage(x[seen], t) == accepted(action == TradeAction::Confirm)
            });
        }
        t
    }

    /// A server whose data key is not the store's is refused at start, in one line naming
    /// both keys and the fix.
    #[test]
    fn a_server_with_another_data_key_is_refused() {
        let Some(c) = super::cluster() else { return };
        let url = c.fresh("other_key");
        let (k1, k2, data) = (
            Scratch::new("pg-key-1"),
            Scratch::new("pg-key-2"),
            Scratch::new("pg-key-data"),
        );
        let paths = |k: &Scratch| {
            bloxquarium::process::Paths::new(&data.0, &data.0, &data.0)
                .with_store(Some(url.clone()))
                .with_keys(Some(&k.0))
        };
        let config = bloxquarium::config::load_server(
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config")),
            &bloxquarium::game::KEYS,
        )
        .unwrap();
        bloxquarium::datastore::open_at::<Aquarium>(&paths(&k1), &config).unwrap();
        let e = bloxquarium::datastore::open_at::<Aquarium>(&paths(&k2), &config)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("--keys"), "{e}");
        assert!(
            e.contains(&k2.0.join("data.key").display().to_string()),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        // The same key in a copied folder is the same key.
        let k3 = Scratch::new("pg-key-3");
        std::fs::copy(k1.0.join("data.key"), k3.0.join("data.key")).unwrap();
        bloxquarium::datastore::open_at::<Aquarium>(&paths(&k3), &config).unwrap();
    }
}
