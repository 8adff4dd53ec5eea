//! The `data/` and `vm-data/` pools against the REAL xenstored, checked
//! with the real `xenstore-read` / `xenstore-write`.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{Env, HOME, RecordingPower, eventually, fixed_info};
use xenbus::GuestConfig;

#[test]
fn data_keys_are_published_as_the_guest_agent_does() {
    let env = Env::start();
    let mut config = GuestConfig::default();
    config.data.period = Duration::from_millis(100);
    let guest = env.guest_services(Arc::new(RecordingPower::default()), config);
    let info = fixed_info();
    let expected = [
        ("os_name", info.os_name.clone()),
        ("os_distro", info.os_distro.clone()),
        ("os_majorver", "1".into()),
        ("os_minorver", "2".into()),
        ("os_uname", info.os_uname.clone()),
        ("meminfo_total", "262144".into()),
        ("meminfo_free", "131072".into()),
        ("uptime", "42".into()),
        ("updated", "1".into()),
    ];
    eventually("data/updated published", || {
        env.cli_read(&format!("{HOME}/data/updated")).is_some()
    });
    for (key, value) in &expected {
        let node = format!("{HOME}/data/{key}");
        assert_eq!(
            env.cli_read(&node).as_deref(),
            Some(value.as_str()),
            "{node}"
        );
    }
    // Refreshed on its period; nothing changed, so nothing is rewritten.
    let before = guest.data().status().handled;
    eventually("a few periods pass", || {
        guest.data().status().handled >= before + 3
    });
    assert_eq!(
        env.cli_read(&format!("{HOME}/data/updated")).as_deref(),
        Some("1")
    );
    // A value the host removed comes back after `republish`.
    env.cli_rm(&format!("{HOME}/data/os_name"));
    guest.data().republish();
    eventually("republished", || {
        env.cli_read(&format!("{HOME}/data/os_name")).as_deref() == Some(info.os_name.as_str())
    });
    // data/updated is written after the values.
    eventually("data/updated moves", || {
        env.cli_read(&format!("{HOME}/data/updated")).as_deref() == Some("2")
    });
    assert_eq!(guest.data().status().last_error, None);
}

#[test]
fn vm_data_written_on_the_host_is_seen_by_the_guest() {
    let env = Env::start();
    let guest = env.guest_services(Arc::new(RecordingPower::default()), GuestConfig::default());
    let pool = guest.vm_data();
    eventually("first read done", || pool.status().handled >= 1);
    assert!(pool.snapshot().is_empty());

    let seen = pool.generation();
    env.cli_write(&format!("{HOME}/vm-data/greeting"), "hello");
    assert!(pool.wait_changed(seen, Duration::from_secs(10)) > seen);
    eventually("greeting seen", || {
        pool.get("greeting").as_deref() == Some(&b"hello"[..])
    });

    env.cli_write(&format!("{HOME}/vm-data/net/mtu"), "1500");
    eventually("nested key seen", || {
        pool.get("net/mtu").as_deref() == Some(&b"1500"[..])
    });
    let snapshot = pool.snapshot();
    assert_eq!(snapshot.keys().collect::<Vec<_>>(), ["greeting", "net/mtu"]);

    env.cli_rm(&format!("{HOME}/vm-data/greeting"));
    eventually("removal seen", || pool.get("greeting").is_none());
    assert_eq!(pool.get("net/mtu").as_deref(), Some(&b"1500"[..]));
}
