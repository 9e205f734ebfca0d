//! What the kernel cannot tell the probes: the runtime's container id and
//! the namespace a setns fd referred to, filled in as events stream by.

use std::collections::HashMap;

use super::event::{Detail, Event};

/// Attach events remembered before the oldest are forgotten.
const MAX_REMEMBERED: usize = 100_000;

/// Longest ancestry walked to find a container's cgroup.
const MAX_DEPTH: usize = 64;

/// Learns container ids from cgroup attach events. Runtimes name a
/// container's cgroup after its id (runc: `/<id>`, boxrun: `.../<id>`) and
/// usually attach the container's first process *before* it creates the
/// namespaces (runc attaches `runc init`, whose child unshares), so the
/// id of a container is the cgroup of its nearest attached ancestor.
#[derive(Debug, Default)]
pub struct Attribution {
    ids: HashMap<u32, String>,
    by_path: HashMap<String, u32>,
    /// child tid -> parent pid, from fork events.
    parent: HashMap<u32, u32>,
    /// pid -> cgroup paths it was attached to (one per hierarchy on v1).
    attached: HashMap<u32, Vec<String>>,
    /// Lookups in /proc already made per container (bounded).
    proc_tries: HashMap<u32, u8>,
    /// Namespace lookups made per container; MAX_NS_TRIES once reported.
    ns_tries: HashMap<u32, u8>,
    /// The (container, task) last looked up.
    ns_tried_task: (u32, u32),
    /// boxtrace's own cgroups: hierarchy id -> path.
    own_cgroups: Option<HashMap<String, String>>,
}

/// /proc lookups per container before giving up on its namespaces.
const MAX_NS_TRIES: u8 = 32;

/// /proc lookups per container before giving up on its id.
const MAX_PROC_TRIES: u8 = 4;

/// Parses /proc/PID/cgroup: hierarchy id -> path.
fn parse_proc_cgroup(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let id = it.next()?;
            let _controllers = it.next()?;
            Some((id.to_owned(), it.next()?.to_owned()))
        })
        .collect()
}

/// The cgroup path of `task` that differs from boxtrace's own in the same
/// hierarchy: the cgroup a runtime moved the container into.
fn moved_cgroup(own: &HashMap<String, String>, task: &HashMap<String, String>) -> Option<String> {
    let mut ids: Vec<&String> = task.keys().collect();
    ids.sort();
    ids.into_iter()
        .find(|id| own.get(*id) != task.get(*id))
        .and_then(|id| task.get(id).cloned())
}

/// Namespaces a container's tasks live in, by /proc/TID/ns link name; the
/// pid namespace is the one for children (an unsharing task's own stays).
const NAMESPACES: &[(&str, &str)] = &[
    ("mnt", "mnt"),
    ("pid", "pid_for_children"),
    // pid_for_children cannot be read in some states (e.g. once the task
    // exits its namespaces); a task inside the container then tells by "pid".
    ("pid", "pid"),
    ("uts", "uts"),
    ("ipc", "ipc"),
    ("net", "net"),
    ("cgroup", "cgroup"),
];

/// Inode numbers of `tid`'s namespaces; `None` once the task is gone.
fn namespaces_of(tid: u32) -> Option<std::collections::BTreeMap<&'static str, u64>> {
    let mut map = std::collections::BTreeMap::new();
    for (name, ino) in NAMESPACES.iter().filter_map(|&(name, link)| {
        let target = std::fs::read_link(format!("/proc/{tid}/ns/{link}")).ok()?;
        let ino = target.to_str()?.rsplit_once('[')?.1.strip_suffix(']')?;
        Some((name, ino.parse::<u64>().ok()?))
    }) {
        map.entry(name).or_insert(ino);
    }
    (!map.is_empty()).then_some(map)
}

/// The last component of a cgroup path, when it can be an id.
fn id_of(path: &str) -> Option<&str> {
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    (!last.is_empty()).then_some(last)
}

impl Attribution {
    /// Fills `container`/`container_id` and setns's namespace where known.
    pub fn observe(&mut self, ev: &mut Event) {
        match &mut ev.detail {
            Detail::Fork { child_tid, .. } => {
                self.parent.insert(*child_tid, ev.pid);
                if ev.container_start {
                    let child = *child_tid;
                    self.note_ancestors(ev.pid, ev.ancestors[1]);
                    self.learn(child);
                    if !self.ids.contains_key(&child) {
                        self.learn_from_proc(child, child);
                    }
                }
            }
            Detail::Unshare { .. } if ev.container_start => {
                self.note_ancestors(ev.pid, ev.ancestors[0]);
                let [parent, grand] = ev.ancestors;
                self.note_ancestors(parent, grand);
            }
            Detail::CgroupAttach { path, pid, .. } if id_of(path).is_some() => {
                if self.attached.len() >= MAX_REMEMBERED {
                    // --all on a busy host: forget old attaches, not memory.
                    self.attached.clear();
                }
                let paths = self.attached.entry(*pid).or_default();
                if !paths.contains(path) {
                    paths.push(path.clone());
                }
            }
            // --all mode: directory events come unattributed; match by path.
            Detail::CgroupMkdir { path, .. }
            | Detail::CgroupRmdir { path, .. }
            | Detail::CgroupFreeze { path }
            | Detail::CgroupUnfreeze { path }
            | Detail::CgroupNotifyFrozen { path, .. }
                if ev.container == 0 =>
            {
                if let Some(&c) = self.by_path.get(path.as_str()) {
                    ev.container = c;
                }
            }
            Detail::Setns { fd, ns, .. } if ns.is_none() => {
                *ns = std::fs::read_link(format!("/proc/{}/fd/{}", ev.tid, fd))
                    .ok()
                    .map(|p| p.to_string_lossy().into_owned())
                    .filter(|l| l.contains(":["));
            }
            _ => {}
        }
        self.note_namespaces(ev);
        if ev.container != 0 {
            if !self.ids.contains_key(&ev.container) {
                self.learn(ev.container);
            }
            if !self.ids.contains_key(&ev.container) {
                self.learn_from_proc(ev.container, ev.tid);
            }
            ev.container_id = self.ids.get(&ev.container).cloned();
        }
    }

    /// Reports a container's namespaces on its first event at which a task
    /// of it could still be looked up in /proc (bounded attempts).
    fn note_namespaces(&mut self, ev: &mut Event) {
        let (container, task) = match ev.detail {
            Detail::Fork { child_tid, .. } if ev.container_start => (child_tid, child_tid),
            _ => (ev.container, ev.tid),
        };
        if container == 0 {
            return;
        }
        let tries = self.ns_tries.entry(container).or_insert(0);
        // One look per task: a batch of events of a task that has exited
        // must not use up the container's tries.
        if *tries >= MAX_NS_TRIES || self.ns_tried_task == (container, task) {
            return;
        }
        *tries += 1;
        self.ns_tried_task = (container, task);
        ev.namespaces = namespaces_of(task);
        if ev.namespaces.is_some() {
            *tries = MAX_NS_TRIES;
        }
    }

    fn note_ancestors(&mut self, pid: u32, parent: u32) {
        if pid != 0 && parent != 0 && pid != parent {
            self.parent.entry(pid).or_insert(parent);
        }
    }

    /// Looks for the cgroup of `container` or of its nearest ancestor.
    fn learn(&mut self, container: u32) {
        let mut pid = container;
        for _ in 0..MAX_DEPTH {
            if let Some(paths) = self.attached.get(&pid) {
                if let Some(id) = paths.first().and_then(|p| id_of(p)) {
                    self.ids.insert(container, id.to_owned());
                    for p in paths {
                        self.by_path.insert(p.clone(), container);
                    }
                }
                return;
            }
            match self.parent.get(&pid) {
                Some(&p) if p != pid => pid = p,
                _ => return,
            }
        }
    }

    /// `--all` mode sees no attach of a runtime it did not start: read the
    /// cgroup of a live task of the container instead.
    fn learn_from_proc(&mut self, container: u32, tid: u32) {
        let tries = self.proc_tries.entry(container).or_insert(0);
        if *tries >= MAX_PROC_TRIES {
            return;
        }
        *tries += 1;
        let own = self.own_cgroups.get_or_insert_with(|| {
            parse_proc_cgroup(&std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default())
        });
        let Ok(text) = std::fs::read_to_string(format!("/proc/{tid}/cgroup")) else {
            return;
        };
        if let Some(path) = moved_cgroup(own, &parse_proc_cgroup(&text))
            && let Some(id) = id_of(&path)
        {
            self.ids.insert(container, id.to_owned());
            self.by_path.insert(path, container);
        }
    }

    /// Known containers: key and runtime id.
    pub fn containers(&self) -> impl Iterator<Item = (u32, &str)> {
        self.ids.iter().map(|(&k, v)| (k, v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use boxtrace_common::Kind;

    use super::*;
    use crate::trace::event::testing::{bytes, raw, set_str};

    fn event(kind: Kind, pid: u32, container: u32, args: [u64; 4], path: &str) -> Event {
        let mut r = raw(kind, args, "runc");
        r.tgid = pid;
        r.tid = pid;
        r.container = container;
        set_str(&mut r, 0, path);
        Event::decode(&bytes(&r)).unwrap()
    }

    #[test]
    fn container_id_comes_from_the_attached_ancestor() {
        let mut a = Attribution::default();
        // runc (100) attaches runc init (101), which forks 102 that unshares.
        // In --all mode the fork is not seen; the unshare names its parent.
        a.observe(&mut event(
            Kind::CgroupAttach,
            100,
            0,
            [3, 201, 0, 0],
            "/other",
        ));
        let mut unshare = event(Kind::Unshare, 202, 202, [0x2002_0000, 0, 201, 100], "");
        unshare.container_start = true;
        unshare.ancestors = [201, 100];
        a.observe(&mut unshare);
        assert_eq!(unshare.container_id.as_deref(), Some("other"));
        a.observe(&mut event(
            Kind::CgroupAttach,
            100,
            0,
            [3, 101, 0, 0],
            "/mybox",
        ));
        a.observe(&mut event(Kind::Fork, 101, 0, [102, 0, 0, 0], ""));
        let mut unshare = event(Kind::Unshare, 102, 102, [0x2002_0000, 0, 0, 0], "");
        a.observe(&mut unshare);
        assert_eq!(unshare.container_id.as_deref(), Some("mybox"));
        let mut rmdir = event(Kind::CgroupRmdir, 100, 0, [3, 1, 0, 0], "/mybox");
        a.observe(&mut rmdir);
        assert_eq!(
            (rmdir.container, rmdir.container_id.as_deref()),
            (102, Some("mybox"))
        );
        let mut all: Vec<_> = a.containers().collect();
        all.sort();
        assert_eq!(all, vec![(102, "mybox"), (202, "other")]);
    }

    #[test]
    fn proc_cgroup_differs_from_ours_only_where_the_runtime_moved_it() {
        let own = parse_proc_cgroup("8:pids:/user.slice\n4:memory:/process_api/x\n0::/\n");
        let task = parse_proc_cgroup("8:pids:/bt-all\n4:memory:/process_api/x/bt-all\n0::/\n");
        assert_eq!(
            moved_cgroup(&own, &task).as_deref(),
            Some("/process_api/x/bt-all")
        );
        assert_eq!(moved_cgroup(&own, &own), None);
    }

    #[test]
    fn unknown_ancestry_leaves_the_id_empty() {
        let mut a = Attribution::default();
        let mut ev = event(Kind::Mount, 7, 7, [0; 4], "/x");
        a.observe(&mut ev);
        assert_eq!(ev.container_id, None);
        assert_eq!(id_of("/"), None);
        assert_eq!(id_of("/boxrun/abc/"), Some("abc"));
    }
}
