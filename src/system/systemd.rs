//! Requests to systemd (org.freedesktop.systemd1) and systemd-networkd over D-Bus.

use std::fmt;
use std::time::{Duration, Instant};

use zbus::{OwnedObjectPath, OwnedVariant};

/// Something srvctl asks of systemd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Re-run the generators and reload unit files.
    DaemonReload,
    /// Start a unit and wait until its job is done.
    Start(String),
    /// Stop a unit and wait until its job is done.
    Stop(String),
    /// Restart a unit if it is running.
    TryRestart(String),
    /// Restart a unit (start it if it is not running) and wait until its job is done.
    Restart(String),
    /// Send SIGKILL to every process of a unit.
    Kill(String),
    /// Queue the start of a unit and return at once (work that may take long, such as
    /// ordering certificates).
    Trigger(String),
    /// Make systemd-networkd re-read its configuration, if it runs.
    ReloadNetworkd,
    /// Reload a unit if it runs (haproxy: a hitless master-worker reload) and wait until the
    /// job is done; nothing when it does not run.
    Reload(String),
}

impl Request {
    /// Whether the request only makes running services pick up new files, so that it is moot
    /// when they do not run yet.
    pub fn is_refresh(&self) -> bool {
        matches!(
            self,
            Self::ReloadNetworkd | Self::TryRestart(_) | Self::Reload(_)
        )
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DaemonReload => f.write_str("daemon-reload"),
            Self::Start(u) => write!(f, "start {u}"),
            Self::Stop(u) => write!(f, "stop {u}"),
            Self::TryRestart(u) => write!(f, "try-restart {u}"),
            Self::Trigger(u) => write!(f, "start --no-block {u}"),
            Self::Restart(u) => write!(f, "restart {u}"),
            Self::Kill(u) => write!(f, "kill {u}"),
            Self::ReloadNetworkd => f.write_str("reload systemd-networkd"),
            Self::Reload(u) => write!(f, "reload {u}"),
        }
    }
}

/// A request failed.
#[derive(Debug, thiserror::Error)]
#[error("systemd: {request}: {msg}")]
pub struct SystemdError {
    request: String,
    msg: String,
}

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long to wait for a start or stop job.
const JOB_TIMEOUT: Duration = Duration::from_secs(600);

/// Send `request` on the system bus.
pub fn send(request: &Request) -> Result<(), SystemdError> {
    let err = |e: zbus::Error| SystemdError {
        request: request.to_string(),
        msg: e.to_string(),
    };
    zbus::block_on(async {
        let bus = match zbus::Connection::system().await {
            Ok(bus) => bus,
            // Early at boot (srvctl-regenerate runs before D-Bus) nothing that would need a
            // reload or a restart runs yet: it reads the new files when it starts.
            Err(_) if request.is_refresh() => return Ok(()),
            Err(e) => return Err(err(e)),
        };
        let call = |method: &'static str, unit: &str| {
            let bus = bus.clone();
            let unit = unit.to_owned();
            async move {
                bus.call_method(
                    Some(SYSTEMD),
                    MANAGER_PATH,
                    Some(MANAGER),
                    method,
                    &(unit.as_str(), "replace"),
                )
                .await
            }
        };
        match request {
            Request::DaemonReload => {
                bus.call_method(Some(SYSTEMD), MANAGER_PATH, Some(MANAGER), "Reload", &())
                    .await
                    .map_err(err)?;
                Ok(())
            }
            Request::Start(unit)
            | Request::Stop(unit)
            | Request::Restart(unit)
            | Request::Reload(unit) => {
                let method = match request {
                    Request::Start(_) => "StartUnit",
                    Request::Stop(_) => "StopUnit",
                    // try-reload-or-restart: a reload when it runs, nothing when it does not.
                    Request::Reload(_) => "ReloadOrTryRestartUnit",
                    _ => "RestartUnit",
                };
                let reply = match call(method, unit).await {
                    Err(e) if request.is_refresh() && no_such_unit(&e) => return Ok(()),
                    other => other.map_err(err)?,
                };
                let job: OwnedObjectPath = reply.body().deserialize().map_err(err)?;
                wait_for_job(&bus, &job).await.map_err(err)?;
                let state = active_state(&bus, unit).await.map_err(err)?;
                if state == "failed" {
                    return Err(SystemdError {
                        request: request.to_string(),
                        msg: format!("{unit} failed (see journalctl -u {unit})"),
                    });
                }
                Ok(())
            }
            Request::TryRestart(unit) => match call("TryRestartUnit", unit).await {
                Err(e) if !no_such_unit(&e) => Err(err(e)),
                _ => Ok(()),
            },
            Request::Trigger(unit) => {
                call("StartUnit", unit).await.map_err(err)?;
                Ok(())
            }
            Request::Kill(unit) => {
                bus.call_method(
                    Some(SYSTEMD),
                    MANAGER_PATH,
                    Some(MANAGER),
                    "KillUnit",
                    &(unit.as_str(), "all", 9i32),
                )
                .await
                .map_err(err)?;
                Ok(())
            }
            Request::ReloadNetworkd => {
                let reply = bus
                    .call_method(
                        Some("org.freedesktop.network1"),
                        "/org/freedesktop/network1",
                        Some("org.freedesktop.network1.Manager"),
                        "Reload",
                        &(),
                    )
                    .await;
                match reply {
                    Ok(_) => Ok(()),
                    // networkd is not running (e.g. early at boot): it reads the files when it starts.
                    Err(zbus::Error::MethodError(name, _, _))
                        if name.as_str().ends_with("ServiceUnknown")
                            || name.as_str().ends_with("NameHasNoOwner") =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(err(e)),
                }
            }
        }
    })
}

/// Whether systemd answered that the unit does not exist (e.g. haproxy is not installed): a
/// reload or restart of it is then moot.
fn no_such_unit(e: &zbus::Error) -> bool {
    matches!(e, zbus::Error::MethodError(name, _, _) if name.as_str().ends_with(".NoSuchUnit"))
}

async fn property(
    bus: &zbus::Connection,
    path: &str,
    interface: &str,
    name: &str,
) -> zbus::Result<OwnedVariant> {
    let reply = bus
        .call_method(
            Some(SYSTEMD),
            path,
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &(interface, name),
        )
        .await?;
    reply.body().deserialize()
}

/// Poll until the job object is gone (it disappears when the job finishes).
async fn wait_for_job(bus: &zbus::Connection, job: &OwnedObjectPath) -> zbus::Result<()> {
    let start = Instant::now();
    while start.elapsed() < JOB_TIMEOUT {
        match property(bus, job.as_str(), "org.freedesktop.systemd1.Job", "State").await {
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => return Ok(()),
        }
    }
    Err(zbus::Error::Failure(format!(
        "job {} did not finish in {JOB_TIMEOUT:?}",
        job.as_str()
    )))
}

async fn active_state(bus: &zbus::Connection, unit: &str) -> zbus::Result<String> {
    let reply = bus
        .call_method(
            Some(SYSTEMD),
            MANAGER_PATH,
            Some(MANAGER),
            "LoadUnit",
            &(unit,),
        )
        .await?;
    let path: OwnedObjectPath = reply.body().deserialize()?;
    let value = property(
        bus,
        path.as_str(),
        "org.freedesktop.systemd1.Unit",
        "ActiveState",
    )
    .await?;
    String::try_from(value).map_err(|e| zbus::Error::Failure(e.to_string()))
}

/// The live state of one unit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnitState {
    /// Unit name.
    pub name: String,
    /// `active`, `inactive`, `failed`, `activating`, …
    pub active: String,
    /// `running`, `dead`, `exited`, …
    pub sub: String,
    /// When it entered its current active state (µs since the epoch), if known.
    pub since_usec: u64,
}

type ListedUnit = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

/// Every loaded unit matching `pattern`, with one D-Bus call for the list and one per active
/// unit for its start time.
pub fn unit_states(pattern: &str) -> Result<Vec<UnitState>, SystemdError> {
    let err = |e: zbus::Error| SystemdError {
        request: format!("list units {pattern}"),
        msg: e.to_string(),
    };
    zbus::block_on(async {
        let bus = zbus::Connection::system().await.map_err(err)?;
        let reply = bus
            .call_method(
                Some(SYSTEMD),
                MANAGER_PATH,
                Some(MANAGER),
                "ListUnitsByPatterns",
                &(Vec::<&str>::new(), vec![pattern]),
            )
            .await
            .map_err(err)?;
        let units: Vec<ListedUnit> = reply.body().deserialize().map_err(err)?;
        let mut out = Vec::with_capacity(units.len());
        for (name, _, _, active, sub, _, path, _, _, _) in units {
            let since_usec = if active == "inactive" {
                0
            } else {
                let value = property(
                    &bus,
                    path.as_str(),
                    "org.freedesktop.systemd1.Unit",
                    "ActiveEnterTimestamp",
                )
                .await
                .map_err(err)?;
                u64::try_from(value).unwrap_or_default()
            };
            out.push(UnitState {
                name,
                active,
                sub,
                since_usec,
            });
        }
        Ok(out)
    })
}
