//! banxdp reads action.d files and turns them into commands as fail2ban 1.0.2 does: its own
//! files give the same `fail2ban-client -d` stream, and every Debian action file gives, for
//! the same ban, the command fail2ban's `CommandAction` builds.

mod action_support;

use std::{path::Path, time::Duration};

use action_support::{DEBIAN, context, ours, read_jail};
use banxdp::{
    action::{BanInfo, Context},
    config::fail2ban::Disk,
    enforce::parse_target,
};

/// banxdp's action files read the same in fail2ban and in banxdp: every operation and
/// parameter of `fail2ban-client -d` equals banxdp's stream for a jail using each file.
#[test]
fn banxdp_action_files_read_as_fail2ban_reads_them() {
    use serde_json::Value as Json;
    use std::fmt::Write as _;
    if !banxdp_tests::fail2ban_present(
        "banxdp_action_files_read_as_fail2ban_reads_them",
        "fail2ban-client",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::create_dir_all(base.join("filter.d")).unwrap();
    std::fs::write(
        base.join("filter.d/x.conf"),
        "[Definition]\nfailregex = ^x <HOST>$\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(ours(), base.join("action.d")).unwrap();
    let mut jails = String::new();
    let mut files: Vec<String> = std::fs::read_dir(ours())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| f.strip_suffix(".conf").map(str::to_string))
        .collect();
    files.sort();
    for (i, file) in files.iter().enumerate() {
        let _ = write!(
            jails,
            "[j{i}]\nenabled = true\nfilter = x\nlogpath = /dev/null\nport = ssh,2222\naction = {file}[protocol=\"tcp,udp\"]\n\n"
        );
    }
    std::fs::write(base.join("jail.conf"), jails).unwrap();
    let out = std::process::Command::new("fail2ban-client")
        .arg("-c")
        .arg(base)
        .arg("-d")
        .output()
        .unwrap();
    let to_json = "import ast, json, sys\nfor line in sys.stdin:\n    if line.startswith('['):\n        print(json.dumps(ast.literal_eval(line)))\n";
    let theirs: Vec<Json> = String::from_utf8(banxdp_tests::python(to_json, out.stdout))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ours = banxdp::config::dump_stream(&Disk, base).unwrap().stream;
    let jail_part = |stream: &[Json]| -> Vec<Json> {
        let first = stream.iter().position(|c| c[0] == "add").expect("jails");
        stream[first..].to_vec()
    };
    let (theirs, ours) = (jail_part(&theirs), jail_part(&ours));
    assert_eq!(theirs.len(), files.len() * 6, "{theirs:#?}");
    for (a, b) in theirs.iter().zip(&ours) {
        assert_eq!(a, b);
    }
    assert_eq!(theirs.len(), ours.len());
}

/// fail2ban's `CommandAction`, given the same properties: the commands of `ops` for an IPv4
/// and an IPv6 ban, and for the start-like operations per family. Host names are fixed.
const FAIL2BAN_COMMANDS: &str = r"
import json, sys
from fail2ban.server.ipdns import DNSUtils, IPAddr
DNSUtils.getHostname = staticmethod(lambda fqdn=True: 'gw.example.org' if fqdn else 'gw')
from fail2ban.server.action import CommandAction
out = []
for case in json.load(sys.stdin):
    a = CommandAction(None, case['name'])
    for k, v in case['props'].items():
        setattr(a, k, v)
    res = {}
    for fam, ip in (('inet4', '192.0.2.7'), ('inet6', '2001:db8::7')):
        rev = IPAddr(ip).getPTR('')
        # banxdp leaves `<ip-host>` empty where fail2ban would write `None`.
        info = {'ip': ip, 'family': fam, 'ip-rev': rev, 'ip-host': '', 'fid': ip, 'failures': '3',
                'ipfailures': '3', 'ipjailfailures': '3', 'time': '1000.0', 'bantime': '600',
                'bancount': '1', 'restored': '0', 'matches': 'm1', 'ipmatches': 'm1',
                'ipjailmatches': 'm1', 'F-*': {'user': 'root'}}
        for op in ('actionban', 'actionunban'):
            cmd = a.replaceTag('<%s>' % op, a._properties, conditional='family=' + fam)
            res['%s/%s' % (op, fam)] = a.replaceDynamicTags(cmd, info)
        for op in ('actionstart', 'actionstop', 'actionflush', 'actioncheck'):
            res['%s/%s' % (op, fam)] = a._getOperation('<%s>' % op, fam)
    out.append(res)
print(json.dumps(out))
";

/// Runs `script` with the Python that runs fail2ban (`fail2ban-client`'s `#!` line), which
/// may not be the first `python3` on `PATH`.
fn fail2ban_python(script: &str, input: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let client = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join("fail2ban-client"))
        .find(|p| p.exists())
        .expect("fail2ban-client on PATH");
    let text = std::fs::read_to_string(client).unwrap();
    let python = text
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("#!")
        .trim()
        .to_string();
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The script reads everything before it writes: no deadlock writing first.
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "fail2ban's python failed");
    out.stdout
}

/// Every Debian action file, read by banxdp and turned into commands by banxdp, gives the
/// commands fail2ban's own `CommandAction` gives for the same ban (log-line values inert
/// here: escaping is tested above).
#[test]
fn debian_actions_give_the_commands_fail2ban_gives() {
    use banxdp::{
        action::{Action, Family},
        config::fail2ban::JailAction,
    };
    use serde_json::{Value as Json, json};
    if !banxdp_tests::fail2ban_present(
        "debian_actions_give_the_commands_fail2ban_gives",
        "fail2ban-client",
    ) {
        return;
    }
    let mut names: Vec<String> = std::fs::read_dir(DEBIAN)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| f.strip_suffix(".conf").map(str::to_string))
        .filter(|n| !n.ends_with("-common") && n != "helpers-common")
        .collect();
    names.sort();
    assert!(
        names.len() > 40,
        "Debian ships more action files: {names:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    let ctx = Context {
        clock: || std::time::UNIX_EPOCH + Duration::from_secs(1000),
        ..context(None)
    };
    for name in &names {
        let sub = dir.path().join(name);
        let jail = read_jail(
            &sub,
            Path::new(DEBIAN),
            &format!("port = ssh,2222\naction = {name}"),
        );
        let JailAction::Command { options, .. } = &jail.actions[0] else {
            panic!("{name} is not a command action");
        };
        let props: serde_json::Map<String, Json> = options
            .iter()
            .map(|(k, v)| (k.clone(), json!(v.text())))
            .collect();
        cases.push(json!({"name": name, "props": props}));
        let mut action = Action::from_jail_action("t", &jail.actions[0])
            .unwrap()
            .unwrap();
        let mut mine = serde_json::Map::new();
        for (family, ip) in [(Family::Inet4, "192.0.2.7"), (Family::Inet6, "2001:db8::7")] {
            let mut info = BanInfo::new(
                parse_target(ip).unwrap(),
                std::time::UNIX_EPOCH + Duration::from_secs(1000),
            );
            info.failures = 3;
            info.bantime = 600;
            info.matches = vec!["m1".into()];
            info.fields.insert("user".into(), "root".into());
            for op in ["actionban", "actionunban"] {
                let script = action.script_for(op, family, Some(&info), &ctx).unwrap();
                mine.insert(format!("{op}/{}", family.as_str()), json!(script.text));
            }
            for op in ["actionstart", "actionstop", "actionflush", "actioncheck"] {
                let script = action.script_for(op, family, None, &ctx).unwrap();
                mine.insert(format!("{op}/{}", family.as_str()), json!(script.text));
            }
        }
        ours.push(Json::Object(mine));
    }
    let input = serde_json::to_vec(&cases).unwrap();
    let theirs: Vec<Json> =
        serde_json::from_slice(&fail2ban_python(FAIL2BAN_COMMANDS, &input)).unwrap();
    assert_eq!(theirs.len(), names.len());
    let mut differ = Vec::new();
    for ((name, a), b) in names.iter().zip(&theirs).zip(&ours) {
        for (key, value) in a.as_object().unwrap() {
            if b.get(key) != Some(value) {
                differ.push(format!(
                    "{name} {key}:\n  fail2ban: {value}\n  banxdp:   {}",
                    b.get(key).unwrap_or(&Json::Null)
                ));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "{} differences:\n{}",
        differ.len(),
        differ.join("\n")
    );
}
