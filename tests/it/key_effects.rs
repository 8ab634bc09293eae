// Every configuration key and the test that changes it and observes what that changes.
//
// A key without an entry, or an entry naming a test that does not exist, fails
// `config::every_config_key_has_a_test_that_changes_it` (keys and the integration tests named
// "it ...") and the library's `config::tests::key_effect_tests_in_the_library_exist` (tests
// named "lib ..."), both by the test binaries' own `--list`. This file is included by both.
// Keys read through a prefix (`security.rateLimits.*`) are listed one by one like the others.

/// (key, "lib <path>" or "it <path>" of the test that changes it and observes its effect).
pub const KEY_EFFECTS: &[(&str, &str)] = &[
    // audio.*
    (
        "audio.masterVolume",
        "lib client::sound::tests::the_volumes_follow_their_keys",
    ),
    (
        "audio.effectsVolume",
        "lib client::sound::tests::the_volumes_follow_their_keys",
    ),
    (
        "audio.ambienceVolume",
        "lib client::sound::tests::the_volumes_follow_their_keys",
    ),
    // graphics.*, ui.*
    (
        "graphics.maxRenderDistance",
        "lib client::render::tests::the_far_plane_is_the_render_distance",
    ),
    (
        "graphics.particleQuality",
        "lib client::tank_fx::tests::particle_quality_sets_how_many_bubbles_rise",
    ),
    (
        "graphics.fpsCap",
        "lib client::tank_fx::tests::the_frame_cap_sets_the_shortest_frame",
    ),
    (
        "graphics.qualityLevel",
        "lib assets::client::tests::the_quality_level_is_the_level_assets_load_at",
    ),
    (
        "graphics.shadows",
        "lib client::render::tests::shadows_and_ui_scale_follow_their_keys",
    ),
    (
        "ui.scale",
        "lib client::render::tests::shadows_and_ui_scale_follow_their_keys",
    ),
    (
        "ui.showFps",
        "lib client::ui::tests::the_overlay_at_start_and_the_toast_time_follow_their_keys",
    ),
    (
        "ui.toastSeconds",
        "lib client::ui::tests::the_overlay_at_start_and_the_toast_time_follow_their_keys",
    ),
    // security.*
    (
        "security.sessionTimeout",
        "it security::an_idle_session_expires_even_with_heartbeats",
    ),
    (
        "security.maxFailedAttempts",
        "it keys::strikes_kick_by_the_configured_count_within_the_configured_window",
    ),
    (
        "security.rateLimitWindow",
        "it keys::strikes_kick_by_the_configured_count_within_the_configured_window",
    ),
    (
        "security.rateLimits.chat",
        "it keys::each_rate_limit_key_sets_its_classes_rate",
    ),
    (
        "security.rateLimits.config",
        "it keys::each_rate_limit_key_sets_its_classes_rate",
    ),
    (
        "security.rateLimits.call",
        "it keys::each_rate_limit_key_sets_its_classes_rate",
    ),
    (
        "security.rateLimits.background",
        "it keys::each_rate_limit_key_sets_its_classes_rate",
    ),
    (
        "security.rateLimits.purchase",
        "it keys::each_rate_limit_key_sets_its_classes_rate",
    ),
    (
        "security.kicksBeforeBan",
        "it keys::kicks_ban_by_the_configured_count_window_and_length",
    ),
    (
        "security.banWindow",
        "it keys::kicks_ban_by_the_configured_count_window_and_length",
    ),
    (
        "security.banLength",
        "it keys::kicks_ban_by_the_configured_count_window_and_length",
    ),
    (
        "security.maxClockSkew",
        "it keys::network::a_clock_past_the_configured_skew_is_suspicious",
    ),
    (
        "security.connectAttemptsPerSecond",
        "it keys::network::connection_requests_refill_at_the_configured_rate",
    ),
    (
        "login.argon2MemoryKiB",
        "lib accounts::tests::the_login_keys_set_the_hash_parameters",
    ),
    (
        "login.argon2Iterations",
        "lib accounts::tests::the_login_keys_set_the_hash_parameters",
    ),
    (
        "login.argon2Parallelism",
        "lib accounts::tests::the_login_keys_set_the_hash_parameters",
    ),
    (
        "login.freeFailures",
        "lib accounts::login::tests::the_login_keys_set_the_policy",
    ),
    (
        "login.backoffBaseMs",
        "lib accounts::login::tests::the_login_keys_set_the_policy",
    ),
    (
        "login.backoffMaxSeconds",
        "lib accounts::login::tests::the_login_keys_set_the_policy",
    ),
    (
        "login.accountDelayMaxMs",
        "lib accounts::login::tests::the_login_keys_set_the_policy",
    ),
    (
        "login.requestDeadlineMs",
        "lib accounts::login::tests::the_login_keys_set_the_policy",
    ),
    (
        "login.maxConnections",
        "lib accounts::login::tests::the_login_keys_set_the_policy",
    ),
    (
        "login.maxConnectionsPerAddress",
        "lib accounts::login::tests::the_login_keys_set_the_policy",
    ),
    (
        "login.refreshTokenHours",
        "lib accounts::login::tests::the_login_keys_set_the_policy",
    ),
    (
        "security.connectAttemptsBurst",
        "it security::connection_floods_from_one_address_are_refused_while_others_connect",
    ),
    (
        "security.enableLogging",
        "it security::the_audit_log_can_be_switched_off_and_on_live",
    ),
    (
        "security.auditRetention",
        "it keys::audit_records_older_than_the_retention_are_dropped_at_start",
    ),
    (
        "security.adminContact",
        "it health::health_and_metrics_over_http_follow_a_degrading_data_store",
    ),
    // network.*
    (
        "network.maxConcurrentConnections",
        "it keys::network::the_server_holds_the_configured_number_of_clients",
    ),
    (
        "network.messageTimeout",
        "it keys::network::calls_time_out_after_the_servers_message_timeout",
    ),
    (
        "network.tokenExpiry",
        "it keys::network::tokens_expire_and_silent_clients_drop_by_the_configured_times",
    ),
    (
        "network.connectionTimeout",
        "it keys::network::tokens_expire_and_silent_clients_drop_by_the_configured_times",
    ),
    (
        "network.clientSendRate",
        "it keys::network::the_client_sends_at_the_servers_send_rate",
    ),
    (
        "network.rekeyAfter",
        "it keys::network::the_server_rekeys_after_the_configured_number_of_messages",
    ),
    // performance.*, health.*
    (
        "performance.targetFPS",
        "lib assets::client::tests::the_target_frame_rate_sets_when_frames_are_too_slow",
    ),
    (
        "performance.maxMemoryUsage",
        "lib assets::client::tests::the_memory_budget_sets_when_memory_is_too_high",
    ),
    (
        "performance.enableMonitoring",
        "it health::monitoring_can_be_switched_off_and_on_live",
    ),
    (
        "performance.logInterval",
        "it keys::timing::the_performance_report_comes_at_the_configured_interval",
    ),
    (
        "health.checkInterval",
        "it keys::timing::health_checks_run_at_the_configured_interval",
    ),
    // reconcile.*
    (
        "reconcile.interval",
        "it reconcile::the_integrity_sweep_catches_a_record_altered_behind_the_servers_back",
    ),
    (
        "reconcile.strategy.profile",
        "it reconcile::under_manual_a_conflict_waits_for_an_admin_who_settles_it_over_the_network",
    ),
    (
        "reconcile.maxOperations",
        "it keys::the_operation_log_keeps_the_configured_number",
    ),
    // assetManager.*
    (
        "assetManager.maxCacheSize",
        "it assets::the_cache_follows_the_servers_bound_and_evicts_the_least_recent",
    ),
    (
        "assetManager.preloadBatchSize",
        "it assets::the_rest_streams_in_batches_of_the_configured_size",
    ),
    (
        "assetManager.enableStreaming",
        "it assets::with_streaming_off_nothing_streams_after_the_critical_set",
    ),
    (
        "assetManager.enableQualityScaling",
        "lib assets::client::tests::quality_scaling_follows_its_key",
    ),
    (
        "assetManager.quality.models",
        "lib assets::client::tests::each_kind_loads_at_its_own_default_quality",
    ),
    (
        "assetManager.quality.textures",
        "lib assets::client::tests::each_kind_loads_at_its_own_default_quality",
    ),
    (
        "assetManager.quality.sounds",
        "lib assets::client::tests::each_kind_loads_at_its_own_default_quality",
    ),
    (
        "assetManager.preload.critical",
        "lib assets::manifest::tests::the_preload_lists_set_each_assets_priority",
    ),
    (
        "assetManager.preload.high",
        "lib assets::manifest::tests::the_preload_lists_set_each_assets_priority",
    ),
    (
        "assetManager.preload.medium",
        "lib assets::manifest::tests::the_preload_lists_set_each_assets_priority",
    ),
    // datastore.*
    (
        "datastore.autosaveInterval",
        "it datastore::plugin_autosaves_on_the_configured_interval",
    ),
    (
        "datastore.backupInterval",
        "it keys::network::backups_follow_the_configured_interval_and_retention",
    ),
    (
        "datastore.backupRetention",
        "it keys::network::backups_follow_the_configured_interval_and_retention",
    ),
    (
        "datastore.lockStaleAfter",
        "it reconcile::two_servers_racing_on_one_profile_lose_nothing",
    ),
    (
        "datastore.saveQueueMax",
        "it datastore::storage_down_keeps_departed_players_saves_caps_the_queue_and_recovers",
    ),
    (
        "datastore.versionsKeep",
        "it keys::store::the_store_keeps_the_configured_number_of_versions",
    ),
    (
        "datastore.versionsMaxAge",
        "it keys::store::versions_older_than_the_configured_age_are_pruned",
    ),
    // config.*
    (
        "config.reloadPollInterval",
        "it keys::timing::edits_are_seen_at_the_configured_poll_interval",
    ),
    // The aquarium's keys (src/game/keys.ron).
    (
        "game.startingCoins",
        "lib game::data::tests::a_new_profile_starts_with_the_configured_coins",
    ),
    (
        "game.fishPrices",
        "lib game::rules::economy::tests::the_game_keys_set_prices_capacity_income_and_refund",
    ),
    (
        "game.fishIncomePerSecond",
        "lib game::rules::economy::tests::the_game_keys_set_prices_capacity_income_and_refund",
    ),
    (
        "game.tankUpgradePrices",
        "lib game::rules::economy::tests::the_game_keys_set_prices_capacity_income_and_refund",
    ),
    (
        "game.tankCapacity",
        "lib game::rules::economy::tests::the_game_keys_set_prices_capacity_income_and_refund",
    ),
    (
        "game.hungerPerMinute",
        "it game::fish_get_hungry_at_the_configured_rate",
    ),
    (
        "game.decorationPrices",
        "lib game::rules::economy::tests::the_game_keys_set_prices_capacity_income_and_refund",
    ),
    (
        "game.sellRefund",
        "lib game::rules::economy::tests::the_game_keys_set_prices_capacity_income_and_refund",
    ),
    (
        "game.tradeCommitWait",
        "it postgres::servers::a_trade_whose_leading_server_dies_is_called_off_by_the_other",
    ),
    (
        "game.offlineEarningsCapHours",
        "lib game::rules::away::tests::the_coming_back_keys_set_the_rules",
    ),
    (
        "game.dailyRewards",
        "lib game::rules::away::tests::the_coming_back_keys_set_the_rules",
    ),
    (
        "game.dailyResetHourUtc",
        "lib game::rules::away::tests::the_coming_back_keys_set_the_rules",
    ),
    // The room's keys (examples/room/keys.ron).
    (
        "room.bumpStep",
        "it room::a_second_game_chats_counts_persists_and_keeps_its_own_rules",
    ),
    (
        "room.startCounter",
        "it room::a_second_game_chats_counts_persists_and_keeps_its_own_rules",
    ),
    (
        "room.welcome",
        "it room::a_second_game_chats_counts_persists_and_keeps_its_own_rules",
    ),
];

/// The test names this test binary lists (`--list`), without the ": test" suffix.
pub fn tests_of_this_binary() -> std::collections::BTreeSet<String> {
    let out = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--list", "--format", "terse"])
        .output()
        .expect("list the tests");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_string)
        .collect()
}
