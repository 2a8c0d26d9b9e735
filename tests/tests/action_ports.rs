//! A jail's ban covers the ports of its firewall actions (issue 15), end to end: a
//! `jail.local` on top of the installed /etc/fail2ban is read as the daemon reads it, the
//! jail's scope goes to a real backend in a namespace this test creates, and real packets
//! show the action's port dropped while the jail's own port passes (needs root). Beside
//! them: the parameters each action is scoped from are those `fail2ban-client -d` hands it,
//! and `banxdp dump` shows the scopes. All need /etc/fail2ban for the action files.

use banxdp::{
    config::{dump_stream, fail2ban::Disk, jails::JailConfig},
    enforce::{
        Enforcer, JailScope,
        exec::Executor,
        nftables::{NftEnforcer, NftOptions},
        xdp::{AttachMode, XdpEnforcer, XdpPlan},
    },
    jail::{Env, JailParams, Limits, Services},
};
use banxdp_tests::{Topology, ban_for, netns::IFACE, privileged, with_netns};

/// Banned by `web`, whose action bans tcp 8080 while the jail says 9090.
const WEB_BANNED: &str = "203.0.113.7";
/// Banned by `dns`, whose actions ban tcp 7070 and udp 6060.
const DNS_BANNED: &str = "203.0.113.8";
const BYSTANDER: &str = "203.0.113.9";

const JAIL_LOCAL: &str = r#"
[web]
enabled = true
filter = sshd
logpath = LOG
port = 9090
action = iptables-multiport[port="8080"]
         sendmail-whois[dest=root, port=9090]

[dns]
enabled = true
filter = sshd
logpath = LOG
port = 5353
action = iptables[port="7070", protocol=tcp]
         nftables[port=6060, protocol=udp, name=dns-udp]

[named]
enabled = true
filter = sshd
logpath = LOG
port = 2222
action = iptables-multiport[name=SSH]
"#;

/// A configuration directory: the installed action and filter files, `JAIL_LOCAL`; `None`
/// without /etc/fail2ban.
fn config_dir(test: &str) -> Option<tempfile::TempDir> {
    if !std::path::Path::new("/etc/fail2ban/action.d/iptables.conf").is_file() {
        eprintln!("{test}: skipped, no /etc/fail2ban");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let copied = std::process::Command::new("cp")
        .args(["-r", "/etc/fail2ban/action.d", "/etc/fail2ban/filter.d"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(copied.success());
    std::fs::write(dir.path().join("jail.conf"), "[DEFAULT]\n").unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, "").unwrap();
    let local = JAIL_LOCAL.replace("LOG", &log.display().to_string());
    std::fs::write(dir.path().join("jail.local"), local).unwrap();
    Some(dir)
}

/// `banxdp dump` shows each jail's scope as its actions make it.
#[test]
fn dump_shows_the_action_ports() {
    let Some(dir) = config_dir("dump_shows_the_action_ports") else {
        return;
    };
    let out = std::process::Command::new(banxdp_tests::daemon::bin())
        .arg("dump")
        .arg("--config-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |jail: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("[{jail}] enforced by ")))
            .unwrap_or_else(|| panic!("no enforcement line for {jail} in {text}"))
            .to_string()
    };
    assert!(
        line("web").contains(", tcp 8080; actions run as commands: sendmail-whois"),
        "{}",
        line("web")
    );
    assert!(
        line("dns").contains(", tcp 7070 and udp 6060; "),
        "{}",
        line("dns")
    );
}

/// fail2ban-client's Python literals, as JSON lines.
const TO_JSON: &str = r"
import ast, json, sys
for line in sys.stdin:
    if line.startswith('['):
        print(json.dumps(ast.literal_eval(line)))
";

/// The `port` and `protocol` banxdp scopes each action from are those `fail2ban-client -d`
/// hands the action, given or defaulted by its action.d file.
#[test]
fn action_parameters_are_those_fail2ban_hands_each_action() {
    use std::collections::BTreeMap;
    type Params = BTreeMap<(String, String), (Option<String>, Option<String>)>;
    let test = "action_parameters_are_those_fail2ban_hands_each_action";
    if !banxdp_tests::fail2ban_present(test, "fail2ban-client") {
        return;
    }
    let Some(dir) = config_dir(test) else { return };
    let out = std::process::Command::new("fail2ban-client")
        .arg("-c")
        .arg(dir.path())
        .arg("-d")
        .output()
        .unwrap();
    let mut theirs = Params::new();
    for line in String::from_utf8(banxdp_tests::python(TO_JSON, out.stdout))
        .unwrap()
        .lines()
    {
        let cmd: serde_json::Value = serde_json::from_str(line).unwrap();
        if cmd[0] != "multi-set" || cmd[2] != "action" {
            continue;
        }
        let get =
            |key: &str| {
                cmd[4].as_array().unwrap().iter().find_map(|pair| {
                    (pair[0] == key).then(|| pair[1].as_str().unwrap().to_string())
                })
            };
        let key = (
            cmd[1].as_str().unwrap().into(),
            cmd[3].as_str().unwrap().into(),
        );
        theirs.insert(key, (get("port"), get("protocol")));
    }
    let mut ours = Params::new();
    for jail in dump_stream(&Disk, dir.path()).unwrap().jails {
        for a in JailConfig::resolve(&jail).unwrap().actions {
            let value = |key| a.param(key).map(str::to_string);
            let entry = (value("port"), value("protocol"));
            ours.insert((jail.name.clone(), a.name.clone()), entry);
        }
    }
    assert_eq!(theirs.len(), 5, "{theirs:?}");
    assert_eq!(ours, theirs);
}

/// The scopes of the jails of `JAIL_LOCAL`, as the daemon builds them; `None` without
/// /etc/fail2ban.
fn scopes(test: &str) -> Option<Vec<JailScope>> {
    let dir = config_dir(test)?;
    let dump = dump_stream(&Disk, dir.path()).unwrap();
    let services = Services::parse(&std::fs::read_to_string("/etc/services").unwrap());
    let env = Env {
        services: &services,
        local_addrs: &[],
        resolve: &|_| Vec::new(),
        seed: 1,
        limits: Limits::default(),
    };
    let scopes = dump
        .jails
        .iter()
        .map(|j| {
            assert!(j.error.is_none(), "{:?}", j.error);
            let c = JailConfig::resolve(j).unwrap();
            JailParams::from_config(&c, &env).unwrap().scope()
        })
        .collect::<Vec<_>>();
    let shown: Vec<String> = scopes
        .iter()
        .map(|s| format!("{} {}", s.name, s.ports))
        .collect();
    // `named` gives its action no port: fail2ban hands it iptables.conf's `port = ssh`.
    assert_eq!(
        shown,
        ["web tcp 8080", "dns tcp 7070 and udp 6060", "named tcp 22"]
    );
    Some(scopes)
}

/// Bans through `e`, then checks packets: each jail's actions' ports dropped, the rest passing.
fn check(test: &str, t: &Topology, e: &mut dyn Enforcer, scopes: &[JailScope]) {
    for scope in scopes {
        e.add_jail(scope).unwrap();
    }
    e.ban_many(&[
        ban_for("web", WEB_BANNED, 600),
        ban_for("dns", DNS_BANNED, 600),
    ])
    .unwrap();
    let udp = |source, port| t.udp_delivered(source, port, 3);
    assert!(
        !t.tcp_connects(WEB_BANNED, 8080),
        "{test}: the action's port"
    );
    assert!(
        t.tcp_connects(WEB_BANNED, 9090),
        "{test}: the jail's port passes"
    );
    assert_eq!(udp(WEB_BANNED, 8080), 3, "{test}: the action says tcp");
    assert!(
        !t.tcp_connects(DNS_BANNED, 7070),
        "{test}: first action, tcp"
    );
    assert_eq!(udp(DNS_BANNED, 6060), 0, "{test}: second action, udp");
    assert_eq!(udp(DNS_BANNED, 7070), 3, "{test}: not udp 7070");
    assert!(t.tcp_connects(DNS_BANNED, 6060), "{test}: nor tcp 6060");
    assert!(
        t.tcp_connects(DNS_BANNED, 5353),
        "{test}: nor the jail's port"
    );
    assert!(t.tcp_connects(BYSTANDER, 8080), "{test}: bystander");
    assert_eq!(udp(BYSTANDER, 6060), 3, "{test}: bystander, udp");
}

#[test]
fn nftables_bans_the_action_ports() {
    let test = "nftables_bans_the_action_ports";
    if !privileged(test) {
        return;
    }
    let Some(scopes) = scopes(test) else { return };
    let t = Topology::new(&[WEB_BANNED, DNS_BANNED, BYSTANDER], &[]);
    let mut e = NftEnforcer::new(NftOptions {
        exec: Executor::in_netns(&t.victim.name),
        ..NftOptions::default()
    })
    .unwrap();
    check(test, &t, &mut e, &scopes);
    Box::new(e).detach().unwrap();
}

#[test]
fn xdp_bans_the_action_ports() {
    let test = "xdp_bans_the_action_ports";
    if !privileged(test) {
        return;
    }
    let Some(scopes) = scopes(test) else { return };
    let t = Topology::new(&[WEB_BANNED, DNS_BANNED, BYSTANDER], &[]);
    let plan = XdpPlan {
        interfaces: vec![IFACE.into()],
        mode: AttachMode::Auto,
        pin_dir: None,
        ..XdpPlan::default()
    };
    let mut e = with_netns(&t.victim, || XdpEnforcer::load(&plan)).expect("attach");
    check(test, &t, &mut e, &scopes);
}
