//! haproxy's runtime API, the pure part: the commands that bring a running haproxy from the
//! front it holds to a newly rendered one, and the check that it holds the new one after.
//!
//! A site, alias or altname added or removed changes map entries; a certificate installed,
//! renewed or removed changes the crt-list. Both reach the running haproxy as commands on its
//! admin socket (`add map`/`set map`/`del map`; `new ssl cert`, `set ssl cert`, `commit ssl
//! cert`, `add ssl crt-list`, `del ssl crt-list`, `del ssl cert`), without a reload; the files
//! are written as before, for the next start. [`crate::front::live`] sends them.

use std::collections::BTreeMap;

/// One command of the runtime API, with what a successful answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The command line, without its newline.
    pub line: String,
    /// A payload sent after the line (`<<`), ended by an empty line: a certificate's PEM.
    pub payload: Option<String>,
    /// A successful answer contains this; `None`: a successful answer is empty.
    pub success: Option<&'static str>,
}

impl Command {
    fn new(line: String, success: Option<&'static str>) -> Self {
        Self {
            line,
            payload: None,
            success,
        }
    }

    /// The bytes sent on the socket.
    pub fn request(&self) -> Vec<u8> {
        match &self.payload {
            None => format!("{}\n", self.line).into_bytes(),
            Some(payload) => format!("{} <<\n{payload}\n", self.line).into_bytes(),
        }
    }

    /// Whether haproxy's `answer` says the command succeeded.
    pub fn succeeded(&self, answer: &str) -> bool {
        match self.success {
            None => answer.trim().is_empty(),
            Some(word) => answer.contains(word),
        }
    }
}

/// A word that can stand in a command line as it is: haproxy's CLI splits lines at blanks and
/// commands at `;`, and reads `\` as an escape.
fn plain(word: &str) -> bool {
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_graphic() && c != ';' && c != '\\')
}

/// The entries of a map file: `key value` lines, comments and blank lines skipped.
pub fn map_file(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((k, v)) => (k.to_owned(), v.trim().to_owned()),
            None => (l.to_owned(), String::new()),
        })
        .collect();
    out.sort();
    out
}

/// The entries of `show map FILE`: `0xID key value` lines.
pub fn shown_map(answer: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = answer
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(id, _)| id.starts_with("0x"))
        .map(|(_, rest)| match rest.split_once(' ') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (rest.to_owned(), String::new()),
        })
        .collect();
    out.sort();
    out
}

/// The commands that change the map `map` (its path, as haproxy.cfg names it) from the
/// entries `old` to `new` (both as [`map_file`] reads them), or `None` when a key or value
/// cannot be sent as it is.
pub fn map_commands(
    map: &str,
    old: &[(String, String)],
    new: &[(String, String)],
) -> Option<Vec<Command>> {
    let old: BTreeMap<&str, &str> = old.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let new: BTreeMap<&str, &str> = new.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut out = Vec::new();
    for (key, value) in &new {
        let verb = match old.get(key) {
            None => "add",
            Some(was) if was != value => "set",
            Some(_) => continue,
        };
        if !plain(key) || !plain(value) {
            return None;
        }
        out.push(Command::new(
            format!("{verb} map {map} {key} {value}"),
            None,
        ));
    }
    for key in old.keys().filter(|k| !new.contains_key(*k)) {
        if !plain(key) {
            return None;
        }
        out.push(Command::new(format!("del map {map} {key}"), None));
    }
    Some(out)
}

/// One certificate of a crt-list file: its path, and the comment above it (which names its
/// source and when it was installed, so it changes with the certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The certificate file.
    pub path: String,
    /// The comment line just above it, if any.
    pub note: Option<String>,
}

/// The certificates of a crt-list file, in order.
pub fn crt_list_file(text: &str) -> Vec<Listed> {
    let mut note = None;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(comment) = line.strip_prefix('#') {
            note = Some(comment.trim().to_owned());
        } else if !line.is_empty() {
            out.push(Listed {
                path: line.to_owned(),
                note: note.take(),
            });
        }
    }
    out
}

/// The certificate files of `show ssl crt-list FILE`, in order.
pub fn shown_crt_list(answer: &str) -> Vec<String> {
    answer
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// How the certificates of a crt-list change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertChanges {
    /// New certificates, in the new list's order.
    pub added: Vec<String>,
    /// Certificates listed before and after whose note changed: installed again.
    pub renewed: Vec<String>,
    /// Certificates no longer listed.
    pub removed: Vec<String>,
}

impl CertChanges {
    /// The certificates whose PEM must be sent.
    pub fn loaded(&self) -> impl Iterator<Item = &String> {
        self.added.iter().chain(&self.renewed)
    }
}

/// What changes from the crt-list `old` to `new`, or `None` when the first certificate (the
/// default one, which only the order of the file decides) changes: that needs a reload.
pub fn cert_changes(old: &[Listed], new: &[Listed]) -> Option<CertChanges> {
    if old.first().map(|l| &l.path) != new.first().map(|l| &l.path) {
        return None;
    }
    let before: BTreeMap<&str, &Listed> = old.iter().map(|l| (l.path.as_str(), l)).collect();
    let after: BTreeMap<&str, &Listed> = new.iter().map(|l| (l.path.as_str(), l)).collect();
    let mut changes = CertChanges::default();
    for l in new {
        match before.get(l.path.as_str()) {
            None => changes.added.push(l.path.clone()),
            Some(was) if was.note != l.note => changes.renewed.push(l.path.clone()),
            Some(_) => {}
        }
    }
    changes.removed = old
        .iter()
        .filter(|l| !after.contains_key(l.path.as_str()))
        .map(|l| l.path.clone())
        .collect();
    Some(changes)
}

/// The commands that make the running haproxy serve `changes` of the crt-list `list` (its
/// path, as haproxy.cfg names it); `pem` gives each loaded certificate's file (chain and key).
/// `None` when a path cannot be sent as it is or a PEM is missing.
pub fn cert_commands(
    list: &str,
    changes: &CertChanges,
    pem: &BTreeMap<String, String>,
) -> Option<Vec<Command>> {
    if !changes.loaded().chain(&changes.removed).all(|p| plain(p)) {
        return None;
    }
    let mut out = Vec::new();
    let set = |path: &String| -> Option<Command> {
        // The payload ends at the first empty line: PEM does not need any.
        let body: String = pem
            .get(path)?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| format!("{l}\n"))
            .collect();
        Some(Command {
            line: format!("set ssl cert {path}"),
            payload: Some(body),
            success: Some("Transaction"),
        })
    };
    let commit = |path: &String| Command::new(format!("commit ssl cert {path}"), Some("Success!"));
    for path in &changes.added {
        out.push(Command::new(
            format!("new ssl cert {path}"),
            Some("New empty certificate store"),
        ));
        out.push(set(path)?);
        out.push(commit(path));
        out.push(Command::new(
            format!("add ssl crt-list {list} {path}"),
            Some("Success!"),
        ));
    }
    for path in &changes.renewed {
        out.push(set(path)?);
        out.push(commit(path));
    }
    for path in &changes.removed {
        out.push(Command::new(
            format!("del ssl crt-list {list} {path}"),
            Some("deleted in crtlist"),
        ));
        out.push(Command::new(
            format!("del ssl cert {path}"),
            Some("deleted!"),
        ));
    }
    Some(out)
}

/// Whether the running haproxy's map (as `show map` answered) holds exactly the entries of the
/// new file; else what differs.
pub fn same_map(
    map: &str,
    held: &[(String, String)],
    want: &[(String, String)],
) -> Result<(), String> {
    if held == want {
        return Ok(());
    }
    let missing = want.iter().find(|e| !held.contains(e));
    let extra = held.iter().find(|e| !want.contains(e));
    Err(match (missing, extra) {
        (Some((k, v)), _) => format!("{map}: haproxy lacks `{k} {v}`"),
        (None, Some((k, v))) => format!("{map}: haproxy holds `{k} {v}` too"),
        // Equal as sets, so one entry is held twice.
        (None, None) => format!(
            "{map}: haproxy holds {} entries, the file {}",
            held.len(),
            want.len()
        ),
    })
}

/// Whether the running haproxy's crt-list (as `show ssl crt-list` answered) lists the
/// certificates of the new file: the same default first, the same set; else what differs.
pub fn same_crt_list(list: &str, held: &[String], want: &[Listed]) -> Result<(), String> {
    let want: Vec<&String> = want.iter().map(|l| &l.path).collect();
    if held.first() != want.first().copied() {
        return Err(format!(
            "{list}: haproxy's default certificate is {:?}, not {:?}",
            held.first(),
            want.first()
        ));
    }
    let mut a: Vec<&String> = held.iter().collect();
    let mut b = want;
    a.sort();
    b.sort();
    if a != b {
        return Err(format!(
            "{list}: haproxy lists {} certificates, the file {}",
            a.len(),
            b.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<(String, String)> {
        map_file(text)
    }

    #[test]
    fn a_map_change_is_adds_sets_and_deletes() {
        let old = entries(
            "# header\na.example 10.16.0.2:80\nb.example 10.16.0.3:80\ngone.example 10.16.0.9:80\n",
        );
        let new =
            entries("a.example 10.16.0.2:80\nb.example 10.16.0.4:8080\nnew.example 10.16.0.5:80\n");
        let cmds = map_commands("/m/hosts.map", &old, &new).unwrap();
        let lines: Vec<&str> = cmds.iter().map(|c| c.line.as_str()).collect();
        assert_eq!(
            lines,
            [
                "set map /m/hosts.map b.example 10.16.0.4:8080",
                "add map /m/hosts.map new.example 10.16.0.5:80",
                "del map /m/hosts.map gone.example",
            ]
        );
        assert!(
            cmds.iter()
                .all(|c| c.succeeded("\n") && !c.succeeded("Key not found.\n"))
        );
        assert_eq!(
            cmds[0].request(),
            b"set map /m/hosts.map b.example 10.16.0.4:8080\n"
        );
        // Nothing changed: nothing to send.
        assert_eq!(map_commands("/m", &new, &new), Some(Vec::new()));
    }

    #[test]
    fn a_word_haproxy_would_split_is_never_sent() {
        let old = entries("");
        for bad in ["a.example x;del", "a.example a\\b"] {
            assert_eq!(map_commands("/m", &old, &entries(bad)), None, "{bad}");
        }
    }

    #[test]
    fn show_map_is_read_back_and_compared() {
        let held =
            shown_map("0x55f017d14f30 a.test 127.0.0.2:8080\n0x55f0 b.test 127.0.0.3:81\n\n");
        let want = entries("b.test 127.0.0.3:81\na.test 127.0.0.2:8080\n");
        assert_eq!(same_map("m", &held, &want), Ok(()));
        let stale = shown_map("0x1 a.test 127.0.0.2:8080\n");
        let err = same_map("m", &stale, &want).unwrap_err();
        assert!(err.contains("lacks `b.test 127.0.0.3:81`"), "{err}");
        let twice = shown_map(
            "0x1 a.test 127.0.0.2:8080\n0x2 a.test 127.0.0.2:8080\n0x3 b.test 127.0.0.3:81\n",
        );
        assert!(same_map("m", &twice, &want).is_err());
        // An error answer holds no entries.
        assert!(shown_map("Unknown map identifier. Please use #<id> or <file>.\n").is_empty());
    }

    const OLD: &str = "# the first certificate is the default one\n/c/_default.pem\n\
        # a.example: internal, issued 1\n/c/a.example.pem\n# gone: internal, issued 1\n/c/gone.pem\n";
    const NEW: &str = "# the first certificate is the default one\n/c/_default.pem\n\
        # a.example: acme, issued 2\n/c/a.example.pem\n# b.example: internal, issued 2\n/c/b.example.pem\n";

    #[test]
    fn a_crt_list_change_adds_renews_and_removes_certificates() {
        let changes = cert_changes(&crt_list_file(OLD), &crt_list_file(NEW)).unwrap();
        assert_eq!(
            changes,
            CertChanges {
                added: vec!["/c/b.example.pem".into()],
                renewed: vec!["/c/a.example.pem".into()],
                removed: vec!["/c/gone.pem".into()],
            }
        );
        let pem: BTreeMap<String, String> = [
            ("/c/a.example.pem".into(), "-----A-----\n\nkey a\n".into()),
            ("/c/b.example.pem".into(), "-----B-----\n".into()),
        ]
        .into();
        let cmds = cert_commands("/h/crt-list", &changes, &pem).unwrap();
        let lines: Vec<&str> = cmds.iter().map(|c| c.line.as_str()).collect();
        assert_eq!(
            lines,
            [
                "new ssl cert /c/b.example.pem",
                "set ssl cert /c/b.example.pem",
                "commit ssl cert /c/b.example.pem",
                "add ssl crt-list /h/crt-list /c/b.example.pem",
                "set ssl cert /c/a.example.pem",
                "commit ssl cert /c/a.example.pem",
                "del ssl crt-list /h/crt-list /c/gone.pem",
                "del ssl cert /c/gone.pem",
            ]
        );
        // The payload has no empty line (it would end it early) and ends with one.
        assert_eq!(
            cmds[4].request(),
            b"set ssl cert /c/a.example.pem <<\n-----A-----\nkey a\n\n"
        );
        assert!(cmds[2].succeeded("Committing /c/b.example.pem\nSuccess!\n"));
        assert!(!cmds[2].succeeded("Can't commit: no transaction\n"));
        // A missing PEM: nothing can be sent.
        assert_eq!(
            cert_commands("/h/crt-list", &changes, &BTreeMap::new()),
            None
        );
    }

    #[test]
    fn a_new_default_certificate_needs_a_reload() {
        let new = NEW.replace("/c/_default.pem", "/c/other.pem");
        assert_eq!(
            cert_changes(&crt_list_file(OLD), &crt_list_file(&new)),
            None
        );
    }

    #[test]
    fn show_crt_list_is_read_back_and_compared() {
        let want = crt_list_file(NEW);
        let held = shown_crt_list(
            "# /h/crt-list\n/c/_default.pem\n/c/b.example.pem\n/c/a.example.pem [alpn h2]\n\n",
        );
        assert_eq!(same_crt_list("l", &held, &want), Ok(()));
        let err = same_crt_list("l", &held[..2], &want).unwrap_err();
        assert!(err.contains("2 certificates, the file 3"), "{err}");
        let reordered: Vec<String> = held.iter().rev().cloned().collect();
        assert!(same_crt_list("l", &reordered, &want).is_err());
    }
}
