//! Which events to show: by kind (or group of kinds) and by container.

use std::collections::HashSet;

use boxtrace_common::Kind;
use thiserror::Error;

use super::{
    event::{Detail, Event, kind_name},
    flags::CLONE_THREAD,
};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("unknown event kind `{name}` in --kind; known kinds: {known}")]
    UnknownKind { name: String, known: String },
    #[error("empty event kind in --kind `{0}`")]
    Empty(String),
}

/// Named groups of kinds, accepted by `--kind` beside single kinds.
const GROUPS: &[(&str, &[Kind])] = &[
    (
        "ns",
        &[Kind::Clone, Kind::Clone3, Kind::Unshare, Kind::Setns],
    ),
    (
        "fs",
        &[Kind::PivotRoot, Kind::Chroot, Kind::Mount, Kind::Umount],
    ),
    (
        "process",
        &[
            Kind::Fork,
            Kind::Exec,
            Kind::Exit,
            Kind::Execve,
            Kind::Execveat,
        ],
    ),
    (
        "cgroup",
        &[
            Kind::CgroupMkdir,
            Kind::CgroupRmdir,
            Kind::CgroupAttach,
            Kind::CgroupFreeze,
            Kind::CgroupUnfreeze,
            Kind::CgroupNotifyFrozen,
        ],
    ),
    ("security", &[Kind::Prctl, Kind::Seccomp]),
];

/// Parses `exec,mount,cgroup`: kinds and groups, comma-separated.
pub fn parse_kinds(list: &str) -> Result<HashSet<Kind>, FilterError> {
    let mut out = HashSet::new();
    for name in list.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(FilterError::Empty(list.to_owned()));
        }
        if let Some((_, kinds)) = GROUPS.iter().find(|(g, _)| *g == name) {
            out.extend(kinds.iter().copied());
        } else if let Some(&k) = Kind::ALL.iter().find(|&&k| kind_name(k) == name) {
            out.insert(k);
        } else {
            let mut known: Vec<&str> = Kind::ALL.iter().map(|&k| kind_name(k)).collect();
            known.extend(GROUPS.iter().map(|(g, _)| *g));
            return Err(FilterError::UnknownKind {
                name: name.to_owned(),
                known: known.join(", "),
            });
        }
    }
    Ok(out)
}

/// Event filter; an empty filter passes everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub kinds: Option<HashSet<Kind>>,
    /// Container keys (pid) or runtime ids to keep.
    pub containers: Vec<String>,
    /// Hide threads: clones of threads, their forks and exits.
    pub no_threads: bool,
}

impl Filter {
    pub fn matches(&self, ev: &Event) -> bool {
        if let Some(kinds) = &self.kinds
            && !kinds.contains(&ev.detail.kind())
        {
            return false;
        }
        if self.no_threads && is_thread_event(ev) {
            return false;
        }
        if self.containers.is_empty() {
            return true;
        }
        let key = ev.container.to_string();
        self.containers
            .iter()
            .any(|c| *c == key || ev.container_id.as_deref() == Some(c.as_str()))
    }
}

/// Whether `ev` is only about a thread (not a process) coming or going.
fn is_thread_event(ev: &Event) -> bool {
    match &ev.detail {
        Detail::Clone { flags, .. } | Detail::Clone3 { flags, .. } => flags.contains(CLONE_THREAD),
        Detail::Fork { thread, .. } => *thread,
        Detail::Exit { group_dead, .. } => !group_dead && ev.tid != ev.pid,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_groups() {
        let k = parse_kinds("exec, cgroup").unwrap();
        assert!(k.contains(&Kind::Exec));
        assert!(k.contains(&Kind::CgroupAttach));
        assert!(!k.contains(&Kind::Mount));
    }

    #[test]
    fn unknown_kind_is_named() {
        let e = parse_kinds("exec,mkdir").unwrap_err();
        assert!(matches!(&e, FilterError::UnknownKind { name, .. } if name == "mkdir"));
        assert!(e.to_string().contains("cgroup_mkdir"), "{e}");
        assert_eq!(
            parse_kinds("exec,,x"),
            Err(FilterError::Empty("exec,,x".into()))
        );
    }
}
