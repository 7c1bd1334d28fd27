//! The gateway's user records for sshd: a varlink service implementing
//! `io.systemd.UserDatabase` (systemd's User/Group Record Lookup API), bound at
//! `/run/systemd/userdb/io.srvctl.Gateway`, where nss-systemd (and systemd-userdbd's
//! multiplexer) asks it.
//!
//! It answers one question: `GetUserRecord` by `userName` for a well-formed gateway login
//! ([`Login`]) whose USER is a srvctl account, or `root` for the operator. The record has that
//! account's UID and GID, its home and `/bin/sh` (sshd runs the session program through it), so
//! sshd can check the account's keys and start the session as the account itself. Everything
//! else (UID lookups, enumeration, groups, memberships, any other name) is `NoRecordFound`,
//! answered without reading the datastore: the accounts' own records and groups come from
//! `/run/userdb`, and a UID always maps back to the account's own name.
//!
//! The protocol: each message is one JSON object followed by a NUL byte, over a unix stream
//! socket; a call is `{"method": …, "parameters": {…}, "more"?: bool, "oneway"?: bool}`, a
//! reply `{"parameters": {…}}` or `{"error": NAME, "parameters": {…}}`.

use crate::system::journal::{self, Priority};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::login::Login;
use crate::model::names::AccountName;
use crate::model::{OPERATOR, Owner};
use crate::store;
use crate::system::System;
use crate::system::paths::Paths;

/// The service name: the socket's file name in `/run/systemd/userdb`, and what every call's
/// `service` parameter must say.
pub const SERVICE: &str = "io.srvctl.Gateway";

/// Where the service listens.
pub const SOCKET: &str = "/run/systemd/userdb/io.srvctl.Gateway";

/// The longest call accepted; a longer one closes the connection.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// How long a connection may stay silent before it is closed.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

const INTERFACE: &str = "io.systemd.UserDatabase";
const NO_RECORD: &str = "io.systemd.UserDatabase.NoRecordFound";
const BAD_SERVICE: &str = "io.systemd.UserDatabase.BadService";
const NOT_AVAILABLE: &str = "io.systemd.UserDatabase.ServiceNotAvailable";
const CONFLICTING: &str = "io.systemd.UserDatabase.ConflictingRecordFound";
const NON_MATCHING: &str = "io.systemd.UserDatabase.NonMatchingRecordFound";
const METHOD_NOT_FOUND: &str = "org.varlink.service.MethodNotFound";
const INVALID_PARAMETER: &str = "org.varlink.service.InvalidParameter";

/// Where the service learns the UID and GID of an account, and which machine it answers for.
pub trait Directory {
    /// This machine's ID (32 hex digits): systemd's clients take a record only with a
    /// `status` section for their own machine that names the service.
    fn machine_id(&self) -> &str;
    /// The UID and GID of `account`, `None` when there is no such account; an error when the
    /// accounts cannot be read.
    fn ids(&self, account: &AccountName) -> Result<Option<(u32, u32)>, String>;
}

/// The accounts of the datastore, read afresh for every question (a new account can log in
/// at once).
pub struct Datastore<'a> {
    /// The machine (shared by the connections' threads).
    pub system: &'a (dyn System + Sync),
    /// Where the datastore is.
    pub paths: &'a Paths,
    /// This machine's ID ([`machine_id`]).
    pub machine_id: String,
}

/// This machine's ID, from `/etc/machine-id` (re-rooted under a scratch root).
pub fn machine_id(system: &dyn System, paths: &Paths) -> Result<String, String> {
    let path = paths.host("/etc/machine-id");
    let bytes = system
        .read(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .unwrap_or_default();
    let id = String::from_utf8_lossy(&bytes).trim().to_owned();
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id.to_ascii_lowercase())
    } else {
        Err(format!("{} holds no machine ID", path.display()))
    }
}

impl Directory for Datastore<'_> {
    fn machine_id(&self) -> &str {
        &self.machine_id
    }

    fn ids(&self, account: &AccountName) -> Result<Option<(u32, u32)>, String> {
        let state = store::read(self.system, self.paths).map_err(|e| e.to_string())?;
        Ok(state.users.get(account).map(|u| (u.uid, u.gid)))
    }
}

/// The user record of `login`, whose USER has `uid` and `gid`, on machine `machine_id`.
pub fn user_record(login: &Login, uid: u32, gid: u32, machine_id: &str) -> Value {
    let home = match &login.user {
        Owner::Operator => format!("/{OPERATOR}"),
        Owner::Account(a) => format!("/home/{a}"),
    };
    json!({
        "userName": login.to_string(),
        "uid": uid,
        "gid": gid,
        "homeDirectory": home,
        "shell": "/bin/sh",
        "disposition": "regular",
        "status": { machine_id: { "service": SERVICE } },
    })
}

/// A reply: its parameters, or an error with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A successful reply.
    Ok(Value),
    /// An error: its qualified name and parameters.
    Error(&'static str, Value),
}

impl Reply {
    fn error(name: &'static str) -> Self {
        Self::Error(name, json!({}))
    }

    fn invalid(parameter: &str) -> Self {
        Self::Error(INVALID_PARAMETER, json!({ "parameter": parameter }))
    }

    /// The message on the wire, without its NUL terminator.
    pub fn to_bytes(&self) -> Vec<u8> {
        let message = match self {
            Self::Ok(parameters) => json!({ "parameters": parameters }),
            Self::Error(name, parameters) => json!({ "error": name, "parameters": parameters }),
        };
        serde_json::to_vec(&message).expect("serialisable")
    }
}

/// A string parameter, if present; a value of another type is an invalid parameter.
fn string<'p>(parameters: &'p Map<String, Value>, key: &str) -> Result<Option<&'p str>, Reply> {
    match parameters.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Reply::invalid(key)),
    }
}

/// A numeric (UID) parameter, if present.
fn number(parameters: &Map<String, Value>, key: &str) -> Result<Option<u64>, Reply> {
    match parameters.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| Reply::invalid(key)),
    }
}

/// A list-of-strings parameter, if present.
fn strings(parameters: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, Reply> {
    match parameters.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|_| Reply::invalid(key)),
    }
}

/// Refuse a call meant for another service.
fn check_service(parameters: &Map<String, Value>) -> Result<(), Reply> {
    match string(parameters, "service")? {
        Some(SERVICE) => Ok(()),
        _ => Err(Reply::error(BAD_SERVICE)),
    }
}

/// Answer one method call.
pub fn call(method: &str, parameters: &Map<String, Value>, directory: &dyn Directory) -> Reply {
    let result = match method
        .strip_prefix(INTERFACE)
        .and_then(|m| m.strip_prefix('.'))
    {
        Some("GetUserRecord") => user(parameters, directory),
        Some("GetGroupRecord" | "GetMemberships") => {
            check_service(parameters).and(Err(Reply::error(NO_RECORD)))
        }
        _ => Err(Reply::Error(METHOD_NOT_FOUND, json!({ "method": method }))),
    };
    result.unwrap_or_else(|reply| reply)
}

/// `GetUserRecord`: by `userName` only; the datastore is read only for a well-formed login.
fn user(parameters: &Map<String, Value>, directory: &dyn Directory) -> Result<Reply, Reply> {
    check_service(parameters)?;
    let uid = number(parameters, "uid")?;
    let no_record = || Reply::error(NO_RECORD);
    let name = string(parameters, "userName")?.ok_or_else(no_record)?;
    let login = Login::parse(name).map_err(|_| no_record())?;
    let (own_uid, gid) = match &login.user {
        Owner::Operator => (0, 0),
        Owner::Account(account) => directory
            .ids(account)
            .map_err(|_| Reply::error(NOT_AVAILABLE))?
            .ok_or_else(no_record)?,
    };
    if uid.is_some_and(|uid| uid != u64::from(own_uid)) {
        return Err(Reply::error(CONFLICTING));
    }
    let record = user_record(&login, own_uid, gid, directory.machine_id());
    if !matches_filters(parameters, name, own_uid)? {
        return Err(Reply::error(NON_MATCHING));
    }
    Ok(Reply::Ok(json!({ "record": record, "incomplete": false })))
}

/// Whether a record (always of disposition `regular`) passes the call's secondary filters:
/// `fuzzyNames`, `dispositionMask`, `uidMin`, `uidMax`.
fn matches_filters(parameters: &Map<String, Value>, name: &str, uid: u32) -> Result<bool, Reply> {
    let fuzzy = strings(parameters, "fuzzyNames")?
        .is_none_or(|names| names.iter().any(|n| name.contains(&n.to_lowercase())));
    let disposition =
        strings(parameters, "dispositionMask")?.is_none_or(|d| d.iter().any(|d| d == "regular"));
    let uid = u64::from(uid);
    let min = number(parameters, "uidMin")?.is_none_or(|min| uid >= min);
    let max = number(parameters, "uidMax")?.is_none_or(|max| uid <= max);
    Ok(fuzzy && disposition && min && max)
}

/// What to do about one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Send this reply.
    Reply(Reply),
    /// Nothing: the call was `oneway`.
    Nothing,
    /// Close the connection: the message is not a varlink call.
    Close,
}

/// Answer one message (without its NUL terminator).
pub fn answer(message: &[u8], directory: &dyn Directory) -> Answer {
    let Ok(Value::Object(mut message)) = serde_json::from_slice::<Value>(message) else {
        return Answer::Close;
    };
    let Some(Value::String(method)) = message.remove("method") else {
        return Answer::Close;
    };
    let parameters = match message.remove("parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => return Answer::Reply(Reply::invalid("parameters")),
    };
    let reply = call(&method, &parameters, directory);
    if message.get("oneway").and_then(Value::as_bool) == Some(true) {
        Answer::Nothing
    } else {
        Answer::Reply(reply)
    }
}

/// Serve one connection: read calls (each ending in NUL) and write the replies, until the
/// peer closes, goes silent for 30 s, sends something that is not a call, or sends a call
/// longer than [`MAX_MESSAGE`].
pub fn serve_connection(stream: UnixStream, directory: &dyn Directory) -> std::io::Result<()> {
    stream.set_read_timeout(Some(CONNECTION_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut message = Vec::new();
    loop {
        message.clear();
        let limit = (MAX_MESSAGE + 1) as u64;
        reader.by_ref().take(limit).read_until(0, &mut message)?;
        if message.pop() != Some(0) {
            // End of stream, or a message too long.
            return Ok(());
        }
        match answer(&message, directory) {
            Answer::Close => return Ok(()),
            Answer::Nothing => {}
            Answer::Reply(reply) => {
                let mut bytes = reply.to_bytes();
                bytes.push(0);
                writer.write_all(&bytes)?;
            }
        }
    }
}

/// Serve connections on `listener`, each in its own thread, until no connection has come for
/// `idle` and none is open; then return (systemd's socket starts the service again on the next
/// connection).
pub fn serve<D: Directory + Sync>(
    listener: UnixListener,
    directory: &D,
    idle: Duration,
) -> std::io::Result<()> {
    let (streams, incoming) = std::sync::mpsc::channel();
    let accepting = listener.try_clone()?;
    // The accepting thread blocks in accept(); it ends with the process.
    std::thread::spawn(move || {
        for stream in accepting.incoming() {
            if streams.send(stream).is_err() {
                return;
            }
        }
    });
    let open = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        loop {
            match incoming.recv_timeout(idle) {
                Ok(Ok(stream)) => {
                    open.fetch_add(1, Ordering::SeqCst);
                    let open = &open;
                    scope.spawn(move || {
                        if let Err(e) = serve_connection(stream, directory) {
                            let said = format!("userdb connection: {e}");
                            journal::log(Priority::Warning, "srvctl-gateway", &said);
                        }
                        open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                Ok(Err(e)) => {
                    let said = format!("userdb accept: {e}");
                    journal::log(Priority::Error, "srvctl-gateway", &said);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if open.load(Ordering::SeqCst) == 0 {
                        return Ok(());
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::path::Path;

    use super::*;

    /// Accounts in a list; counts how often it was asked.
    #[derive(Default)]
    struct Accounts {
        asked: Cell<usize>,
        broken: bool,
    }

    const MACHINE: &str = "0123456789abcdef0123456789abcdef";

    impl Directory for Accounts {
        fn machine_id(&self) -> &str {
            MACHINE
        }

        fn ids(&self, account: &AccountName) -> Result<Option<(u32, u32)>, String> {
            self.asked.set(self.asked.get() + 1);
            if self.broken {
                return Err("unreadable".into());
            }
            Ok((account.as_str() == "bob").then_some((20257, 20257)))
        }
    }

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().expect("an object").clone()
    }

    fn get_user(accounts: &Accounts, v: Value) -> Reply {
        call(
            "io.systemd.UserDatabase.GetUserRecord",
            &params(v),
            accounts,
        )
    }

    fn error(name: &'static str) -> Reply {
        Reply::error(name)
    }

    #[test]
    fn a_gateway_login_of_an_account_gets_that_accounts_ids() {
        let accounts = Accounts::default();
        let reply = get_user(
            &accounts,
            json!({"userName": "bob_web.ve_www", "service": SERVICE}),
        );
        assert_eq!(
            reply,
            Reply::Ok(json!({
                "record": {
                    "userName": "bob_web.ve_www", "uid": 20257, "gid": 20257,
                    "homeDirectory": "/home/bob", "shell": "/bin/sh", "disposition": "regular",
                    "status": {MACHINE: {"service": SERVICE}},
                },
                "incomplete": false,
            }))
        );
        let reply = get_user(
            &accounts,
            json!({"userName": "bob_web.ve_www", "uid": 20257, "service": SERVICE}),
        );
        assert!(matches!(reply, Reply::Ok(_)), "{reply:?}");
    }

    #[test]
    fn the_operator_is_root_without_reading_the_datastore() {
        let accounts = Accounts::default();
        let Reply::Ok(reply) = get_user(
            &accounts,
            json!({"userName": "root_web.ve_root", "service": SERVICE}),
        ) else {
            panic!("no record")
        };
        let record = &reply["record"];
        assert_eq!(
            (record["uid"].as_u64(), record["gid"].as_u64()),
            (Some(0), Some(0))
        );
        assert_eq!(record["homeDirectory"], "/root");
        assert_eq!(accounts.asked.get(), 0);
    }

    #[test]
    fn everything_else_is_no_record_and_only_a_well_formed_login_reads_the_datastore() {
        let accounts = Accounts::default();
        for query in [
            json!({"uid": 20257, "service": SERVICE}),
            json!({"service": SERVICE}),
            json!({"userName": "bob", "service": SERVICE}),
            json!({"userName": "bob_web.ve", "service": SERVICE}),
            json!({"userName": "bob_Web.ve_root", "service": SERVICE}),
            json!({"userName": "bob_web.ve_ro\not", "service": SERVICE}),
            json!({"userName": "", "service": SERVICE}),
        ] {
            assert_eq!(
                get_user(&accounts, query.clone()),
                error(NO_RECORD),
                "{query}"
            );
        }
        assert_eq!(accounts.asked.get(), 0);
        let unknown = json!({"userName": "carol_web.ve_root", "service": SERVICE});
        assert_eq!(get_user(&accounts, unknown), error(NO_RECORD));
        assert_eq!(accounts.asked.get(), 1);
        for method in ["GetGroupRecord", "GetMemberships"] {
            for query in [
                json!({"groupName": "bob_web.ve_www", "service": SERVICE}),
                json!({"userName": "bob_web.ve_www", "service": SERVICE}),
                json!({"gid": 20257, "service": SERVICE}),
                json!({"service": SERVICE}),
            ] {
                let method = format!("io.systemd.UserDatabase.{method}");
                let reply = call(&method, &params(query), &accounts);
                assert_eq!(reply, error(NO_RECORD), "{method}");
            }
        }
        assert_eq!(accounts.asked.get(), 1);
    }

    #[test]
    fn a_call_for_another_service_is_a_bad_service() {
        let accounts = Accounts::default();
        for method in ["GetUserRecord", "GetGroupRecord", "GetMemberships"] {
            for query in [
                json!({"userName": "bob_web.ve_www"}),
                json!({"userName": "bob_web.ve_www", "service": "io.systemd.Multiplexer"}),
                json!({"userName": "bob_web.ve_www", "service": 7}),
            ] {
                let method = format!("io.systemd.UserDatabase.{method}");
                let reply = call(&method, &params(query.clone()), &accounts);
                assert!(
                    reply == error(BAD_SERVICE) || reply == Reply::invalid("service"),
                    "{method} {query}: {reply:?}"
                );
            }
        }
        assert_eq!(accounts.asked.get(), 0);
    }

    #[test]
    fn conflicts_filters_and_an_unreadable_datastore_have_their_errors() {
        let accounts = Accounts::default();
        let bob = |extra: Value| {
            let mut query = json!({"userName": "bob_web.ve_www", "service": SERVICE});
            query.as_object_mut().unwrap().extend(params(extra));
            get_user(&accounts, query)
        };
        assert_eq!(bob(json!({"uid": 0})), error(CONFLICTING));
        for filter in [
            json!({"dispositionMask": ["system"]}),
            json!({"uidMin": 30000}),
            json!({"uidMax": 1000}),
            json!({"fuzzyNames": ["carol"]}),
        ] {
            assert_eq!(bob(filter.clone()), error(NON_MATCHING), "{filter}");
        }
        for filter in [
            json!({"dispositionMask": ["regular", "system"]}),
            json!({"uidMin": 20000, "uidMax": 20257}),
            json!({"fuzzyNames": ["BOB"]}),
        ] {
            assert!(matches!(bob(filter.clone()), Reply::Ok(_)), "{filter}");
        }
        for (bad, parameter) in [
            (json!({"uid": "0"}), "uid"),
            (json!({"uidMin": -1}), "uidMin"),
            (json!({"dispositionMask": "regular"}), "dispositionMask"),
        ] {
            assert_eq!(bob(bad), Reply::invalid(parameter));
        }
        let broken = Accounts {
            broken: true,
            ..Accounts::default()
        };
        let query = json!({"userName": "bob_web.ve_www", "service": SERVICE});
        assert_eq!(get_user(&broken, query), error(NOT_AVAILABLE));
    }

    #[test]
    fn the_machine_id_is_read_from_etc() {
        let system = crate::system::Recording::default();
        let paths = Paths::rooted("/r");
        let etc = Path::new("/r/etc/machine-id");
        assert!(machine_id(&system, &paths).is_err());
        system
            .write(etc, b"0123456789ABCDEF0123456789abcdef\n", 0o444, false)
            .unwrap();
        assert_eq!(machine_id(&system, &paths).unwrap(), MACHINE);
        system.write(etc, b"uninitialized\n", 0o444, false).unwrap();
        assert!(machine_id(&system, &paths).is_err());
    }

    #[test]
    fn messages_on_the_wire() {
        let accounts = Accounts::default();
        let reply = |m: &str| answer(m.as_bytes(), &accounts);
        let Answer::Reply(found) = reply(
            r#"{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{"userName":"bob_web.ve_www","service":"io.srvctl.Gateway"}}"#,
        ) else {
            panic!("no reply")
        };
        let wire: Value = serde_json::from_slice(&found.to_bytes()).unwrap();
        assert_eq!(wire["parameters"]["record"]["userName"], "bob_web.ve_www");
        assert!(wire.get("error").is_none());
        let Answer::Reply(enumeration) = reply(
            r#"{"method":"io.systemd.UserDatabase.GetUserRecord","parameters":{"service":"io.srvctl.Gateway"},"more":true}"#,
        ) else {
            panic!("no reply")
        };
        let wire: Value = serde_json::from_slice(&enumeration.to_bytes()).unwrap();
        assert_eq!(wire, json!({"error": NO_RECORD, "parameters": {}}));
        let Answer::Reply(unknown) = reply(r#"{"method":"org.varlink.service.GetInfo"}"#) else {
            panic!("no reply")
        };
        assert_eq!(
            unknown,
            Reply::Error(
                METHOD_NOT_FOUND,
                json!({"method": "org.varlink.service.GetInfo"})
            )
        );
        assert_eq!(
            reply(r#"{"method":"io.systemd.UserDatabase.GetUserRecord","oneway":true}"#),
            Answer::Nothing
        );
        assert_eq!(
            reply(r#"{"method":"x","parameters":[1]}"#),
            Answer::Reply(Reply::invalid("parameters"))
        );
        for garbage in ["", "null", "[]", "{\"method\": 1}", "{", "\u{1}"] {
            assert_eq!(reply(garbage), Answer::Close, "{garbage:?}");
        }
    }
}
