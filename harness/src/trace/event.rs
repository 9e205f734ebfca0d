//! Typed events decoded from the probes' raw records.

use std::fmt;

use boxtrace_common::{COMM_LEN, FLAG_CONTAINER_START, FLAG_RETURNED, Kind, RawEvent};
use serde::{Serialize, Serializer};
use thiserror::Error;

use super::flags::{CLONE_THREAD, CloneFlags, Flags, LowByte, SECCOMP_FILTER, UMOUNT, signal_name};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("ring buffer record of {0} bytes is shorter than an event ({size} bytes)", size = RawEvent::SIZE)]
    Short(usize),
    #[error("ring buffer record has unknown event kind {0}")]
    UnknownKind(u32),
}

/// Name of every event kind, as used in `--kind` filters and in JSON.
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Clone => "clone",
        Kind::Clone3 => "clone3",
        Kind::Unshare => "unshare",
        Kind::Setns => "setns",
        Kind::PivotRoot => "pivot_root",
        Kind::Chroot => "chroot",
        Kind::Mount => "mount",
        Kind::Umount => "umount",
        Kind::Execve => "execve",
        Kind::Execveat => "execveat",
        Kind::Sethostname => "sethostname",
        Kind::Prctl => "prctl",
        Kind::Seccomp => "seccomp",
        Kind::Fork => "fork",
        Kind::Exec => "exec",
        Kind::Exit => "exit",
        Kind::CgroupMkdir => "cgroup_mkdir",
        Kind::CgroupRmdir => "cgroup_rmdir",
        Kind::CgroupAttach => "cgroup_attach",
        Kind::CgroupFreeze => "cgroup_freeze",
        Kind::CgroupUnfreeze => "cgroup_unfreeze",
        Kind::CgroupNotifyFrozen => "cgroup_notify_frozen",
        Kind::OomVictim => "oom_victim",
        Kind::SchedSwitch => "sched_switch",
    }
}

/// A task's `comm` (at most 15 bytes, as the kernel keeps it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Comm([u8; COMM_LEN]);

impl Comm {
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
        String::from_utf8_lossy(&self.0[..end])
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.as_str(), f)
    }
}

impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.as_str())
    }
}

impl Serialize for Comm {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

/// How a task ended, as wait(2) would report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
    /// The task ended without exit(2) or a fatal signal being seen.
    Unknown,
}

impl ExitStatus {
    fn from_wait(status: u64) -> Self {
        match status {
            s if s == u64::from(u32::MAX) => Self::Unknown,
            s if s & 0x7f == 0 => Self::Code(((s >> 8) & 0xff) as i32),
            s => Self::Signal((s & 0x7f) as i32),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Code(c) => write!(f, "code={c}"),
            Self::Signal(s) => match signal_name(s as u32) {
                Some(n) => write!(f, "signal={n}"),
                None => write!(f, "signal={s}"),
            },
            Self::Unknown => f.write_str("status=?"),
        }
    }
}

/// What happened, with the decoded arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detail {
    Clone {
        flags: CloneFlags,
        exit_signal: u32,
    },
    Clone3 {
        flags: CloneFlags,
        exit_signal: u32,
    },
    Unshare {
        flags: CloneFlags,
    },
    Setns {
        fd: i32,
        /// The namespace type asked for (bits 0: any).
        nstype: CloneFlags,
        /// The namespace the fd referred to (`uts:[4026531838]`), looked
        /// up in /proc while the event is processed; absent when the fd
        /// was already closed.
        #[serde(skip_serializing_if = "Option::is_none")]
        ns: Option<String>,
    },
    PivotRoot {
        new_root: String,
        put_old: String,
    },
    Chroot {
        path: String,
    },
    Mount {
        source: String,
        target: String,
        fstype: String,
        flags: Flags,
    },
    Umount {
        target: String,
        flags: Flags,
    },
    Execve {
        filename: String,
    },
    Execveat {
        dirfd: i32,
        filename: String,
        flags: u64,
    },
    Sethostname {
        name: String,
    },
    Prctl {
        option: String,
        arg2: u64,
    },
    Seccomp {
        op: String,
        flags: Flags,
    },
    /// A tracked task created a process or thread, now tracked too.
    Fork {
        child_tid: u32,
        /// The child is a thread (CLONE_THREAD) of the forking process.
        thread: bool,
    },
    /// A tracked task replaced its image.
    Exec {
        filename: String,
        old_tid: u32,
    },
    Exit {
        status: ExitStatus,
        group_dead: bool,
    },
    CgroupMkdir {
        path: String,
        hierarchy: i32,
        level: i32,
    },
    CgroupRmdir {
        path: String,
        hierarchy: i32,
        level: i32,
    },
    /// Task `pid` was moved into cgroup `path` (by the event's task).
    CgroupAttach {
        path: String,
        hierarchy: i32,
        pid: u32,
    },
    CgroupFreeze {
        path: String,
    },
    CgroupUnfreeze {
        path: String,
    },
    CgroupNotifyFrozen {
        path: String,
        frozen: bool,
    },
    /// The OOM killer picked this task; sizes in kB.
    OomVictim {
        total_vm_kb: u64,
        anon_rss_kb: u64,
        file_rss_kb: u64,
        shmem_rss_kb: u64,
    },
    SchedSwitch {
        prev_tid: u32,
        next_tid: u32,
        prev_state: u64,
    },
}

impl Detail {
    pub fn kind(&self) -> Kind {
        match self {
            Self::Clone { .. } => Kind::Clone,
            Self::Clone3 { .. } => Kind::Clone3,
            Self::Unshare { .. } => Kind::Unshare,
            Self::Setns { .. } => Kind::Setns,
            Self::PivotRoot { .. } => Kind::PivotRoot,
            Self::Chroot { .. } => Kind::Chroot,
            Self::Mount { .. } => Kind::Mount,
            Self::Umount { .. } => Kind::Umount,
            Self::Execve { .. } => Kind::Execve,
            Self::Execveat { .. } => Kind::Execveat,
            Self::Sethostname { .. } => Kind::Sethostname,
            Self::Prctl { .. } => Kind::Prctl,
            Self::Seccomp { .. } => Kind::Seccomp,
            Self::Fork { .. } => Kind::Fork,
            Self::Exec { .. } => Kind::Exec,
            Self::Exit { .. } => Kind::Exit,
            Self::CgroupMkdir { .. } => Kind::CgroupMkdir,
            Self::CgroupRmdir { .. } => Kind::CgroupRmdir,
            Self::CgroupAttach { .. } => Kind::CgroupAttach,
            Self::CgroupFreeze { .. } => Kind::CgroupFreeze,
            Self::CgroupUnfreeze { .. } => Kind::CgroupUnfreeze,
            Self::CgroupNotifyFrozen { .. } => Kind::CgroupNotifyFrozen,
            Self::OomVictim { .. } => Kind::OomVictim,
            Self::SchedSwitch { .. } => Kind::SchedSwitch,
        }
    }

    /// The event kind's name, as used in filters and JSON.
    pub fn name(&self) -> &'static str {
        kind_name(self.kind())
    }

    /// Namespace flags of the event, if it carries any.
    pub fn clone_flags(&self) -> Option<CloneFlags> {
        match *self {
            Self::Clone { flags, .. } | Self::Clone3 { flags, .. } | Self::Unshare { flags } => {
                Some(flags)
            }
            Self::Setns { nstype, .. } => Some(nstype),
            _ => None,
        }
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<12} ", self.name())?;
        match self {
            Self::Clone { flags, .. } | Self::Clone3 { flags, .. } | Self::Unshare { flags } => {
                write!(f, "{flags}")
            }
            Self::Setns { fd, nstype, ns } => {
                write!(f, "fd={fd} nstype={nstype}")?;
                match ns {
                    Some(ns) => write!(f, " ns={ns}"),
                    None => Ok(()),
                }
            }
            Self::PivotRoot { new_root, put_old } => write!(f, "{new_root:?} {put_old:?}"),
            Self::Chroot { path } => write!(f, "{path:?}"),
            Self::Mount {
                source,
                target,
                fstype,
                flags,
            } => {
                write!(f, "{source:?} -> {target:?} type={fstype:?} {flags}")
            }
            Self::Umount { target, flags } => write!(f, "{target:?} {flags}"),
            Self::Execve { filename } => write!(f, "{filename:?}"),
            Self::Execveat {
                dirfd,
                filename,
                flags,
            } => {
                write!(f, "dirfd={dirfd} {filename:?} flags={flags:#x}")
            }
            Self::Sethostname { name } => write!(f, "{name:?}"),
            Self::Prctl { option, arg2 } => write!(f, "{option} {arg2}"),
            Self::Seccomp { op, flags } => write!(f, "{op} {flags}"),
            Self::Fork { child_tid, thread } => {
                write!(
                    f,
                    "{}={child_tid}",
                    if *thread { "thread" } else { "child" }
                )
            }
            Self::Exec { filename, .. } => write!(f, "{filename:?}"),
            Self::Exit { status, .. } => write!(f, "{status}"),
            Self::CgroupMkdir {
                path, hierarchy, ..
            }
            | Self::CgroupRmdir {
                path, hierarchy, ..
            } => write!(f, "{path:?} hierarchy={hierarchy}"),
            Self::CgroupAttach {
                path,
                hierarchy,
                pid,
            } => {
                write!(f, "pid={pid} -> {path:?} hierarchy={hierarchy}")
            }
            Self::CgroupFreeze { path } | Self::CgroupUnfreeze { path } => write!(f, "{path:?}"),
            Self::CgroupNotifyFrozen { path, frozen } => write!(f, "{path:?} frozen={frozen}"),
            Self::OomVictim {
                total_vm_kb,
                anon_rss_kb,
                ..
            } => {
                write!(f, "total_vm={total_vm_kb}kB anon_rss={anon_rss_kb}kB")
            }
            Self::SchedSwitch {
                prev_tid, next_tid, ..
            } => write!(f, "{prev_tid} -> {next_tid}"),
        }
    }
}

/// How a syscall returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Returned {
    /// The raw return value (negative: -errno).
    pub ret: i64,
    pub dur_ns: u64,
}

impl fmt::Display for Returned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.dur_ns as f64 / 1e3;
        if self.ret < 0 {
            let errno = nix::errno::Errno::from_raw(-self.ret as i32);
            write!(f, "= -1 {errno:?} ({us:.1} us)")
        } else {
            write!(f, "= {} ({us:.1} us)", self.ret)
        }
    }
}

/// One decoded event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// CLOCK_MONOTONIC, nanoseconds; for syscalls, their entry.
    pub ts_ns: u64,
    /// Process id (thread group id) in the host's pid namespace.
    pub pid: u32,
    /// Thread id in the host's pid namespace.
    pub tid: u32,
    /// Pid of the traced root this task descends from (0: none, `--all`).
    pub root: u32,
    /// Container key: host pid of the task that first created a pid or
    /// mount namespace in this tree (0: not inside a container yet).
    pub container: u32,
    /// The runtime's container id, once learnt from its cgroup path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    pub comm: Comm,
    /// This event started a container: the unshare that created its
    /// namespaces, or the fork of a clone that did (its `child_tid` keys it).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub container_start: bool,
    /// With `container_start`: the new container's first task's parent and
    /// grandparent pids as the kernel knew them (0: unknown). Used to find
    /// the cgroup a runtime put on them.
    #[serde(skip)]
    pub ancestors: [u32; 2],
    /// Inode numbers of the container's namespaces (`mnt`, `pid` for
    /// children, `uts`, `ipc`, `net`, `cgroup`), on the container's first
    /// event at which one of its tasks could be looked up in /proc.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<std::collections::BTreeMap<&'static str, u64>>,
    #[serde(flatten)]
    pub returned: Option<Returned>,
    #[serde(flatten)]
    pub detail: Detail,
}

fn string(raw: &RawEvent, i: usize) -> String {
    String::from_utf8_lossy(raw.str_bytes(i)).into_owned()
}

fn prctl_option(option: u64) -> String {
    match option {
        22 => "PR_SET_SECCOMP".to_owned(),
        38 => "PR_SET_NO_NEW_PRIVS".to_owned(),
        o => o.to_string(),
    }
}

fn seccomp_op(op: u64) -> String {
    match op {
        0 => "SECCOMP_SET_MODE_STRICT".to_owned(),
        1 => "SECCOMP_SET_MODE_FILTER".to_owned(),
        2 => "SECCOMP_GET_ACTION_AVAIL".to_owned(),
        3 => "SECCOMP_GET_NOTIF_SIZES".to_owned(),
        o => o.to_string(),
    }
}

impl Event {
    /// Decodes one ring buffer record.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let raw = RawEvent::from_bytes(bytes).ok_or(DecodeError::Short(bytes.len()))?;
        let kind = Kind::from_u32(raw.kind).ok_or(DecodeError::UnknownKind(raw.kind))?;
        let a = raw.args;
        let s = |i| string(&raw, i);
        let detail = match kind {
            Kind::Clone => Detail::Clone {
                flags: CloneFlags::new(a[0], LowByte::ExitSignal),
                exit_signal: (a[0] & 0xff) as u32,
            },
            Kind::Clone3 => Detail::Clone3 {
                flags: CloneFlags::new(a[0], LowByte::Flags),
                exit_signal: a[1] as u32,
            },
            Kind::Unshare => Detail::Unshare {
                flags: CloneFlags::new(a[0], LowByte::Flags),
            },
            Kind::Setns => Detail::Setns {
                fd: a[0] as i32,
                nstype: CloneFlags::new(a[1], LowByte::Flags),
                ns: None,
            },
            Kind::PivotRoot => Detail::PivotRoot {
                new_root: s(0),
                put_old: s(1),
            },
            Kind::Chroot => Detail::Chroot { path: s(0) },
            Kind::Mount => Detail::Mount {
                source: s(1),
                target: s(0),
                fstype: s(2),
                flags: Flags::mount(a[0]),
            },
            Kind::Umount => Detail::Umount {
                target: s(0),
                flags: Flags::new(a[0], UMOUNT),
            },
            Kind::Execve => Detail::Execve { filename: s(0) },
            Kind::Execveat => Detail::Execveat {
                dirfd: a[0] as i32,
                filename: s(0),
                flags: a[1],
            },
            Kind::Sethostname => Detail::Sethostname { name: s(0) },
            Kind::Prctl => Detail::Prctl {
                option: prctl_option(a[0]),
                arg2: a[1],
            },
            Kind::Seccomp => Detail::Seccomp {
                op: seccomp_op(a[0]),
                flags: Flags::new(a[1], SECCOMP_FILTER),
            },
            Kind::Fork => Detail::Fork {
                child_tid: a[0] as u32,
                thread: a[2] & CLONE_THREAD != 0,
            },
            Kind::Exec => Detail::Exec {
                filename: s(0),
                old_tid: a[0] as u32,
            },
            Kind::Exit => Detail::Exit {
                status: ExitStatus::from_wait(a[0]),
                group_dead: a[1] != 0,
            },
            Kind::CgroupMkdir => Detail::CgroupMkdir {
                path: s(0),
                hierarchy: a[0] as i32,
                level: a[1] as i32,
            },
            Kind::CgroupRmdir => Detail::CgroupRmdir {
                path: s(0),
                hierarchy: a[0] as i32,
                level: a[1] as i32,
            },
            Kind::CgroupAttach => Detail::CgroupAttach {
                path: s(0),
                hierarchy: a[0] as i32,
                pid: a[1] as u32,
            },
            Kind::CgroupFreeze => Detail::CgroupFreeze { path: s(0) },
            Kind::CgroupUnfreeze => Detail::CgroupUnfreeze { path: s(0) },
            Kind::CgroupNotifyFrozen => Detail::CgroupNotifyFrozen {
                path: s(0),
                frozen: a[2] != 0,
            },
            Kind::OomVictim => Detail::OomVictim {
                total_vm_kb: a[0],
                anon_rss_kb: a[1],
                file_rss_kb: a[2],
                shmem_rss_kb: a[3],
            },
            Kind::SchedSwitch => Detail::SchedSwitch {
                prev_tid: a[0] as u32,
                next_tid: a[1] as u32,
                prev_state: a[2],
            },
        };
        let container_start = raw.flags & FLAG_CONTAINER_START != 0;
        let ancestors = match kind {
            Kind::Unshare if container_start => [a[2] as u32, a[3] as u32],
            Kind::Fork if container_start => [raw.tgid, a[1] as u32],
            _ => [0, 0],
        };
        let returned = (raw.flags & FLAG_RETURNED != 0).then_some(Returned {
            ret: raw.ret,
            dur_ns: raw.dur_ns,
        });
        Ok(Self {
            ts_ns: raw.ts_ns,
            pid: raw.tgid,
            tid: raw.tid,
            root: raw.root,
            container: raw.container,
            container_id: None,
            comm: Comm(raw.comm),
            container_start,
            ancestors,
            namespaces: None,
            returned,
            detail,
        })
    }
}

/// Builds raw records for tests and benchmarks.
pub mod testing {
    use boxtrace_common::{Kind, RawEvent, STR0_LEN, STR1_LEN, STR2_LEN};

    /// A record of `kind` from tid/pid 10 named `comm`, with `args`.
    pub fn raw(kind: Kind, args: [u64; 4], comm: &str) -> RawEvent {
        let mut c = [0u8; 16];
        c[..comm.len().min(15)].copy_from_slice(&comm.as_bytes()[..comm.len().min(15)]);
        RawEvent {
            ts_ns: 1_000,
            dur_ns: 0,
            ret: 0,
            args,
            kind: kind as u32,
            tid: 11,
            tgid: 10,
            root: 10,
            container: 0,
            flags: 0,
            str_len: [0; 4],
            comm: c,
            str0: [0; STR0_LEN],
            str1: [0; STR1_LEN],
            str2: [0; STR2_LEN],
        }
    }

    /// Sets string slot `i` of `ev`.
    pub fn set_str(ev: &mut RawEvent, i: usize, s: &str) {
        let b = s.as_bytes();
        let dst: &mut [u8] = match i {
            0 => &mut ev.str0,
            1 => &mut ev.str1,
            _ => &mut ev.str2,
        };
        let n = b.len().min(dst.len());
        dst[..n].copy_from_slice(&b[..n]);
        ev.str_len[i] = n as u16;
    }

    /// The record's bytes as the ring buffer holds them.
    pub fn bytes(ev: &RawEvent) -> Vec<u8> {
        // SAFETY: RawEvent is repr(C) plain data without padding.
        let b: [u8; RawEvent::SIZE] = unsafe { std::mem::transmute(*ev) };
        b.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::{testing::*, *};
    use crate::trace::flags::{CLONE_NEWNS, CLONE_NEWUTS};

    #[test]
    fn decodes_unshare() {
        let ev = Event::decode(&bytes(&raw(
            Kind::Unshare,
            [CLONE_NEWNS | CLONE_NEWUTS, 0, 0, 0],
            "unshare",
        )))
        .unwrap();
        assert_eq!((ev.pid, ev.tid), (10, 11));
        assert_eq!(ev.comm.as_str(), "unshare");
        assert_eq!(ev.detail.name(), "unshare");
        assert!(ev.detail.clone_flags().unwrap().contains(CLONE_NEWUTS));
        assert_eq!(ev.returned, None);
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["kind"], "unshare");
        assert_eq!(json["flags"]["names"], "CLONE_NEWNS|CLONE_NEWUTS");
        assert_eq!(json["flags"]["bits"], CLONE_NEWNS | CLONE_NEWUTS);
        assert!(json.get("ret").is_none());
    }

    #[test]
    fn decodes_a_returned_mount_with_strings() {
        let mut r = raw(
            Kind::Mount,
            [0xc0ed_0000 | 4096 | 16384, 0, 0, 0],
            "runc:[2:INIT]",
        );
        set_str(&mut r, 0, "/run/x/rootfs");
        set_str(&mut r, 1, "/var/lib/x");
        set_str(&mut r, 2, "bind");
        r.flags = FLAG_RETURNED;
        r.ret = -2;
        r.dur_ns = 1_500;
        let ev = Event::decode(&bytes(&r)).unwrap();
        let Detail::Mount {
            source,
            target,
            fstype,
            flags,
        } = &ev.detail
        else {
            panic!("{ev:?}")
        };
        assert_eq!(
            (source.as_str(), target.as_str(), fstype.as_str()),
            ("/var/lib/x", "/run/x/rootfs", "bind")
        );
        assert_eq!(flags.to_string(), "MS_BIND|MS_REC");
        assert_eq!(ev.returned.unwrap().to_string(), "= -1 ENOENT (1.5 us)");
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["ret"], -2);
        assert_eq!(json["dur_ns"], 1500);
        assert_eq!(json["target"], "/run/x/rootfs");
    }

    #[test]
    fn decodes_exit_statuses() {
        let code = |s| match Event::decode(&bytes(&raw(Kind::Exit, [s, 1, 0, 0], "x")))
            .unwrap()
            .detail
        {
            Detail::Exit { status, .. } => status,
            d => panic!("{d:?}"),
        };
        assert_eq!(code(3 << 8), ExitStatus::Code(3));
        assert_eq!(code(9), ExitStatus::Signal(9));
        assert_eq!(code(u64::from(u32::MAX)), ExitStatus::Unknown);
        assert_eq!(ExitStatus::Signal(9).to_string(), "signal=SIGKILL");
    }

    #[test]
    fn decodes_clone3_and_setns() {
        let ev = Event::decode(&bytes(&raw(Kind::Clone3, [0x2000_0000, 17, 0, 0], "x"))).unwrap();
        assert_eq!(ev.detail.to_string(), "clone3       CLONE_NEWPID");
        let ev = Event::decode(&bytes(&raw(Kind::Setns, [5, CLONE_NEWNS, 0, 0], "x"))).unwrap();
        assert_eq!(
            ev.detail.to_string(),
            "setns        fd=5 nstype=CLONE_NEWNS"
        );
    }

    #[test]
    fn every_kind_decodes_and_is_named() {
        for &k in Kind::ALL {
            let ev = Event::decode(&bytes(&raw(k, [0; 4], "x"))).unwrap();
            assert_eq!(ev.detail.kind(), k);
            assert_eq!(serde_json::to_value(&ev).unwrap()["kind"], kind_name(k));
        }
    }

    #[test]
    fn rejects_bad_records() {
        assert_eq!(Event::decode(&[0; 8]), Err(DecodeError::Short(8)));
        let mut r = raw(Kind::Exit, [0; 4], "x");
        r.kind = 200;
        assert_eq!(
            Event::decode(&bytes(&r)),
            Err(DecodeError::UnknownKind(200))
        );
    }
}
