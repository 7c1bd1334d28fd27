//! The live datastore's data: resellers, users and containers, and how it maps to JSON.
//!
//! The document is `{ "schema_version": 1, "resellers": {…}, "users": {…}, "containers": {…},
//! "operator": {…} }` (the operator's record only when it holds something).
//! Loading tolerates unknown fields and keeps them. A record that fails validation (say a name
//! with a newline, put there by hand) is set aside: it is reported, never used, and written
//! back unchanged, so nothing is lost.

pub mod claims;
pub mod dkim;
pub mod dns;
pub mod keys;
pub mod names;
pub mod settings;
pub mod web;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::addr::plan::{self, Bridge, ContainerNumber, ResellerId, UserIndex};
use crate::model::claims::{Registry, Reserved, site_names};
use crate::model::names::{AccountName, ContainerLogin, ContainerName};

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Name the operator's account has wherever an owner is named.
pub const OPERATOR: &str = "root";

/// A reseller: an id of the address plan and an account of the same name (index 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reseller {
    /// R of the address plan.
    pub id: ResellerId,
    /// When it was added (RFC 3339).
    pub created: String,
    /// Who added it.
    pub created_by: String,
    /// Fields this build does not know, kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A user account, the same on every host of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// The reseller the user belongs to.
    pub reseller_id: ResellerId,
    /// U of the address plan, unique inside the reseller.
    pub index: UserIndex,
    /// UID on every host.
    pub uid: u32,
    /// GID of the user's own group on every host.
    pub gid: u32,
    /// When it was added (RFC 3339).
    pub created: String,
    /// Who added it.
    pub created_by: String,
    /// Full name, for the account's GECOS field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Contact address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// SSH public keys that log in as this account (and cover its gateway logins).
    #[serde(default, skip_serializing_if = "keys::KeyList::is_empty")]
    pub publickeys: keys::KeyList,
    /// Fields this build does not know, kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl User {
    /// Set the field `key` to `value`, or reset it when `value` is `None` (`sc put user`).
    pub fn set(
        &mut self,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), crate::model::settings::SettingError> {
        let (key, value) = crate::model::settings::user_value(key, value)?;
        match key {
            "display_name" => self.display_name = value,
            "email" => self.email = value,
            other => unreachable!("user_value knows no field {other}"),
        }
        Ok(())
    }
}

/// Who owns a container: the operator or a user account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    /// The operator (root), reseller 0, user 0.
    Operator,
    /// A user or reseller account.
    Account(AccountName),
}

impl Owner {
    /// Parse an owner as given on the command line or in the datastore.
    pub fn parse(raw: &str) -> Result<Self, crate::model::names::NameError> {
        if raw == OPERATOR {
            Ok(Self::Operator)
        } else {
            AccountName::new(raw).map(Self::Account)
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Operator => f.write_str(OPERATOR),
            Self::Account(a) => a.fmt(f),
        }
    }
}

impl Serialize for Owner {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Owner {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A site container, placed on one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// Owner account.
    pub user: Owner,
    /// The host it lives on (fqdn from clusters.json).
    pub host: String,
    /// Its plan address; the bridge and number derive from it.
    pub ip: Ipv4Addr,
    /// When it was created (RFC 3339).
    pub created: String,
    /// Who created it.
    pub created_by: String,
    /// Set by `sc destroy-ve` before the container is stopped and its files removed: it keeps
    /// its name and address until the record goes, and is neither started nor rendered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub destroying: bool,
    /// Set by `sc add-ve --host H` run on another host: the container's own host clones its
    /// root filesystem (srvctl-sync, when it has none) and starts it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provision: bool,
    /// Settings changed with `sc put container`.
    #[serde(flatten)]
    pub settings: crate::model::settings::ContainerSettings,
    /// Names and redirects of its web front (aliases, altnames, http/https redirects).
    #[serde(flatten)]
    pub web: crate::model::web::WebSettings,
    /// Accounts added inside it with `sc NAME add-user` (besides [`BUILTIN_LOGINS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logins: Vec<ContainerLogin>,
    /// The site's own DNS records (`sc NAME dns add`), in the zone of its name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<crate::model::dns::DnsRecord>,
    /// The site's DKIM key (its selector and public key), made by `sc add-ve` on the
    /// container's host, which keeps the private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dkim: Option<crate::model::dkim::DkimKey>,
    /// Fields this build does not know, kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Container {
    /// The bridge and number its address belongs to.
    pub fn slot(&self) -> Option<(Bridge, ContainerNumber)> {
        Bridge::of_container_address(self.ip)
    }

    /// Whether `login` is an account inside it: `root`, `www` or one added with `sc NAME
    /// add-user`.
    pub fn has_login(&self, login: &ContainerLogin) -> bool {
        BUILTIN_LOGINS.contains(&login.as_str()) || self.logins.contains(login)
    }

    /// Every account inside it that a gateway login may name: the built-in ones, then the
    /// added ones in the order they were added.
    pub fn all_logins(&self) -> Vec<&str> {
        BUILTIN_LOGINS
            .into_iter()
            .chain(self.logins.iter().map(ContainerLogin::as_str))
            .collect()
    }

    /// What identifies the root filesystem srvctl cloned for this record (and no other
    /// record of the same name): the name and the creation time.
    pub fn rootfs_identity(&self, name: &ContainerName) -> String {
        format!("{name} {}", self.created)
    }
}

/// The accounts every container has: `root`, and `www`, the owner of /var/www/html (the site's
/// files, uploaded with `sftp -P 2222 USER_VE_www@host`).
pub const BUILTIN_LOGINS: [&str; 2] = ["root", "www"];

/// Why `login` may not be added to a container with `sc NAME add-user`, if it may not: every
/// container has it already, or it is a system account's name.
pub fn reserved_login(login: &ContainerLogin) -> Option<&'static str> {
    if BUILTIN_LOGINS.contains(&login.as_str()) {
        Some("every container has it already")
    } else if crate::model::names::is_system_account(login.as_str()) {
        Some("the name is reserved for the system")
    } else {
        None
    }
}

/// What is wrong with the added logins of a container, if anything: a reserved name or one
/// listed twice.
fn logins_fault(logins: &[ContainerLogin]) -> Option<String> {
    logins.iter().enumerate().find_map(|(i, login)| {
        if let Some(why) = reserved_login(login) {
            Some(format!("login {login} may not be added: {why}"))
        } else {
            logins[..i]
                .contains(login)
                .then(|| format!("login {login} is listed twice"))
        }
    })
}

/// Which section of the document a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    /// `resellers`
    Resellers,
    /// `users`
    Users,
    /// `containers`
    Containers,
}

impl Section {
    /// The key of the section in the document.
    pub fn key(self) -> &'static str {
        match self {
            Self::Resellers => "resellers",
            Self::Users => "users",
            Self::Containers => "containers",
        }
    }
}

/// A record that could not be used, kept verbatim.
#[derive(Debug, Clone, PartialEq)]
pub struct SetAside {
    /// Its section.
    pub section: Section,
    /// Its key, as found.
    pub key: String,
    /// Why it was set aside.
    pub reason: String,
    /// The record as found.
    pub raw: Value,
}

/// The whole live datastore.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct State {
    /// Resellers by name.
    pub resellers: BTreeMap<AccountName, Reseller>,
    /// Accounts by name (resellers' own accounts included).
    pub users: BTreeMap<AccountName, User>,
    /// Containers by name.
    pub containers: BTreeMap<ContainerName, Container>,
    /// Records that failed validation.
    pub set_aside: Vec<SetAside>,
    /// The operator's record (its SSH keys), `"operator"`; when that member does not parse
    /// it stays in [`State::extra`] as found, and this one is empty.
    pub operator: keys::OperatorRecord,
    /// Top-level fields this build does not know.
    pub extra: Map<String, Value>,
}

/// The datastore document could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Not JSON, or not an object.
    #[error("not a valid datastore document: {0}")]
    Syntax(String),
    /// Written by a newer srvctl.
    #[error(
        "schema version {0} is newer than this srvctl understands ({SCHEMA_VERSION}); upgrade srvctl"
    )]
    TooNew(u64),
}

/// The entries of a JSON object in document order, each value left unparsed: a record is
/// parsed once, straight into its type, and only a set-aside one is kept as a JSON value.
struct Entries<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Entries<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Entries<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Entries<'a>, M::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry::<String, &'a RawValue>()? {
                    out.push(entry);
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// A value that was already found to be well-formed JSON, parsed.
fn value_of(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).expect("a raw value is well-formed JSON")
}

/// Read the records of one section. A record whose key or fields do not validate is set
/// aside. Two keys that differ only in case name one record: the one spelled canonically
/// (lower-case) is kept, the other set aside (of two non-canonical spellings, the later).
fn section<K: Ord + Clone + fmt::Display, T: serde::de::DeserializeOwned + Serialize>(
    raw: Option<&RawValue>,
    which: Section,
    key: impl Fn(&str) -> Result<K, String>,
    set_aside: &mut Vec<SetAside>,
) -> Result<BTreeMap<K, T>, DocumentError> {
    let mut out = BTreeMap::new();
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Ok(out);
    };
    let records: Entries<'_> = serde_json::from_str(raw.get())
        .map_err(|_| DocumentError::Syntax(format!("{:?} must be an object", which.key())))?;
    // Keys that were stored under another spelling, with that spelling.
    let mut respelled: BTreeMap<K, String> = BTreeMap::new();
    for (name, raw) in records.0 {
        let parsed = key(&name).and_then(|k| {
            serde_json::from_str::<T>(raw.get())
                .map(|v| (k, v))
                .map_err(|e| e.to_string())
        });
        let (k, v) = match parsed {
            Ok(kv) => kv,
            Err(reason) => {
                set_aside.push(SetAside {
                    section: which,
                    key: name,
                    reason,
                    raw: value_of(raw),
                });
                continue;
            }
        };
        let canonical = k.to_string() == name;
        if out.contains_key(&k) {
            let earlier = respelled.get(&k).cloned();
            let (key, raw) = match earlier {
                Some(spelling) if canonical => {
                    let replaced = out.insert(k.clone(), v).expect("present");
                    respelled.remove(&k);
                    (spelling, value(&replaced))
                }
                _ => (name, value_of(raw)),
            };
            set_aside.push(SetAside {
                section: which,
                reason: format!("the key differs only in case from {k}"),
                key,
                raw,
            });
            continue;
        }
        if !canonical {
            respelled.insert(k.clone(), name);
        }
        out.insert(k, v);
    }
    Ok(out)
}

/// Move the records `bad` of `records` to the set-aside list, with their reasons.
fn set_aside_from<K: Ord + fmt::Display, T: Serialize>(
    records: &mut BTreeMap<K, T>,
    which: Section,
    bad: Vec<(K, String)>,
    set_aside: &mut Vec<SetAside>,
) {
    for (key, reason) in bad {
        let record = records.remove(&key).expect("listed");
        set_aside.push(SetAside {
            section: which,
            key: key.to_string(),
            reason,
            raw: value(&record),
        });
    }
}

impl State {
    /// The document as the generator and regenerate expand it: without the containers being
    /// destroyed (they are stopped and their files removed).
    pub fn rendered(mut self) -> Self {
        self.containers.retain(|_, c| !c.destroying);
        self
    }

    /// Parse a datastore document, checking it against what the datastore alone decides (no
    /// cluster hosts, no company domain); see [`State::load`].
    pub fn from_json(text: &[u8]) -> Result<Self, DocumentError> {
        Self::load(text, &Reserved::default())
    }

    /// Parse a datastore document and check every record as the commands do: a record that
    /// breaks an invariant is set aside (reported, never used, written back as found), so
    /// what a command refuses never gets in by hand either. `reserved` holds the names of the
    /// cluster hosts (and their hostnets) and the company domain.
    pub fn load(text: &[u8], reserved: &Reserved) -> Result<Self, DocumentError> {
        Self::load_sections(text, reserved, true)
    }

    /// Parse only the accounts of a datastore document (resellers, users, the operator),
    /// checked exactly as [`State::load`] checks them (no check of an account depends on a
    /// container); the containers are left unread. For readers that need no container, such
    /// as sshd's key lookup at every login: such a state is never written back.
    pub fn load_accounts(text: &[u8]) -> Result<Self, DocumentError> {
        Self::load_sections(text, &Reserved::default(), false)
    }

    fn load_sections(
        text: &[u8],
        reserved: &Reserved,
        with_containers: bool,
    ) -> Result<Self, DocumentError> {
        let text = std::str::from_utf8(text).map_err(|e| DocumentError::Syntax(e.to_string()))?;
        let top: Entries<'_> = serde_json::from_str(text).map_err(|e| {
            DocumentError::Syntax(if e.is_data() {
                "the top level must be an object".into()
            } else {
                e.to_string()
            })
        })?;
        let (mut version, mut resellers, mut users, mut containers) = (None, None, None, None);
        let mut operator = keys::OperatorRecord::default();
        let mut doc = Map::new();
        for (k, raw) in top.0 {
            match k.as_str() {
                "schema_version" => version = Some(value_of(raw)),
                "resellers" => resellers = Some(raw),
                "users" => users = Some(raw),
                "containers" => containers = Some(raw).filter(|_| with_containers),
                "operator" => match serde_json::from_str(raw.get()) {
                    Ok(record) => operator = record,
                    Err(_) => {
                        doc.insert(k, value_of(raw));
                    }
                },
                _ => {
                    doc.insert(k, value_of(raw));
                }
            }
        }
        match version {
            Some(Value::Number(n)) if n.as_u64() == Some(u64::from(SCHEMA_VERSION)) => {}
            Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v > SCHEMA_VERSION.into()) => {
                return Err(DocumentError::TooNew(n.as_u64().unwrap_or_default()));
            }
            other => {
                return Err(DocumentError::Syntax(format!(
                    "missing or unknown schema_version {other:?}"
                )));
            }
        }
        let mut set_aside = Vec::new();
        let account = |s: &str| AccountName::new(s).map_err(|e| e.to_string());
        let resellers = section(resellers, Section::Resellers, account, &mut set_aside)?;
        let users = section(users, Section::Users, account, &mut set_aside)?;
        let containers = section(
            containers,
            Section::Containers,
            |s| ContainerName::new(s).map_err(|e| e.to_string()),
            &mut set_aside,
        )?;
        let mut state = Self {
            resellers,
            users,
            containers,
            set_aside,
            operator,
            extra: doc,
        };
        state.set_aside_inconsistent(reserved);
        Ok(state)
    }

    /// Move records that break an invariant to the set-aside list: resellers first (a
    /// duplicate id), then users (an unknown reseller, an id outside srvctl's range or held
    /// twice, an index held twice), then containers (see [`State::container_fault`]). Of two
    /// records that clash, the second in key order is set aside.
    fn set_aside_inconsistent(&mut self, reserved: &Reserved) {
        let bad = self.reseller_faults();
        set_aside_from(
            &mut self.resellers,
            Section::Resellers,
            bad,
            &mut self.set_aside,
        );
        let bad = self.user_faults();
        set_aside_from(&mut self.users, Section::Users, bad, &mut self.set_aside);
        let bad = self.container_faults(reserved);
        set_aside_from(
            &mut self.containers,
            Section::Containers,
            bad,
            &mut self.set_aside,
        );
    }

    fn reseller_faults(&self) -> Vec<(AccountName, String)> {
        let mut ids: HashMap<ResellerId, &AccountName> = HashMap::new();
        let mut bad = Vec::new();
        for (name, r) in &self.resellers {
            match ids.entry(r.id) {
                Entry::Occupied(first) => bad.push((
                    name.clone(),
                    format!("reseller id {} is already the id of {}", r.id, first.get()),
                )),
                Entry::Vacant(slot) => {
                    slot.insert(name);
                }
            }
        }
        bad
    }

    fn user_faults(&self) -> Vec<(AccountName, String)> {
        let mut ids: HashMap<u32, &AccountName> = HashMap::new();
        let mut slots: HashMap<(ResellerId, UserIndex), &AccountName> = HashMap::new();
        let mut bad = Vec::new();
        for (name, u) in &self.users {
            let fault = if u.reseller_id != ResellerId::OPERATOR
                && self.reseller_by_id(u.reseller_id).is_none()
            {
                Some(format!("reseller id {} does not exist", u.reseller_id))
            } else if let Some(id) = [u.uid, u.gid]
                .into_iter()
                .find(|id| !plan::ACCOUNT_IDS.contains(id))
            {
                Some(format!(
                    "UID/GID {id} is outside srvctl's range {}..{}",
                    plan::ACCOUNT_IDS.start,
                    plan::ACCOUNT_IDS.end
                ))
            } else if let Some(other) = [u.uid, u.gid].iter().find_map(|id| ids.get(id)) {
                Some(format!("its UID/GID is already held by {other}"))
            } else {
                slots.get(&(u.reseller_id, u.index)).map(|other| {
                    format!(
                        "user index {} of reseller id {} is already held by {other}",
                        u.index, u.reseller_id
                    )
                })
            };
            match fault {
                Some(reason) => bad.push((name.clone(), reason)),
                None => {
                    ids.insert(u.uid, name);
                    ids.insert(u.gid, name);
                    slots.insert((u.reseller_id, u.index), name);
                }
            }
        }
        bad
    }

    fn container_faults(&self, reserved: &Reserved) -> Vec<(ContainerName, String)> {
        let mut addresses: HashMap<Ipv4Addr, &ContainerName> =
            HashMap::with_capacity(self.containers.len());
        let mut registry = Registry::with_capacity(self.containers.len());
        let mut bad = Vec::new();
        for (name, c) in &self.containers {
            let names = site_names(name, &c.web, reserved.company_domain());
            let fault = self
                .container_fault(c, reserved)
                .or_else(|| {
                    addresses
                        .get(&c.ip)
                        .map(|other| format!("address {} is already the address of {other}", c.ip))
                })
                .or_else(|| {
                    registry
                        .check(reserved, name, &names)
                        .err()
                        .map(|e| e.to_string())
                });
            match fault {
                Some(reason) => bad.push((name.clone(), reason)),
                None => {
                    addresses.insert(c.ip, name);
                    registry.insert(name, names);
                }
            }
        }
        bad
    }

    /// What is wrong with container `c` on its own: an address outside the plan, outside its
    /// owner's bridge or outside its host's network (when clusters.json names the host), an
    /// unknown owner, a setting `sc put` would refuse, redirects that loop.
    fn container_fault(&self, c: &Container, reserved: &Reserved) -> Option<String> {
        let Some((bridge, _)) = c.slot() else {
            return Some(format!(
                "address {} is not a container address of the plan",
                c.ip
            ));
        };
        let Some((r, u)) = self.owner_slot(&c.user) else {
            return Some(format!("owner {} does not exist", c.user));
        };
        if (bridge.reseller, bridge.user) != (r, u) {
            return Some(format!(
                "address {} is on bridge {}, not on one of its owner {}",
                c.ip,
                bridge.interface(),
                c.user
            ));
        }
        if let Some(hostnet) = reserved.hostnet(&c.host)
            && hostnet != bridge.host
        {
            return Some(format!(
                "address {} is not in the network of its host {} (hostnet {hostnet})",
                c.ip, c.host
            ));
        }
        if let Err(e) = c.settings.check() {
            return Some(e.to_string());
        }
        if let Some(fault) = logins_fault(&c.logins) {
            return Some(fault);
        }
        c.web.check_loop().err()
    }

    /// Serialise the document (pretty, stable order, trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(&Document(self)).expect("serialisable");
        out.push(b'\n');
        out
    }

    /// The set-aside records of `section`, as found: the numbers they hold (addresses, UIDs,
    /// indexes) stay reserved, so repairing a record by hand never makes it clash.
    pub fn set_aside_records(&self, section: Section) -> impl Iterator<Item = &Map<String, Value>> {
        self.set_aside
            .iter()
            .filter(move |s| s.section == section)
            .filter_map(|s| s.raw.as_object())
    }

    /// The reseller with that id.
    pub fn reseller_by_id(&self, id: ResellerId) -> Option<(&AccountName, &Reseller)> {
        self.resellers.iter().find(|(_, r)| r.id == id)
    }

    /// The plan position (R, U) of an owner, if it exists.
    pub fn owner_slot(&self, owner: &Owner) -> Option<(ResellerId, UserIndex)> {
        match owner {
            Owner::Operator => Some((ResellerId::OPERATOR, UserIndex::OWN)),
            Owner::Account(a) => self.users.get(a).map(|u| (u.reseller_id, u.index)),
        }
    }
}

/// A record as written: a valid one, or a set-aside one exactly as it was found.
#[derive(Serialize)]
#[serde(untagged)]
enum Written<'a, T> {
    Valid(&'a T),
    SetAside(&'a Value),
}

/// The records of one section, valid and set aside, in key order.
fn written<'a, K: fmt::Display, T>(
    records: &'a BTreeMap<K, T>,
    set_aside: &'a [SetAside],
    which: Section,
) -> BTreeMap<String, Written<'a, T>> {
    let mut out: BTreeMap<String, Written<'a, T>> = records
        .iter()
        .map(|(k, v)| (k.to_string(), Written::Valid(v)))
        .collect();
    for s in set_aside.iter().filter(|s| s.section == which) {
        out.insert(s.key.clone(), Written::SetAside(&s.raw));
    }
    out
}

/// The datastore document, serialised straight from the records (no intermediate JSON
/// values: this runs on every change).
struct Document<'a>(&'a State);

impl Serialize for Document<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let state = self.0;
        let mut map = ser.serialize_map(None)?;
        map.serialize_entry("schema_version", &SCHEMA_VERSION)?;
        let aside = &state.set_aside;
        map.serialize_entry(
            "resellers",
            &written(&state.resellers, aside, Section::Resellers),
        )?;
        map.serialize_entry("users", &written(&state.users, aside, Section::Users))?;
        map.serialize_entry(
            "containers",
            &written(&state.containers, aside, Section::Containers),
        )?;
        if !state.operator.is_empty() {
            map.serialize_entry("operator", &state.operator)?;
        }
        for (k, v) in &state.extra {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

fn value<T: Serialize>(record: &T) -> Value {
    serde_json::to_value(record).expect("records are serialisable")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{
      "schema_version": 1,
      "future": {"x": 1},
      "resellers": {"alice": {"id": 1, "created": "t", "created_by": "root"}},
      "users": {
        "alice": {"reseller_id": 1, "index": 0, "uid": 20256, "gid": 20256, "created": "t", "created_by": "root"},
        "bob": {"reseller_id": 1, "index": 1, "uid": 20257, "gid": 20257, "created": "t", "created_by": "root", "shoe": 42}
      },
      "containers": {
        "web.example.com": {"user": "bob", "host": "h1.test", "ip": "10.17.1.2", "created": "t", "created_by": "root"},
        "bad\nname": {"user": "bob", "host": "h1.test", "ip": "10.17.1.3", "created": "t", "created_by": "root"},
        "ghost.example.com": {"user": "nobody-here", "host": "h1.test", "ip": "10.17.1.4", "created": "t", "created_by": "root"}
      }
    }"#;

    #[test]
    fn loads_sets_aside_and_round_trips() {
        let state = State::from_json(DOC.as_bytes()).unwrap();
        assert_eq!(state.containers.len(), 1);
        assert_eq!(state.set_aside.len(), 2);
        assert_eq!(
            state.users[&AccountName::new("bob").unwrap()].extra["shoe"],
            42
        );
        let again = State::from_json(&state.to_json()).unwrap();
        assert_eq!(again, state);
        let text = String::from_utf8(state.to_json()).unwrap();
        assert!(text.contains("\"future\"") && text.contains("bad\\nname"));
    }

    #[test]
    fn the_accounts_alone_load_as_the_whole_document_loads_them() {
        let whole = State::from_json(DOC.as_bytes()).unwrap();
        let accounts = State::load_accounts(DOC.as_bytes()).unwrap();
        assert_eq!(accounts.users, whole.users);
        assert_eq!(accounts.resellers, whole.resellers);
        assert_eq!(accounts.operator, whole.operator);
        assert!(accounts.containers.is_empty());
        assert!(
            accounts
                .set_aside
                .iter()
                .all(|s| s.section != Section::Containers)
        );
    }

    /// A document of the worked example plus `containers` and `users` (JSON members).
    fn doc_with(users: &str, containers: &str) -> String {
        format!(
            r#"{{"schema_version": 1,
            "resellers": {{"alice": {{"id": 1, "created": "t", "created_by": "root"}}}},
            "users": {{
              "alice": {{"reseller_id": 1, "index": 0, "uid": 20256, "gid": 20256, "created": "t", "created_by": "root"}},
              "bob": {{"reseller_id": 1, "index": 1, "uid": 20257, "gid": 20257, "created": "t", "created_by": "root"}}
              {users}
            }},
            "containers": {{
              "web.example.com": {{"user": "bob", "host": "h1.test", "ip": "10.17.1.2", "created": "t", "created_by": "root", "aliases": ["shop.example.net"]}}
              {containers}
            }}}}"#
        )
    }

    fn container(key: &str, fields: &str) -> String {
        format!(
            r#", "{key}": {{"host": "h1.test", "created": "t", "created_by": "root", {fields}}}"#
        )
    }

    fn user(key: &str, fields: &str) -> String {
        format!(r#", "{key}": {{"created": "t", "created_by": "root", {fields}}}"#)
    }

    #[test]
    fn records_that_break_an_invariant_are_set_aside() {
        let reserved = crate::model::claims::Reserved::new(
            &crate::config::cluster::Clusters::parse(
                std::path::Path::new("clusters.json"),
                r#"{"t":{"h1.test":{"host_ip":"192.0.2.1","hostnet":1,"role":"ca"},"h2.test":{"host_ip":"192.0.2.2","hostnet":2}}}"#,
            )
            .unwrap(),
            &crate::config::site::Settings::default(),
        );
        let cases: Vec<(&str, String, String, &str)> = vec![
            (
                "two on one address",
                String::new(),
                container("x.example.com", r#""user": "bob", "ip": "10.17.1.2""#),
                "already the address of web.example.com",
            ),
            (
                "another user's bridge",
                String::new(),
                container("x.example.com", r#""user": "alice", "ip": "10.17.1.3""#),
                "not on one of its owner alice",
            ),
            (
                "another host's network",
                String::new(),
                container("x.example.com", r#""user": "bob", "ip": "10.33.1.3""#),
                "not in the network of its host h1.test",
            ),
            (
                "a port out of range",
                String::new(),
                container(
                    "x.example.com",
                    r#""user": "bob", "ip": "10.17.1.3", "http_port": 0"#,
                ),
                "http_port",
            ),
            (
                "an alias taken",
                String::new(),
                container(
                    "x.example.com",
                    r#""user": "bob", "ip": "10.17.1.3", "aliases": ["www.web.example.com"]"#,
                ),
                "already a name of container web.example.com",
            ),
            (
                "a cluster host's name",
                String::new(),
                container("h2.test", r#""user": "bob", "ip": "10.17.1.3""#),
                "cluster host h2.test",
            ),
            (
                "a command word",
                String::new(),
                container("status", r#""user": "bob", "ip": "10.17.1.3""#),
                "sc command word",
            ),
            (
                "a reserved login",
                String::new(),
                container(
                    "x.example.com",
                    r#""user": "bob", "ip": "10.17.1.3", "logins": ["www"]"#,
                ),
                "login www may not be added",
            ),
            (
                "a login listed twice",
                String::new(),
                container(
                    "x.example.com",
                    r#""user": "bob", "ip": "10.17.1.3", "logins": ["deploy", "deploy"]"#,
                ),
                "login deploy is listed twice",
            ),
            (
                "uid 0",
                user(
                    "carol",
                    r#""reseller_id": 1, "index": 2, "uid": 0, "gid": 0"#,
                ),
                String::new(),
                "outside srvctl's range",
            ),
            (
                "a duplicate uid",
                user(
                    "carol",
                    r#""reseller_id": 1, "index": 2, "uid": 20257, "gid": 20257"#,
                ),
                String::new(),
                "already held by bob",
            ),
            (
                "a duplicate index",
                user(
                    "carol",
                    r#""reseller_id": 1, "index": 1, "uid": 20258, "gid": 20258"#,
                ),
                String::new(),
                "user index 1 of reseller id 1 is already held by bob",
            ),
            (
                "a system account",
                user(
                    "www-data",
                    r#""reseller_id": 1, "index": 2, "uid": 20258, "gid": 20258"#,
                ),
                String::new(),
                "reserved for the system",
            ),
        ];
        for (what, users, containers, why) in cases {
            let state = State::load(doc_with(&users, &containers).as_bytes(), &reserved).unwrap();
            assert_eq!(state.set_aside.len(), 1, "{what}: {:?}", state.set_aside);
            assert!(
                state.set_aside[0].reason.contains(why),
                "{what}: {:?}",
                state.set_aside
            );
            assert_eq!(state.containers.len(), 1, "{what}");
            assert_eq!(state.users.len(), 2, "{what}");
            // Written back as found.
            let again = State::load(&state.to_json(), &reserved).unwrap();
            assert_eq!(again, state, "{what}");
        }
    }

    #[test]
    fn a_container_with_an_invalid_login_is_set_aside() {
        let doc = doc_with(
            "",
            &container(
                "x.example.com",
                r#""user": "bob", "ip": "10.17.1.3", "logins": ["a_b"]"#,
            ),
        );
        let state = State::from_json(doc.as_bytes()).unwrap();
        assert_eq!(state.set_aside.len(), 1, "{:?}", state.set_aside);
        assert!(state.set_aside[0].reason.contains("container login name"));
        assert!(String::from_utf8(state.to_json()).unwrap().contains("a_b"));
    }

    #[test]
    fn a_duplicate_reseller_id_is_set_aside() {
        let doc = doc_with("", "").replace(
            r#""resellers": {"#,
            r#""resellers": {"zed": {"id": 1, "created": "t", "created_by": "root"},"#,
        );
        let state = State::from_json(doc.as_bytes()).unwrap();
        assert_eq!(state.set_aside.len(), 1, "{:?}", state.set_aside);
        assert_eq!(state.set_aside[0].key, "zed");
        assert!(
            state.set_aside[0]
                .reason
                .contains("already the id of alice")
        );
    }

    #[test]
    fn keys_differing_only_in_case_are_both_kept() {
        for order in [
            ["Web.Example.com", "web.example.com"],
            ["web.example.com", "Web.Example.com"],
        ] {
            let doc = format!(
                r#"{{"schema_version": 1, "containers": {{
                "{}": {{"user": "root", "host": "h1.test", "ip": "10.16.0.2", "created": "t", "created_by": "root"}},
                "{}": {{"user": "root", "host": "h1.test", "ip": "10.16.0.3", "created": "t", "created_by": "root"}}}}}}"#,
                order[0], order[1]
            );
            let state = State::from_json(doc.as_bytes()).unwrap();
            assert_eq!(state.containers.len(), 1);
            assert_eq!(state.set_aside.len(), 1);
            assert_eq!(state.set_aside[0].key, "Web.Example.com");
            let text = String::from_utf8(state.to_json()).unwrap();
            assert!(text.contains("\"Web.Example.com\"") && text.contains("\"web.example.com\""));
        }
    }

    #[test]
    fn refuses_newer_schema() {
        let e = State::from_json(br#"{"schema_version": 9}"#).unwrap_err();
        assert!(matches!(e, DocumentError::TooNew(9)));
        assert!(State::from_json(b"{").is_err());
    }
}
