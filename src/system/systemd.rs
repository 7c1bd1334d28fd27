//! Requests to systemd (org.freedesktop.systemd1) and systemd-networkd over D-Bus.

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use zbus::export::futures_core::Stream;
use zbus::{MatchRule, MessageStream, OwnedObjectPath, OwnedVariant};

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
    /// Queue the start of a unit that does not run and return at once; nothing when it runs
    /// (haproxy once the first front is rendered). Moot early at boot, before D-Bus: the unit
    /// then starts with its target, after srvctl-regenerate.
    StartIfStopped(String),
    /// Run `command`, a control program of the unit (`rndc` of named), if the unit runs;
    /// nothing when it does not (it reads its files when it starts).
    Control {
        /// The unit.
        unit: String,
        /// The command that asks it.
        command: super::CommandLine,
    },
}

impl Request {
    /// Whether the request only makes running services pick up new files, so that it is moot
    /// when they do not run yet.
    pub fn is_refresh(&self) -> bool {
        matches!(
            self,
            Self::ReloadNetworkd
                | Self::TryRestart(_)
                | Self::Reload(_)
                | Self::StartIfStopped(_)
                | Self::Control { .. }
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
            Self::StartIfStopped(u) => write!(f, "start --no-block {u} (if it does not run)"),
            Self::Control { unit, command } => write!(f, "{command} (if {unit} runs)"),
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

impl SystemdError {
    /// The job of `request` on `unit` ended with `result`, which is not a success.
    pub fn job(request: &Request, unit: &str, result: &str) -> Self {
        let what = match result {
            "failed" => "failed",
            "dependency" => "did not run: a unit it depends on failed",
            "timeout" => "timed out",
            "canceled" => "was canceled",
            other => return Self::job_text(request, unit, &format!("ended with {other:?}")),
        };
        Self::job_text(request, unit, what)
    }

    /// The control command of `request` failed with `msg`.
    pub fn control(request: &Request, msg: &str) -> Self {
        Self {
            request: request.to_string(),
            msg: msg.to_owned(),
        }
    }

    fn job_text(request: &Request, unit: &str, what: &str) -> Self {
        Self {
            request: request.to_string(),
            msg: format!("the job for {unit} {what} (see `journalctl -u {unit}`)"),
        }
    }
}

/// The outcome of a job from the result its `JobRemoved` signal carries: `done` and
/// `skipped` (nothing to do in the unit's state) are successes, everything else fails.
pub fn job_outcome(request: &Request, unit: &str, result: &str) -> Result<(), SystemdError> {
    match result {
        "done" | "skipped" => Ok(()),
        other => Err(SystemdError::job(request, unit, other)),
    }
}

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long to wait for a start or stop job.
const JOB_TIMEOUT: Duration = Duration::from_secs(600);

/// The job mode of a call: a reload runs at once, whatever the unit is ordered after
/// (haproxy after srvctl-regenerate, which asks for the reload and waits for it: in mode
/// `replace` the reload would wait for the end of the very job that waits for it).
fn job_mode(method: &str) -> &'static str {
    if method == "ReloadOrTryRestartUnit" {
        "ignore-dependencies"
    } else {
        "replace"
    }
}

/// Send `request` on the system bus; a [`Request::Control`] asks the bus whether its unit runs
/// and then has `run` run its command.
pub fn send(
    request: &Request,
    run: impl FnOnce(&super::CommandLine) -> std::io::Result<()>,
) -> Result<(), SystemdError> {
    let err = |e: zbus::Error| SystemdError {
        request: request.to_string(),
        msg: e.to_string(),
    };
    block_on(async {
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
                    &(unit.as_str(), job_mode(method)),
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
                // Subscribe before the call, so that the job's end cannot be missed.
                let mut removed = job_removed(&bus).await.map_err(err)?;
                let reply = match call(method, unit).await {
                    Err(e) if request.is_refresh() && no_such_unit(&e) => return Ok(()),
                    other => other.map_err(err)?,
                };
                let job: OwnedObjectPath = reply.body().deserialize().map_err(err)?;
                let result = wait_for_job(&mut removed, &job).await.map_err(err)?;
                job_outcome(request, unit, &result)
            }
            Request::TryRestart(unit) => match call("TryRestartUnit", unit).await {
                Err(e) if !no_such_unit(&e) => Err(err(e)),
                _ => Ok(()),
            },
            Request::Trigger(unit) => {
                call("StartUnit", unit).await.map_err(err)?;
                Ok(())
            }
            // A start of a running unit is a job with nothing to do.
            Request::StartIfStopped(unit) => match call("StartUnit", unit).await {
                Err(e) if !no_such_unit(&e) => Err(err(e)),
                _ => Ok(()),
            },
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
            Request::Control { unit, command } => {
                let path: OwnedObjectPath = match bus
                    .call_method(
                        Some(SYSTEMD),
                        MANAGER_PATH,
                        Some(MANAGER),
                        "GetUnit",
                        &(unit,),
                    )
                    .await
                {
                    Ok(reply) => reply.body().deserialize().map_err(err)?,
                    // Not loaded: it does not run.
                    Err(e) if no_such_unit(&e) => return Ok(()),
                    Err(e) => return Err(err(e)),
                };
                let state = property(
                    &bus,
                    path.as_str(),
                    "org.freedesktop.systemd1.Unit",
                    "ActiveState",
                )
                .await
                .map_err(err)?;
                let state = String::try_from(state).map_err(err)?;
                // A unit still starting reads the new files by itself.
                if matches!(state.as_str(), "active" | "reloading") {
                    run(command).map_err(|e| SystemdError::control(request, &e.to_string()))?;
                }
                Ok(())
            }
            Request::ReloadNetworkd => {
                // Without auto-start: early at boot D-Bus would otherwise start networkd for
                // the call, which is ordered after srvctl-regenerate, and the call would time
                // out after 25 s and fail the regenerate.
                let reply = async {
                    zbus::proxy::Builder::<zbus::Proxy<'_>>::new(&bus)
                        .destination("org.freedesktop.network1")
                        .path("/org/freedesktop/network1")
                        .interface("org.freedesktop.network1.Manager")
                        .cache_properties(zbus::proxy::CacheProperties::No)
                        .build()
                        .await?
                        .call_with_flags::<_, _, ()>(
                            "Reload",
                            zbus::proxy::MethodFlags::NO_AUTO_START,
                            &(),
                        )
                        .await
                }
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
                    Err(zbus::Error::FDO(e))
                        if matches!(
                            *e,
                            zbus::fdo::Error::ServiceUnknown(_)
                                | zbus::fdo::Error::NameHasNoOwner(_)
                        ) =>
                    {
                        Ok(())
                    }
                    Err(e) => Err(err(e)),
                }
            }
        }
    })
}

/// Run `future` to its end on a small runtime with a timer (for the job timeout).
fn block_on<T>(future: impl Future<Output = Result<T, SystemdError>>) -> Result<T, SystemdError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| SystemdError {
            request: "start an async runtime".into(),
            msg: e.to_string(),
        })?
        .block_on(future)
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

/// The `JobRemoved` signals of systemd's manager, from now on.
async fn job_removed(bus: &zbus::Connection) -> zbus::Result<MessageStream> {
    // systemd emits job signals only while some client is subscribed; an error here (e.g.
    // already subscribed) leaves the signals flowing.
    let _ = bus
        .call_method(Some(SYSTEMD), MANAGER_PATH, Some(MANAGER), "Subscribe", &())
        .await;
    // Signals carry the sender's unique name: match on it, so no other client can fake one.
    let owner: String = bus
        .call_method(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus"),
            "GetNameOwner",
            &(SYSTEMD,),
        )
        .await?
        .body()
        .deserialize()?;
    let rule = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(owner.as_str())
        .path(MANAGER_PATH)
        .interface(MANAGER)
        .member("JobRemoved")
        .build()?;
    MessageStream::for_match_rule(rule, bus, None).await
}

/// Wait (at most [`JOB_TIMEOUT`]) for the `JobRemoved` signal of `job`; returns its result.
async fn wait_for_job(stream: &mut MessageStream, job: &OwnedObjectPath) -> zbus::Result<String> {
    let next = async {
        loop {
            let message = std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx))
                .await
                .ok_or_else(|| zbus::Error::Failure("the bus connection closed".into()))??;
            let (_id, path, _unit, result): (u32, OwnedObjectPath, String, String) =
                message.body().deserialize()?;
            if path == *job {
                return Ok(result);
            }
        }
    };
    match tokio::time::timeout(JOB_TIMEOUT, next).await {
        Ok(result) => result,
        Err(_) => Err(zbus::Error::Failure(format!(
            "job {} did not finish in {JOB_TIMEOUT:?}",
            job.as_str()
        ))),
    }
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
    /// When it entered its current active state (µs since the epoch); 0 when not known
    /// (inactive, or listed by a pattern of several units).
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

/// Every loaded unit matching `pattern`, with one D-Bus call (`ListUnitsByPatterns`), however
/// many units match: `sc status` on a host with hundreds of containers asks systemd once.
/// When `pattern` names one unit (no glob), a second call gives the time it entered its
/// state; a list has none ([`UnitState::since_usec`] is 0).
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
        let single = !pattern.contains(['*', '?', '[']);
        for (name, _, _, active, sub, _, path, _, _, _) in units {
            let since_usec = if active == "inactive" || !single {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_results_map_to_success_or_an_error_naming_the_unit() {
        let unit = "systemd-nspawn@web.example.com.service";
        let start = Request::Start(unit.into());
        for ok in ["done", "skipped"] {
            assert!(job_outcome(&start, unit, ok).is_ok(), "{ok}");
        }
        for (result, words) in [
            ("failed", "failed"),
            ("dependency", "depends on failed"),
            ("timeout", "timed out"),
            ("canceled", "canceled"),
            ("invalid", "\"invalid\""),
        ] {
            let e = job_outcome(&start, unit, result).unwrap_err().to_string();
            assert!(e.contains(words), "{result}: {e}");
            assert!(e.contains(&format!("journalctl -u {unit}")), "{e}");
            assert!(e.starts_with(&format!("systemd: start {unit}: ")), "{e}");
        }
    }
}
