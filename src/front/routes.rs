//! The routes of the HTTPS front: which container answers for which name, and the changes
//! of a container's names and redirects (`sc NAME alias|altname add|remove`,
//! `sc NAME http-redirect|https-redirect`), checked against the name registry.

use std::collections::BTreeMap;

use crate::model::State;
use crate::model::names::ContainerName;
use crate::model::web::{Domain, NameList, Redirect, WebError, preview_name};

/// What a request for a name gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Served by the container under this name (its own name, an alternative name, the
    /// preview name).
    Serve(ContainerName),
    /// Redirected to the container's own name (an alias, a `www.` variant).
    Canonical(ContainerName),
}

impl Route {
    /// The container.
    pub fn container(&self) -> &ContainerName {
        match self {
            Self::Serve(c) | Self::Canonical(c) => c,
        }
    }
}

/// The containers the front serves, on every host: all of the cluster's, wherever they run,
/// but those being destroyed.
pub fn served(state: &State) -> impl Iterator<Item = (&ContainerName, &crate::model::Container)> {
    state.containers.iter().filter(|(_, c)| !c.destroying)
}

/// Every name the front serves, with what it gets: the same table on every host of the
/// cluster, since every host's haproxy serves every site (containers of other hosts across the
/// mesh). Containers being destroyed are not routed. A name is claimed once: container names
/// first, then alternative names, aliases, preview names and `www.` variants, each in
/// container-name order, so a clash (hand-edited data) has one deterministic winner.
pub fn routes(state: &State, company_domain: Option<&Domain>) -> BTreeMap<Domain, Route> {
    let sites: Vec<(&ContainerName, &crate::model::Container)> = served(state).collect();
    let mut out: BTreeMap<Domain, Route> = BTreeMap::new();
    let mut claim = |d: Domain, r: Route| {
        out.entry(d).or_insert(r);
    };
    // Every container name of the datastore is its own, even while it is being destroyed: an
    // alias can never take it.
    let taken: std::collections::HashSet<&str> =
        state.containers.keys().map(ContainerName::as_str).collect();
    for (name, _) in &sites {
        if let Ok(d) = Domain::new(name.as_str()) {
            claim(d, Route::Serve((*name).clone()));
        }
    }
    for (name, c) in &sites {
        for d in &c.web.altnames {
            if !taken.contains(d.as_str()) {
                claim(d.clone(), Route::Serve((*name).clone()));
            }
        }
    }
    for (name, c) in &sites {
        for d in &c.web.aliases {
            if !taken.contains(d.as_str()) {
                claim(d.clone(), Route::Canonical((*name).clone()));
            }
        }
    }
    if let Some(company) = company_domain {
        for (name, _) in &sites {
            if let Some(d) = preview_name(name, company)
                && !taken.contains(d.as_str())
            {
                claim(d, Route::Serve((*name).clone()));
            }
        }
    }
    for (name, c) in &sites {
        let own = Domain::new(name.as_str()).ok();
        for d in own.iter().chain(&c.web.altnames).chain(&c.web.aliases) {
            if d.as_str().starts_with("www.") {
                continue;
            }
            if let Ok(www) = Domain::new(&format!("www.{d}"))
                && !taken.contains(www.as_str())
            {
                claim(www, Route::Canonical((*name).clone()));
            }
        }
    }
    out
}

/// The domains of their own of the containers the front serves, each with its container: the
/// container's name, its alternative names and its aliases, as [`routes`] gives them out (not
/// the preview names or the `www.` variants, which are names inside those domains). The DNS
/// zones and the mail domains are these.
pub fn site_domains<'s>(
    state: &'s State,
    company_domain: Option<&Domain>,
) -> Vec<(Domain, &'s ContainerName, &'s crate::model::Container)> {
    routes(state, company_domain)
        .into_iter()
        .filter_map(|(domain, route)| {
            let (name, c) = state.containers.get_key_value(route.container())?;
            let own = match &route {
                Route::Serve(_) => {
                    domain.as_str() == name.as_str() || c.web.altnames.contains(&domain)
                }
                Route::Canonical(_) => c.web.aliases.contains(&domain),
            };
            own.then_some((domain, name, c))
        })
        .collect()
}

/// The names routed to container `name` (its own name first), from a routing table.
pub fn names_in(routes: &BTreeMap<Domain, Route>, name: &ContainerName) -> Vec<String> {
    let mut names: Vec<String> = routes
        .iter()
        .filter(|(_, r)| r.container() == name)
        .map(|(d, _)| d.to_string())
        .collect();
    own_name_first(&mut names, name);
    names
}

/// The names routed to each container (its own name first), from a routing table: what
/// [`names_in`] answers for every container, in one pass over the table.
pub fn names_by_container(
    routes: &BTreeMap<Domain, Route>,
) -> BTreeMap<&ContainerName, Vec<String>> {
    let mut out: BTreeMap<&ContainerName, Vec<String>> = BTreeMap::new();
    for (domain, route) in routes {
        out.entry(route.container())
            .or_default()
            .push(domain.to_string());
    }
    for (name, names) in &mut out {
        own_name_first(names, name);
    }
    out
}

/// Move the container's own name to the front of the names routed to it.
fn own_name_first(names: &mut Vec<String>, name: &ContainerName) {
    if let Some(i) = names.iter().position(|n| n == name.as_str()) {
        let own = names.remove(i);
        names.insert(0, own);
    }
}

/// Most names in one list of a container.
pub const NAMES_MAX: usize = 100;

/// A change to a container's web front was refused.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    /// The container name is invalid.
    #[error(transparent)]
    Name(#[from] crate::model::names::NameError),
    /// A domain or redirect is invalid.
    #[error(transparent)]
    Invalid(#[from] WebError),
    /// No such container, or the name is not in the list.
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with the data.
    #[error("{0}")]
    Refused(String),
    /// The name belongs to another container or is reserved.
    #[error(transparent)]
    Claim(#[from] crate::model::claims::ClaimError),
}

fn container_mut<'s>(
    state: &'s mut State,
    name: &ContainerName,
) -> Result<&'s mut crate::model::Container, FrontError> {
    state
        .containers
        .get_mut(name)
        .ok_or_else(|| FrontError::NotFound(format!("no container named {name}")))
}

/// `sc NAME http-redirect|https-redirect [VALUE]`: set the policy of one port, or reset it to
/// the default without a value. Refuses a pair that would loop.
pub fn set_redirect(
    state: &mut State,
    name: &ContainerName,
    https: bool,
    value: Option<&str>,
) -> Result<Option<Redirect>, FrontError> {
    let value = value.map(Redirect::parse).transpose()?;
    let c = container_mut(state, name)?;
    let mut web = c.web.clone();
    *(if https {
        &mut web.https_redirect
    } else {
        &mut web.http_redirect
    }) = value.clone();
    web.check_loop().map_err(FrontError::Refused)?;
    c.web = web;
    Ok(value)
}

/// `sc NAME alias|altname add|remove DOMAIN`: returns the list afterwards. An added domain
/// and `www.` of it must be free in the name registry ([`crate::model::claims::check_claim`]).
pub fn change_names(
    state: &mut State,
    reserved: &crate::model::claims::Reserved,
    name: &ContainerName,
    list: NameList,
    add: bool,
    domain: &str,
) -> Result<Vec<Domain>, FrontError> {
    let domain = Domain::new(domain)?;
    if !state.containers.contains_key(name) {
        return Err(FrontError::NotFound(format!("no container named {name}")));
    }
    if add {
        if domain.as_str() == name.as_str() {
            return Err(FrontError::Refused(format!(
                "{domain} is the container's own name"
            )));
        }
        let names = crate::model::claims::entry_names(&domain);
        crate::model::claims::check_claim(state, reserved, name, &names)?;
    }
    let c = container_mut(state, name)?;
    let key = list.key();
    if add {
        for other in [NameList::Aliases, NameList::Altnames] {
            if other.of(&mut c.web).contains(&domain) {
                return Err(FrontError::Refused(format!(
                    "{domain} is already in the {} of {name}",
                    other.key()
                )));
            }
        }
        let names = list.of(&mut c.web);
        if names.len() >= NAMES_MAX {
            return Err(FrontError::Refused(format!(
                "{name} already has {NAMES_MAX} {key}"
            )));
        }
        names.push(domain);
        names.sort();
    } else {
        let names = list.of(&mut c.web);
        let before = names.len();
        names.retain(|d| *d != domain);
        if names.len() == before {
            return Err(FrontError::NotFound(format!(
                "{domain} is not in the {key} of {name}"
            )));
        }
    }
    Ok(list.of(&mut c.web).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container on h1, one on h2 with an alias, and one on h2 being destroyed.
    fn state() -> State {
        State::from_json(
            br#"{"schema_version": 1, "containers": {
              "web.example.com": {"user": "root", "host": "h1.test", "ip": "10.16.0.2",
                "created": "t", "created_by": "root"},
              "far.example.com": {"user": "root", "host": "h2.test", "ip": "10.32.0.2",
                "created": "t", "created_by": "root", "aliases": ["far.example.net"]},
              "gone.example.com": {"user": "root", "host": "h2.test", "ip": "10.32.0.3",
                "created": "t", "created_by": "root", "destroying": true,
                "aliases": ["gone.example.net"]}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn every_container_of_the_cluster_is_routed_but_those_being_destroyed() {
        let routes = routes(&state(), None);
        let far = ContainerName::new("far.example.com").unwrap();
        let get = |d: &str| routes.get(&Domain::new(d).unwrap()).cloned();
        assert_eq!(get("far.example.com"), Some(Route::Serve(far.clone())));
        assert_eq!(get("far.example.net"), Some(Route::Canonical(far.clone())));
        assert_eq!(get("www.far.example.com"), Some(Route::Canonical(far)));
        assert!(get("web.example.com").is_some());
        assert_eq!(get("gone.example.com"), None);
        assert_eq!(get("gone.example.net"), None);
        let s = state();
        let served: Vec<&str> = served(&s).map(|(n, _)| n.as_str()).collect();
        assert_eq!(served, ["far.example.com", "web.example.com"]);
    }
}
