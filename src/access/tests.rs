//! Every command × every role, over the library: the operator, reseller `alice`, her user
//! `bob`, `carol` (a user of another reseller, `dave`) and a stranger (a UID that is no
//! account). Each cell says whether the command is allowed, refused as if the record did not
//! exist, or refused for the role; every refusal leaves the datastore byte for byte as it
//! was, and a refusal "as if missing" has exactly the kind and message of a missing record.
//! The stranger gets no [`Caller`] at all (`permission`), so no command of the table runs for
//! it: the service refuses it before parsing its command line.

use std::path::Path;

use super::{Caller, Role};
use crate::config::cluster::Clusters;
use crate::config::site::Settings;
use crate::failure::{Classify, FailureKind};
use crate::model::names::ContainerName;
use crate::model::web::NameList;
use crate::model::{Owner, State};
use crate::ops::transaction::tests::Fixture;
use crate::ops::views::{self, Kind};
use crate::ops::{Change, OpError};
use crate::store::Memory;
use crate::system::System;

const CLUSTERS: &str = r#"{"test":{"h1.test":{"host_ip":"192.0.2.1","hostnet":1}}}"#;
const V3: &str = "/v3";
/// Bob's key in the farm.
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFjRQmCJBpVeSluiKI9w+6ECFhbpyo/5UJ8aBUxuyIRf bob@laptop";
/// A key nobody holds yet.
const NEW_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIELXEYWCvGLfpOZu8Bi8kQ9SKYAt2M3uKbBiTnk6CGQt alice@desk";

/// The farm every cell starts from: resellers alice, dave and frank (empty); alice's users
/// bob and erin, dave's user carol; a container for root, alice, bob and carol each; a key of
/// bob's.
fn farm() -> Fixture {
    let f = Fixture::new();
    let add_ve = |name, owner| Change::AddContainer {
        name,
        owner,
        image: None,
        start: false,
    };
    let user = |name, reseller| Change::AddUser {
        name,
        reseller: Some(reseller),
    };
    for change in [
        Change::AddReseller { name: "alice" },
        Change::AddReseller { name: "dave" },
        Change::AddReseller { name: "frank" },
        user("bob", "alice"),
        user("erin", "alice"),
        user("carol", "dave"),
        add_ve("root.ve", None),
        add_ve("alice.ve", Some("alice")),
        add_ve("bob.ve", Some("bob")),
        add_ve("carol.ve", Some("carol")),
        Change::AddPublicKey {
            account: Some("bob"),
            key: KEY,
        },
    ] {
        f.run(&change).unwrap();
    }
    for file in ["users.json", "containers.json", "hosts.json"] {
        let path = Path::new(V3).join(file);
        f.system.write(&path, b"{}", 0o644, false).unwrap();
    }
    f
}

/// The callers, in the order of a row's expectations; the stranger has no caller.
fn callers(state: &State) -> [Caller; 4] {
    let account = |name: &str| {
        let uid = state.users[&crate::model::names::AccountName::new(name).unwrap()].uid;
        Caller::resolve(uid, &[uid], state, &Settings::default()).unwrap()
    };
    [
        Caller::operator_root(),
        account("alice"),
        account("bob"),
        account("carol"),
    ]
}

/// A record that an out-of-scope caller must not learn of.
#[derive(Clone, Copy)]
enum Target {
    Container(&'static str),
    Account(&'static str),
    Reseller(&'static str),
}

/// `state` without `target` (and what depends on it), to ask what a missing record answers.
fn without(mut state: State, target: Target) -> State {
    let owner_gone = |state: &mut State, name: &str| {
        let owner = Owner::parse(name).unwrap();
        state.containers.retain(|_, c| c.user != owner);
    };
    match target {
        Target::Container(name) => {
            state.containers.remove(&ContainerName::new(name).unwrap());
        }
        Target::Account(name) => {
            owner_gone(&mut state, name);
            state
                .users
                .remove(&crate::model::names::AccountName::new(name).unwrap());
        }
        Target::Reseller(name) => {
            let key = crate::model::names::AccountName::new(name).unwrap();
            let id = state.resellers.remove(&key).unwrap().id;
            let gone: Vec<_> = state
                .users
                .iter()
                .filter(|(_, u)| u.reseller_id == id)
                .map(|(n, _)| n.clone())
                .collect();
            for name in gone {
                owner_gone(&mut state, name.as_str());
                state.users.remove(&name);
            }
        }
    }
    state
}

/// One command, as the library runs it for a caller.
struct Row {
    command: &'static str,
    run: fn(&Fixture, &Caller) -> Result<(), OpError>,
    /// For operator, alice, bob, carol: `y` allowed, `n` refused as not found, `p` refused
    /// for the role.
    expect: &'static str,
    /// What a `n` refusal hides.
    hides: Option<Target>,
    /// Whether it is a change, which the transaction audits (refusals too).
    audited: bool,
}

fn change(f: &Fixture, caller: &Caller, change: Change<'_>) -> Result<(), OpError> {
    f.run_as(caller, &change).map(drop)
}

fn container_name(name: &str) -> ContainerName {
    ContainerName::new(name).unwrap()
}

/// A container action (`sc NAME start|stop|…|shell|exec`): the scope check, then the lookup
/// that `sc` makes under its hold.
fn act(f: &Fixture, caller: &Caller, name: &str) -> Result<(), OpError> {
    let state = f.state();
    let name = container_name(name);
    super::container(caller, &state, &name)?;
    state
        .containers
        .get(&name)
        .map(drop)
        .ok_or(OpError::NotFound {
            kind: "container",
            name: name.to_string(),
        })
}

/// `sc get|out KIND NAME`: the record in the caller's view.
fn view(f: &Fixture, caller: &Caller, kind: Kind, name: &str) -> Result<(), OpError> {
    views::fields(&caller.visible(f.state()), &Clusters::default(), kind, name).map(drop)
}

fn rows() -> Vec<Row> {
    use Target::*;
    let row = |command, run, expect, hides| Row {
        command,
        run,
        expect,
        hides,
        audited: true,
    };
    let read = |command, run, expect, hides| Row {
        audited: false,
        ..row(command, run, expect, hides)
    };
    vec![
        row(
            "add-reseller new",
            |f, c| change(f, c, Change::AddReseller { name: "new" }),
            "yppp",
            None,
        ),
        row(
            "destroy-reseller frank",
            |f, c| change(f, c, Change::DestroyReseller { name: "frank" }),
            "yppp",
            None,
        ),
        row(
            "import-v3",
            |f, c| {
                let clusters = Clusters::parse(Path::new("c.json"), CLUSTERS).unwrap();
                let dir = Path::new(V3);
                change(
                    f,
                    c,
                    Change::Import {
                        dir,
                        clusters: &clusters,
                    },
                )
            },
            "yppp",
            None,
        ),
        row(
            "add-user new",
            |f, c| {
                let user = Change::AddUser {
                    name: "new",
                    reseller: None,
                };
                change(f, c, user)
            },
            "yypp",
            None,
        ),
        row(
            "add-user new --reseller dave",
            |f, c| {
                let user = Change::AddUser {
                    name: "new",
                    reseller: Some("dave"),
                };
                change(f, c, user)
            },
            "ynpp",
            Some(Reseller("dave")),
        ),
        row(
            "add-ve new.ve",
            |f, c| {
                let ve = Change::AddContainer {
                    name: "new.ve",
                    owner: None,
                    image: None,
                    start: false,
                };
                change(f, c, ve)
            },
            "yyyy",
            None,
        ),
        row(
            "add-ve new.ve --user bob",
            |f, c| {
                let ve = Change::AddContainer {
                    name: "new.ve",
                    owner: Some("bob"),
                    image: None,
                    start: false,
                };
                change(f, c, ve)
            },
            "yyyn",
            Some(Account("bob")),
        ),
        row(
            "destroy-ve bob.ve",
            |f, c| {
                change(
                    f,
                    c,
                    Change::DestroyContainer {
                        name: "bob.ve",
                        force: false,
                    },
                )
            },
            "yyyn",
            Some(Container("bob.ve")),
        ),
        row(
            "destroy-ve root.ve",
            |f, c| {
                change(
                    f,
                    c,
                    Change::DestroyContainer {
                        name: "root.ve",
                        force: false,
                    },
                )
            },
            "ynnn",
            Some(Container("root.ve")),
        ),
        row(
            "destroy-user erin",
            |f, c| change(f, c, Change::DestroyUser { name: "erin" }),
            "yynn",
            Some(Account("erin")),
        ),
        row(
            "put user bob email",
            |f, c| {
                let put = Change::PutUser {
                    name: "bob",
                    key: "email",
                    value: Some("bob@example.com"),
                };
                change(f, c, put)
            },
            "yyyn",
            Some(Account("bob")),
        ),
        row(
            "put container bob.ve http_port 8080",
            |f, c| {
                let put = Change::PutContainer {
                    name: "bob.ve",
                    key: "http_port",
                    value: Some("8080"),
                };
                change(f, c, put)
            },
            "yyyn",
            Some(Container("bob.ve")),
        ),
        row(
            "put container bob.ve memory_max 1G",
            |f, c| {
                let put = Change::PutContainer {
                    name: "bob.ve",
                    key: "memory_max",
                    value: Some("1G"),
                };
                change(f, c, put)
            },
            "yppn",
            Some(Container("bob.ve")),
        ),
        row(
            "bob.ve http-redirect https",
            |f, c| {
                let name = container_name("bob.ve");
                let redirect = Change::SetRedirect {
                    name: &name,
                    https: false,
                    value: Some("https"),
                };
                change(f, c, redirect)
            },
            "yyyn",
            Some(Container("bob.ve")),
        ),
        row(
            "bob.ve alias add www.bob.example.com",
            |f, c| {
                let name = container_name("bob.ve");
                let alias = Change::ChangeNames {
                    name: &name,
                    list: NameList::Aliases,
                    add: true,
                    domain: "bob.example.com",
                };
                change(f, c, alias)
            },
            "yyyn",
            Some(Container("bob.ve")),
        ),
        row(
            "bob.ve dns add TXT token",
            |f, c| {
                let name = container_name("bob.ve");
                let record = Change::ChangeDns {
                    name: &name,
                    add: true,
                    record: ("@", "TXT", "token"),
                };
                change(f, c, record)
            },
            "yyyn",
            Some(Container("bob.ve")),
        ),
        row(
            "add-publickey bob KEY",
            |f, c| {
                let key = Change::AddPublicKey {
                    account: Some("bob"),
                    key: NEW_KEY,
                };
                change(f, c, key)
            },
            "yyyn",
            Some(Account("bob")),
        ),
        row(
            "add-publickey root KEY",
            |f, c| {
                let key = Change::AddPublicKey {
                    account: Some("root"),
                    key: NEW_KEY,
                };
                change(f, c, key)
            },
            "yppp",
            None,
        ),
        row(
            "remove-publickey bob COMMENT",
            |f, c| {
                let key = Change::RemovePublicKey {
                    account: Some("bob"),
                    which: "bob@laptop",
                };
                change(f, c, key)
            },
            "yyyn",
            Some(Account("bob")),
        ),
        read(
            "publickeys bob",
            |f, c| {
                let state = f.state();
                super::keys_of(c, &state, Some("bob"))?;
                crate::accounts::keys::list(&state, c.key_owner(), Some("bob")).map(drop)
            },
            "yyyn",
            Some(Account("bob")),
        ),
        row(
            "bob.ve add-user deploy",
            |f, c| {
                let name = container_name("bob.ve");
                let login = Change::AddLogin {
                    name: &name,
                    login: "deploy",
                };
                change(f, c, login)
            },
            "yyyn",
            Some(Container("bob.ve")),
        ),
        read(
            "bob.ve start|stop|restart|kill|shell|exec|sftp|users|status",
            |f, c| act(f, c, "bob.ve"),
            "yyyn",
            Some(Container("bob.ve")),
        ),
        read(
            "carol.ve start|stop|restart|kill|shell|exec|sftp|users|status",
            |f, c| act(f, c, "carol.ve"),
            "ynny",
            Some(Container("carol.ve")),
        ),
        read(
            "regenerate, certificates renew",
            |_, c| super::operator_only(c, "regenerate"),
            "yppp",
            None,
        ),
        read(
            "get container bob.ve ip",
            |f, c| view(f, c, Kind::Container, "bob.ve"),
            "yyyn",
            Some(Container("bob.ve")),
        ),
        read(
            "get user bob uid",
            |f, c| view(f, c, Kind::User, "bob"),
            "yyyn",
            Some(Account("bob")),
        ),
        read(
            "out reseller alice",
            |f, c| view(f, c, Kind::Reseller, "alice"),
            "yynn",
            Some(Reseller("alice")),
        ),
    ]
}

#[test]
fn every_command_for_every_role() {
    let names = ["operator", "alice", "bob", "carol"];
    for row in rows() {
        for (i, expect) in row.expect.chars().enumerate() {
            let f = farm();
            let caller = &callers(&f.state())[i];
            let before = f.store.bytes();
            let audits = f.log.0.borrow().len();
            let result = (row.run)(&f, caller);
            let cell = format!("{} as {}", row.command, names[i]);
            match (expect, result) {
                ('y', Ok(())) => {}
                ('p', Err(e)) => {
                    assert_eq!(e.kind(), FailureKind::Permission, "{cell}: {e}");
                    assert_eq!(f.store.bytes(), before, "{cell}");
                }
                ('n', Err(e)) => {
                    assert_eq!(f.store.bytes(), before, "{cell}");
                    let mut missing = farm();
                    missing.store = Memory::with(&without(f.state(), row.hides.unwrap()));
                    let as_missing = (row.run)(&missing, &Caller::operator_root()).unwrap_err();
                    assert_eq!(e.kind(), FailureKind::NotFound, "{cell}: {e}");
                    assert_eq!(e.kind(), as_missing.kind(), "{cell}");
                    assert_eq!(e.to_string(), as_missing.to_string(), "{cell}");
                }
                (expect, result) => panic!("{cell}: expected {expect}, got {result:?}"),
            }
            let log = f.log.0.borrow();
            if row.audited {
                assert_eq!(log.len(), audits + 1, "{cell}: audited once");
                let outcome = if expect == 'y' { "ok" } else { "error: " };
                assert!(log[audits].starts_with(outcome), "{cell}: {}", log[audits]);
            } else {
                assert_eq!(log.len(), audits, "{cell}");
            }
        }
    }
}

#[test]
fn a_stranger_is_no_caller_and_root_is_the_operator() {
    let f = farm();
    let state = f.state();
    let e = Caller::resolve(4242, &[4242], &state, &Settings::default()).unwrap_err();
    assert_eq!(e.kind(), FailureKind::Permission);
    assert_eq!(e.to_string(), "UID 4242 is no srvctl account");
    assert_eq!(
        Caller::resolve(0, &[], &state, &Settings::default())
            .unwrap()
            .role,
        Role::Operator
    );
    let [_, alice, bob, _] = callers(&state);
    assert!(matches!(alice.role, Role::Reseller(ref n) if n.as_str() == "alice"));
    assert!(matches!(bob.role, Role::User(ref n) if n.as_str() == "bob"));
}

#[test]
fn members_of_the_operator_group_are_operators() {
    let state = farm().state();
    // Group 0 (root) exists on every host; a caller whose groups include it is an operator.
    let settings = Settings {
        operator_group: Some("root".into()),
        ..Settings::default()
    };
    assert_eq!(
        Caller::resolve(4242, &[100, 0], &state, &settings)
            .unwrap()
            .role,
        Role::Operator
    );
    assert!(Caller::resolve(4242, &[100], &state, &settings).is_err());
}

#[test]
fn what_a_tenant_leaves_out_is_itself() {
    let f = farm();
    let [_, alice, bob, _] = callers(&f.state());
    for (caller, name) in [(&alice, "a2.ve"), (&bob, "b2.ve")] {
        let ve = Change::AddContainer {
            name,
            owner: None,
            image: None,
            start: false,
        };
        f.run_as(caller, &ve).unwrap();
        let c = &f.state().containers[&container_name(name)];
        assert_eq!(c.user.to_string(), caller.name, "{name}");
        assert_eq!(c.created_by, caller.name, "{name}");
    }
    let user = Change::AddUser {
        name: "new",
        reseller: None,
    };
    f.run_as(&alice, &user).unwrap();
    let state = f.state();
    let new = &state.users[&crate::model::names::AccountName::new("new").unwrap()];
    assert_eq!(new.reseller_id, state.resellers.values().next().unwrap().id);
}

#[test]
fn a_user_may_not_remove_its_own_account() {
    let f = farm();
    let [_, _, bob, _] = callers(&f.state());
    let before = f.store.bytes();
    let e = f
        .run_as(&bob, &Change::DestroyUser { name: "bob" })
        .unwrap_err();
    assert_eq!(e.kind(), FailureKind::Permission, "{e}");
    assert_eq!(f.store.bytes(), before);
}

#[test]
fn status_shows_each_caller_its_scope() {
    let f = farm();
    let state = f.state();
    let [operator, alice, bob, carol] = callers(&state);
    let names = |c: &Caller| -> Vec<String> {
        views::status(&c.visible(state.clone()), "h1.test", &None, None)
            .into_iter()
            .map(|r| format!("{} {}", r.name, r.reseller))
            .collect()
    };
    assert_eq!(
        names(&operator),
        [
            "alice.ve alice",
            "bob.ve alice",
            "carol.ve dave",
            "root.ve root"
        ]
    );
    assert_eq!(names(&alice), ["alice.ve alice", "bob.ve alice"]);
    assert_eq!(names(&bob), ["bob.ve alice"]);
    assert_eq!(names(&carol), ["carol.ve dave"]);
}
