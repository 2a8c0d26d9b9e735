//! The hosts.deny backend on a temporary file: lines as fail2ban's action writes them, every
//! other byte kept (comments, foreign lines, CRLF, a missing final newline, the mode), lines
//! removed on unban and expiry, the allow list and shadow jails respected, and two writers at
//! once losing nothing. Needs no privileges.

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    time::{Duration, SystemTime},
};

use banxdp::enforce::{
    Enforcer, Expiry, JailScope, PortScope,
    hostsdeny::{HostsDenyEnforcer, HostsDenyOptions},
    parse_target,
};
use banxdp_tests::{all_ports, ban_for, ban_until};

const ORIGINAL: &str = "# /etc/hosts.deny: list of hosts that are _not_ allowed\r\n\
                        #\r\n\
                        ALL: 10.9.9.9\n\
                        sshd: 192.0.2.7 # written by hand, not ours\n\
                        \n\
                        vsftpd: [2001:db8::99]";

fn enforcer(path: &Path) -> HostsDenyEnforcer {
    let mut daemons = BTreeMap::new();
    daemons.insert("sshd".to_string(), "sshd".to_string());
    HostsDenyEnforcer::new(HostsDenyOptions {
        path: path.to_path_buf(),
        daemons,
        ..HostsDenyOptions::default()
    })
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

#[test]
fn bans_are_lines_and_everything_else_stays_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts.deny");
    fs::write(&path, ORIGINAL).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let mut e = enforcer(&path);
    e.add_jail(&all_ports("sshd")).unwrap();
    e.add_jail(&all_ports("web")).unwrap();
    e.ban_many(&[
        ban_for("sshd", "192.0.2.7", 600),
        ban_for("web", "2001:db8::7", 600),
        ban_for("web", "198.51.100.0/24", 600),
    ])
    .unwrap();
    assert_eq!(
        read(&path),
        format!(
            "{ORIGINAL}\nALL: 198.51.100.0/255.255.255.0\nALL: [2001:db8::7]\nsshd: 192.0.2.7\n"
        )
    );
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o640
    );
    // Banning again adds nothing.
    e.ban(&ban_for("sshd", "192.0.2.7", 900)).unwrap();
    assert_eq!(read(&path).matches("sshd: 192.0.2.7\n").count(), 1);

    for (jail, target) in [
        ("sshd", "192.0.2.7"),
        ("web", "2001:db8::7"),
        ("web", "198.51.100.0/24"),
    ] {
        e.unban(jail, parse_target(target).unwrap()).unwrap();
    }
    assert_eq!(read(&path).as_bytes(), format!("{ORIGINAL}\n").as_bytes());
    // Nothing left to remove: the file is not rewritten, not even its final newline.
    fs::write(&path, ORIGINAL).unwrap();
    e.unban("sshd", parse_target("192.0.2.7").unwrap()).unwrap();
    assert_eq!(read(&path), ORIGINAL);
    Box::new(e).detach().unwrap();
    assert_eq!(read(&path), ORIGINAL);
}

#[test]
fn two_jails_one_line_allow_list_shadow_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts.deny");
    fs::write(&path, "# kept\n").unwrap();
    let mut e = enforcer(&path);
    e.add_jail(&all_ports("a")).unwrap();
    e.add_jail(&all_ports("b")).unwrap();
    e.add_jail(&JailScope {
        name: "quiet".into(),
        ports: PortScope::All,
        shadow: true,
    })
    .unwrap();
    // Long enough for the steps before the sleep on a loaded machine.
    let soon = Expiry::At(SystemTime::now() + Duration::from_secs(4));
    e.ban_many(&[
        ban_for("a", "192.0.2.1", 600),
        ban_for("b", "192.0.2.1", 600),
        ban_for("quiet", "192.0.2.2", 600),
        ban_until("a", "192.0.2.3", soon),
    ])
    .unwrap();
    assert_eq!(read(&path), "# kept\nALL: 192.0.2.1\nALL: 192.0.2.3\n");
    e.unban("a", parse_target("192.0.2.1").unwrap()).unwrap();
    assert!(
        read(&path).contains("ALL: 192.0.2.1\n"),
        "`b` still bans it"
    );
    e.set_allowed(&[parse_target("192.0.2.0/24").unwrap()])
        .unwrap();
    assert_eq!(read(&path), "# kept\n");
    e.set_allowed(&[]).unwrap();
    std::thread::sleep(Duration::from_millis(4100));
    assert_eq!(e.remove_expired().unwrap(), 1);
    assert_eq!(read(&path), "# kept\nALL: 192.0.2.1\n");
}

#[test]
fn concurrent_writers_lose_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts.deny");
    fs::write(&path, "# shared\n").unwrap();
    let writers: Vec<_> = (0..4u8)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut e = enforcer(&path);
                e.add_jail(&all_ports("sshd")).unwrap();
                for i in 0..25u8 {
                    e.ban(&ban_for("sshd", &format!("192.0.{w}.{i}"), 600))
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let content = read(&path);
    assert!(content.starts_with("# shared\n"));
    assert_eq!(content.lines().count(), 1 + 100, "{content}");
}
