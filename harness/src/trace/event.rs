//! Typed events decoded from the probes' raw records.

use std::fmt;

use boxtrace_common::{COMM_LEN, Kind, RawEvent};
use serde::{Serialize, Serializer};
use thiserror::Error;

use super::flags::{CloneFlags, LowByte};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("ring buffer record of {0} bytes is shorter than an event ({size} bytes)", size = RawEvent::SIZE)]
    Short(usize),
    #[error("ring buffer record has unknown event kind {0}")]
    UnknownKind(u32),
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

/// What happened, with the syscall's decoded arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
        /// The namespace type asked for (0: any).
        nstype: CloneFlags,
    },
    /// A tracked task created a process or thread, now tracked too.
    Fork {
        child_tid: u32,
    },
    Exit,
}

impl Detail {
    /// The event kind's name, as used in filters and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Clone { .. } => "clone",
            Self::Clone3 { .. } => "clone3",
            Self::Unshare { .. } => "unshare",
            Self::Setns { .. } => "setns",
            Self::Fork { .. } => "fork",
            Self::Exit => "exit",
        }
    }

    /// Namespace-related flags of the event, if it carries any.
    pub fn flags(&self) -> Option<CloneFlags> {
        match *self {
            Self::Clone { flags, .. }
            | Self::Clone3 { flags, .. }
            | Self::Unshare { flags, .. } => Some(flags),
            Self::Setns { nstype, .. } => Some(nstype),
            Self::Fork { .. } | Self::Exit => None,
        }
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Clone { flags, .. }
            | Self::Clone3 { flags, .. }
            | Self::Unshare { flags, .. } => {
                write!(f, "{:<8} {flags}", self.name())
            }
            Self::Setns { fd, nstype, .. } => write!(f, "setns    fd={fd} nstype={nstype}"),
            Self::Fork { child_tid } => write!(f, "fork     child={child_tid}"),
            Self::Exit => f.write_str("exit"),
        }
    }
}

/// One decoded event of a traced task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// CLOCK_MONOTONIC, nanoseconds.
    pub ts_ns: u64,
    /// Process id (thread group id) in the host's pid namespace.
    pub pid: u32,
    /// Thread id in the host's pid namespace.
    pub tid: u32,
    /// Pid of the traced root this task descends from.
    pub root: u32,
    pub comm: Comm,
    #[serde(flatten)]
    pub detail: Detail,
}

impl Event {
    /// Decodes one ring buffer record.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let raw = RawEvent::from_bytes(bytes).ok_or(DecodeError::Short(bytes.len()))?;
        let kind = Kind::from_u32(raw.kind).ok_or(DecodeError::UnknownKind(raw.kind))?;
        let detail = match kind {
            Kind::Clone => Detail::Clone {
                flags: CloneFlags::new(raw.arg0, LowByte::ExitSignal),
                exit_signal: (raw.arg0 & 0xff) as u32,
            },
            Kind::Clone3 => Detail::Clone3 {
                flags: CloneFlags::new(raw.arg0, LowByte::Flags),
                exit_signal: raw.arg1 as u32,
            },
            Kind::Unshare => Detail::Unshare {
                flags: CloneFlags::new(raw.arg0, LowByte::Flags),
            },
            Kind::Setns => Detail::Setns {
                fd: raw.arg0 as i32,
                nstype: CloneFlags::new(raw.arg1, LowByte::Flags),
            },
            Kind::Fork => Detail::Fork {
                child_tid: raw.arg0 as u32,
            },
            Kind::Exit => Detail::Exit,
        };
        Ok(Self {
            ts_ns: raw.ts_ns,
            pid: raw.tgid,
            tid: raw.tid,
            root: raw.root,
            comm: Comm(raw.comm),
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::flags::{CLONE_NEWNS, CLONE_NEWUTS};

    fn raw(kind: Kind, arg0: u64, arg1: u64) -> Vec<u8> {
        let ev = RawEvent {
            ts_ns: 1_000,
            kind: kind as u32,
            tid: 11,
            tgid: 10,
            root: 10,
            arg0,
            arg1,
            comm: *b"unshare\0\0\0\0\0\0\0\0\0",
        };
        // SAFETY: RawEvent is repr(C) plain data without padding.
        let bytes: [u8; RawEvent::SIZE] = unsafe { std::mem::transmute(ev) };
        bytes.to_vec()
    }

    #[test]
    fn decodes_unshare() {
        let ev = Event::decode(&raw(Kind::Unshare, CLONE_NEWNS | CLONE_NEWUTS, 0)).unwrap();
        assert_eq!(ev.pid, 10);
        assert_eq!(ev.tid, 11);
        assert_eq!(ev.comm.as_str(), "unshare");
        assert_eq!(ev.detail.name(), "unshare");
        assert!(ev.detail.flags().unwrap().contains(CLONE_NEWUTS));
        let json = serde_json::to_value(ev).unwrap();
        assert_eq!(json["kind"], "unshare");
        assert_eq!(json["flags"]["names"], "CLONE_NEWNS|CLONE_NEWUTS");
        assert_eq!(json["flags"]["bits"], CLONE_NEWNS | CLONE_NEWUTS);
        assert_eq!(json["comm"], "unshare");
    }

    #[test]
    fn decodes_clone3_and_setns() {
        let ev = Event::decode(&raw(Kind::Clone3, 0x2000_0000, 17)).unwrap();
        assert_eq!(ev.detail.to_string(), "clone3   CLONE_NEWPID");
        let ev = Event::decode(&raw(Kind::Setns, 5, CLONE_NEWNS)).unwrap();
        assert_eq!(ev.detail.to_string(), "setns    fd=5 nstype=CLONE_NEWNS");
    }

    #[test]
    fn rejects_bad_records() {
        assert_eq!(Event::decode(&[0; 8]), Err(DecodeError::Short(8)));
        let mut b = raw(Kind::Exit, 0, 0);
        b[8] = 200;
        assert_eq!(Event::decode(&b), Err(DecodeError::UnknownKind(200)));
    }
}
