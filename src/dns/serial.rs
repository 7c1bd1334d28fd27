//! The SOA serial of each zone: render writes the time of the datastore's last write; before a
//! zone file is written, its serial is settled against the live file's. A zone whose content
//! (everything but the serial) is unchanged keeps its live serial, so its file is not written
//! and named neither reloads it nor transfers it again; a changed zone takes the datastore's
//! time or, when that is not larger (a clock set back, a datastore restored from a backup),
//! the live serial plus one: the serial always grows.

use std::ops::Range;

/// The rendered zone file `rendered` as it is to be written over `live`, when its serial must
/// differ from the rendered one; `None` to write it as rendered (no live file, or one without
/// a serial srvctl could read).
pub fn settle(rendered: &[u8], live: Option<&[u8]>) -> Option<Vec<u8>> {
    let rendered = std::str::from_utf8(rendered).ok()?;
    let live = std::str::from_utf8(live?).ok()?;
    let (at, floor) = locate(rendered)?;
    let (was_at, was) = locate(live)?;
    let (before, after) = (&rendered[..at.start], &rendered[at.end..]);
    let serial = if before == &live[..was_at.start] && after == &live[was_at.end..] {
        was
    } else {
        floor.max(was.saturating_add(1))
    };
    Some(format!("{before}{serial}{after}").into_bytes())
}

/// Where the serial of the zone file `text` lies, and its value: the first number after the
/// `(` of its SOA record, as [`crate::dns::zones::zone_file`] writes it.
fn locate(text: &str) -> Option<(Range<usize>, u32)> {
    let soa = text.find(" IN SOA ")?;
    let open = soa + text[soa..].find('(')? + 1;
    let start = open + text[open..].len() - text[open..].trim_start_matches(' ').len();
    let len = text[start..].bytes().take_while(u8::is_ascii_digit).count();
    let serial = text[start..start + len].parse().ok()?;
    Some((start..start + len, serial))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(serial: u32, address: &str) -> Vec<u8> {
        format!(
            "$TTL 300\na.test. IN SOA h1.test. hostmaster.a.test. ( {serial} 3600 900 1209600 300 )\n\
             a.test. IN NS h1.test.\na.test. IN A {address}\n"
        )
        .into_bytes()
    }

    fn serial(text: &[u8]) -> u32 {
        locate(std::str::from_utf8(text).unwrap()).unwrap().1
    }

    #[test]
    fn an_unchanged_zone_keeps_its_serial() {
        let live = zone(100, "192.0.2.1");
        let settled = settle(&zone(200, "192.0.2.1"), Some(&live)).unwrap();
        assert_eq!(settled, live);
    }

    #[test]
    fn a_changed_zone_takes_the_datastore_time() {
        let settled = settle(&zone(200, "192.0.2.2"), Some(&zone(100, "192.0.2.1"))).unwrap();
        assert_eq!(settled, zone(200, "192.0.2.2"));
    }

    #[test]
    fn a_changed_zone_grows_even_when_the_datastore_time_is_older() {
        let live = zone(500, "192.0.2.1");
        let settled = settle(&zone(200, "192.0.2.2"), Some(&live)).unwrap();
        assert_eq!(serial(&settled), 501);
        assert_eq!(settled, zone(501, "192.0.2.2"));
        // Also when both are the same second.
        let settled = settle(&zone(500, "192.0.2.2"), Some(&live)).unwrap();
        assert_eq!(serial(&settled), 501);
    }

    #[test]
    fn without_a_readable_live_serial_the_rendered_one_stands() {
        assert_eq!(settle(&zone(200, "192.0.2.1"), None), None);
        assert_eq!(settle(&zone(200, "192.0.2.1"), Some(b"garbage\n")), None);
        assert_eq!(settle(&zone(200, "192.0.2.1"), Some(&[0xff, 0xfe])), None);
    }
}
