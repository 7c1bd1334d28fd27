//! `sc NAME dns add|remove TYPE VALUE [--name LABEL]`: a site's own DNS records, kept in its
//! container's record and served by the DNS master in the zone of the site's name.

use super::edit::OpError;
use super::transaction::Report;
use crate::model::State;
use crate::model::dns::{self, DnsRecord};
use crate::model::names::ContainerName;

/// Add (`add`) or remove the record `name` `kind` `value` of container `site`; the report
/// lists the site's records afterwards. Adding one it has, or removing one it has not, is
/// refused.
pub fn change(
    state: &mut State,
    site: &ContainerName,
    add: bool,
    (name, kind, value): (&str, &str, &str),
) -> Result<Report, OpError> {
    let record = DnsRecord::new(name, kind, value)?;
    let container = state
        .containers
        .get_mut(site)
        .ok_or_else(|| OpError::NotFound {
            kind: "container",
            name: site.to_string(),
        })?;
    let selector = container.dkim.as_ref().map(|k| k.selector().as_str());
    if add {
        dns::check_addition(&container.dns, &record, selector)?;
    }
    let records = &mut container.dns;
    if add {
        records.push(record.clone());
        records.sort();
    } else {
        let before = records.len();
        records.retain(|r| *r != record);
        if records.len() == before {
            return Err(OpError::NotFound {
                kind: "DNS record",
                name: format!("{record} of {site}"),
            });
        }
    }
    Ok(Report::Front {
        name: site.to_string(),
        key: "dns".into(),
        change: format!(
            "DNS record {record} {}",
            if add { "added" } else { "removed" }
        ),
        value: serde_json::json!(records),
    })
}
