//! The SSH gateway without a box: the userdb service over a real unix socket (NUL-framed
//! varlink, as nss-systemd speaks it), the session program handing sessions to `sc`, and
//! `sc NAME add-user|users|exec|sftp --login` on a scratch root.

// Tests may use the real file system, processes and clock directly (see clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Farm, Run};
use serde_json::{Value, json};

const GATEWAY: &str = env!("CARGO_BIN_EXE_srvctl-gateway");
const MACHINE_ID: &str = "0123456789abcdef0123456789abcdef";
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFjRQmCJBpVeSluiKI9w+6ECFhbpyo/5UJ8aBUxuyIRf bob@laptop";
const SERVICE: &str = "io.srvctl.Gateway";

/// alice, her user bob, bob's container web.ve (the record only), bob's public key and a
/// machine ID.
fn farm() -> Farm {
    let farm = Farm::new().with_alice_and_bob();
    farm.sc_ok(&["add-ve", "web.ve", "--user", "bob", "--no-start"]);
    farm.sc_ok(&["add-publickey", "bob", KEY]);
    std::fs::write(farm.join("etc/machine-id"), format!("{MACHINE_ID}\n")).unwrap();
    farm
}

/// `srvctl-gateway userdb --listen SOCKET` on the farm's datastore, killed when dropped.
struct Userdb {
    child: Child,
    socket: PathBuf,
}

impl Userdb {
    fn start(farm: &Farm, socket: &Path, idle: u64) -> Self {
        let child = farm
            .program(GATEWAY)
            .arg("userdb")
            .arg("--listen")
            .arg(socket)
            .arg("--root")
            .arg(farm.root())
            .arg("--idle")
            .arg(idle.to_string())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start srvctl-gateway userdb");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "the userdb socket never appeared"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            socket: socket.to_owned(),
        }
    }

    fn connect(&self) -> UnixStream {
        let stream = UnixStream::connect(&self.socket).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
    }
}

impl Drop for Userdb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send `calls`, each followed by NUL, in one write.
fn send(stream: &mut UnixStream, calls: &[Value]) {
    let mut bytes = Vec::new();
    for call in calls {
        bytes.extend(serde_json::to_vec(call).unwrap());
        bytes.push(0);
    }
    stream.write_all(&bytes).unwrap();
}

/// Read one NUL-terminated reply; `None` when the service closed the connection.
fn receive(stream: &mut UnixStream) -> Option<Value> {
    let mut message = Vec::new();
    let mut byte = [0u8];
    loop {
        if stream.read(&mut byte).unwrap() == 0 {
            assert!(message.is_empty(), "a reply cut short: {message:?}");
            return None;
        }
        if byte[0] == 0 {
            return Some(serde_json::from_slice(&message).expect("a JSON reply"));
        }
        message.push(byte[0]);
    }
}

fn get_user(parameters: Value) -> Value {
    json!({"method": "io.systemd.UserDatabase.GetUserRecord", "parameters": parameters})
}

fn no_record() -> Value {
    json!({"error": "io.systemd.UserDatabase.NoRecordFound", "parameters": {}})
}

#[test]
fn the_userdb_service_answers_varlink_calls_on_its_socket() {
    let farm = farm();
    let userdb = Userdb::start(&farm, &farm.tmp().join("userdb.sock"), 60);
    let bob_uid = farm.uid("bob");
    let mut stream = userdb.connect();
    // Two calls in one write, answered in order on one connection.
    send(
        &mut stream,
        &[
            get_user(json!({"userName": "bob_web.ve_www", "service": SERVICE})),
            get_user(json!({"uid": bob_uid, "service": SERVICE})),
        ],
    );
    let found = receive(&mut stream).unwrap();
    assert_eq!(
        found,
        json!({"parameters": {"record": {
            "userName": "bob_web.ve_www", "uid": bob_uid, "gid": bob_uid,
            "homeDirectory": "/home/bob", "shell": "/bin/sh", "disposition": "regular",
            "status": {MACHINE_ID: {"service": SERVICE}},
        }, "incomplete": false}})
    );
    assert_eq!(receive(&mut stream).unwrap(), no_record(), "no UID lookups");
    // An account added while the service runs can log in at once.
    let carol = get_user(json!({"userName": "carol_web.ve_root", "service": SERVICE}));
    send(&mut stream, std::slice::from_ref(&carol));
    assert_eq!(receive(&mut stream).unwrap(), no_record());
    farm.sc_ok(&["add-user", "carol"]);
    send(&mut stream, &[carol]);
    let found = receive(&mut stream).unwrap();
    assert_eq!(
        found["parameters"]["record"]["userName"],
        "carol_web.ve_root"
    );
    // Enumeration, groups, memberships, another service; a oneway call gets no reply.
    let calls = [
        json!({"method": "io.systemd.UserDatabase.GetUserRecord", "parameters": {"service": SERVICE}, "more": true}),
        json!({"method": "io.systemd.UserDatabase.GetGroupRecord", "parameters": {"groupName": "bob", "service": SERVICE}}),
        json!({"method": "io.systemd.UserDatabase.GetMemberships", "parameters": {"userName": "bob_web.ve_www", "service": SERVICE}, "more": true}),
        json!({"method": "io.systemd.UserDatabase.GetUserRecord", "parameters": {"userName": "bob_web.ve_www", "service": "io.systemd.Multiplexer"}, "oneway": true}),
        get_user(json!({"userName": "bob_web.ve_www", "service": "io.systemd.Multiplexer"})),
    ];
    send(&mut stream, &calls);
    for _ in 0..3 {
        assert_eq!(receive(&mut stream).unwrap(), no_record());
    }
    assert_eq!(
        receive(&mut stream).unwrap(),
        json!({"error": "io.systemd.UserDatabase.BadService", "parameters": {}})
    );
    // Something that is not a call ends the connection; the service serves the next one.
    stream.write_all(b"not json\0").unwrap();
    assert_eq!(receive(&mut stream), None);
    let mut stream = userdb.connect();
    stream.write_all(&vec![b'x'; 70 * 1024]).unwrap();
    assert_eq!(
        receive(&mut stream),
        None,
        "a message too long ends the connection"
    );
    let mut stream = userdb.connect();
    send(
        &mut stream,
        &[get_user(
            json!({"userName": "root_web.ve_root", "service": SERVICE}),
        )],
    );
    assert_eq!(
        receive(&mut stream).unwrap()["parameters"]["record"]["uid"],
        0
    );
}

#[test]
fn the_userdb_service_exits_after_its_idle_time() {
    let farm = farm();
    let mut userdb = Userdb::start(&farm, &farm.tmp().join("userdb.sock"), 1);
    drop(userdb.connect());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = userdb.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "still running after 15 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_userdb_service_needs_a_machine_id() {
    let farm = Farm::new();
    let socket = farm.tmp().join("userdb.sock");
    let run = Run::from_output(
        farm.program(GATEWAY)
            .arg("userdb")
            .arg("--listen")
            .arg(&socket)
            .arg("--root")
            .arg(farm.root())
            .output()
            .unwrap(),
    );
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(run.stderr.contains("machine ID"), "{run:?}");
    assert!(!socket.exists(), "no socket left behind");
}

/// The session program as sshd runs it for `login`, with `command` as the client's command
/// and the farm's `sc` (under its root) on the PATH.
fn session(farm: &Farm, login: &str, command: Option<&str>) -> Run {
    let bin_dir = Path::new(common::SC).parent().unwrap();
    let path = format!("{}:/usr/bin:/bin", bin_dir.display());
    let mut cmd = farm.program(GATEWAY);
    cmd.arg("session")
        .env("USER", login)
        .env("SRVCTL_ROOT", farm.root())
        .env("PATH", path)
        .env_remove("SSH_ORIGINAL_COMMAND");
    if let Some(command) = command {
        cmd.env("SSH_ORIGINAL_COMMAND", command);
    }
    Run::from_output(cmd.output().unwrap())
}

#[test]
fn a_session_is_handed_to_sc_as_the_login_inside_the_container() {
    let farm = farm();
    let run = session(&farm, "bob_web.ve_root", Some("hostname; exit 3"));
    assert!(run.success(), "{run:?}");
    assert!(
        run.stderr
            .contains("would run: systemd-run --machine=web.ve --uid=root")
            && run.stderr.contains(" -- sh -c hostname; exit 3"),
        "{run:?}"
    );
    let run = session(&farm, "bob_web.ve_www", None);
    assert!(
        run.stderr
            .contains("would run: machinectl shell www@web.ve"),
        "{run:?}"
    );
    // sftp: the container's own sftp-server, as the login.
    let run = session(&farm, "bob_web.ve_www", Some("srvctl-gateway-sftp"));
    assert_eq!(run.code, Some(11), "{run:?}");
    assert!(run.stderr.contains("has no sftp-server"), "{run:?}");
    let server = farm.join("var/lib/machines/web.ve/usr/lib/openssh/sftp-server");
    std::fs::create_dir_all(server.parent().unwrap()).unwrap();
    std::fs::write(&server, "").unwrap();
    let run = session(&farm, "bob_web.ve_www", Some("srvctl-gateway-sftp"));
    assert!(
        run.stderr.contains("--uid=www") && run.stderr.contains("-- /usr/lib/openssh/sftp-server"),
        "{run:?}"
    );
}

#[test]
fn a_session_for_an_unknown_account_container_or_a_malformed_login_is_refused_in_one_line() {
    let farm = farm();
    let before = farm.datastore_bytes();
    let run = session(&farm, "bob_web.ve_deploy", Some("id"));
    assert_eq!(run.code, Some(3));
    assert_eq!(
        run.refused(),
        "sc: error: container web.ve has no account deploy; its accounts: root, www (add one with `sc web.ve add-user LOGIN`)"
    );
    let run = session(&farm, "bob_nope.ve_root", None);
    assert_eq!(run.code, Some(3));
    assert!(
        run.refused().contains("no container named nope.ve"),
        "{run:?}"
    );
    for malformed in ["bob", "bob_web.ve", "bob_Web.ve_root", "bob_web.ve_a:b"] {
        let run = session(&farm, malformed, Some("id"));
        assert_eq!(run.code, Some(1), "{malformed}: {run:?}");
        assert!(run.stdout.is_empty());
        assert_eq!(run.stderr.lines().count(), 1, "{malformed}: {run:?}");
        assert!(
            run.stderr
                .starts_with("srvctl-gateway: error: gateway login")
                || run.stderr.contains("USER_CONTAINER_LOGIN"),
            "{malformed}: {run:?}"
        );
        assert!(!run.stderr.contains("would run"), "{malformed}: {run:?}");
    }
    assert_eq!(farm.datastore_bytes(), before);
    farm.sc_ok(&["web.ve", "add-user", "deploy"]);
    let run = session(&farm, "bob_web.ve_deploy", Some("id"));
    assert!(run.stderr.contains("--uid=deploy"), "{run:?}");
}

#[test]
fn add_user_lists_an_account_inside_and_creates_it_with_the_owners_keys() {
    let farm = farm();
    assert_eq!(farm.sc_ok(&["web.ve", "users"]), "root\nwww\n");
    let run = farm.sc(&["web.ve", "add-user", "deploy"]);
    assert_eq!(run.ok(), "web.ve: account deploy added\n");
    assert!(
        run.stderr
            .contains("would run: systemd-run --machine=web.ve --uid=root")
            && run
                .stderr
                .contains(&format!("srvctl-add-user deploy {KEY}")),
        "{run:?}"
    );
    assert_eq!(
        farm.datastore_json()["containers"]["web.ve"]["logins"],
        json!(["deploy"])
    );
    assert_eq!(farm.sc_ok(&["web.ve", "users"]), "root\nwww\ndeploy\n");
    let listed: Value = serde_json::from_str(&farm.sc_ok(&["--json", "web.ve", "users"])).unwrap();
    assert_eq!(listed, json!(["root", "www", "deploy"]));
    let audit = farm.audit_records();
    let last = audit.last().unwrap();
    let command = last["command"].as_array().unwrap();
    assert_eq!(
        command[command.len() - 3..],
        [json!("web.ve"), json!("add-user"), json!("deploy")]
    );
    assert_eq!(last["outcome"], "ok");
    let run = farm.sc(&["web.ve", "exec", "--login", "deploy", "--", "id", "-u"]);
    assert!(
        run.stderr.contains("--uid=deploy") && run.stderr.ends_with("-- id -u\n"),
        "{run:?}"
    );
}

#[test]
fn refused_add_user_and_logins_leave_the_datastore_byte_for_byte() {
    let farm = farm();
    farm.sc_ok(&["web.ve", "add-user", "deploy"]);
    let before = farm.json_files();
    let cases: [(&[&str], i32, &str); 11] = [
        (
            &["web.ve", "add-user", "deploy"],
            4,
            "login deploy@web.ve already exists",
        ),
        (
            &["web.ve", "add-user", "root"],
            5,
            "every container has it already",
        ),
        (
            &["web.ve", "add-user", "www"],
            5,
            "every container has it already",
        ),
        (
            &["web.ve", "add-user", "www-data"],
            5,
            "reserved for the system",
        ),
        (
            &["web.ve", "add-user", "de_ploy"],
            5,
            "use only lower-case letters",
        ),
        (
            &["web.ve", "add-user", "a\nb"],
            5,
            "use only lower-case letters",
        ),
        (
            &["nope.ve", "add-user", "deploy"],
            3,
            "no container named nope.ve",
        ),
        (&["web.ve", "add-user"], 2, "unknown command"),
        (&["web.ve", "add-user", "a", "b"], 2, "unknown command"),
        (
            &["web.ve", "shell", "--login", "nobody"],
            3,
            "has no account nobody",
        ),
        (
            &["web.ve", "exec", "--login", "Root", "id"],
            5,
            "container login name",
        ),
    ];
    for (args, code, words) in cases {
        let run = farm.sc(args);
        assert_eq!(run.code, Some(code), "{args:?}: {run:?}");
        assert!(run.refused().contains(words), "{args:?}: {run:?}");
        assert_eq!(farm.json_files(), before, "{args:?} changed the datastore");
    }
}
