//! Wire format between the eBPF probes and user space.
//!
//! Every record the probes write into the ring buffer is one [`RawEvent`].
//! The layout is `#[repr(C)]`, fixed-size and 8-byte aligned so the kernel
//! side can `reserve` it directly and user space can decode it without
//! copying field by field. Probes and harness are built from the same
//! source, so the layout cannot drift between them.
#![no_std]

/// Length of a task's `comm` as the kernel stores it.
pub const COMM_LEN: usize = 16;

/// Name of the ring buffer map carrying [`RawEvent`]s.
pub const MAP_EVENTS: &str = "EVENTS";
/// Name of the hash map `tid -> root tgid` of tracked tasks.
pub const MAP_TRACKED: &str = "TRACKED";
/// Name of the per-CPU array counting ring buffer reservation failures.
pub const MAP_LOST: &str = "LOST";

/// Global set by user space: byte offset of `child_pid` in the
/// `sched/sched_process_fork` record, read from tracefs because it moved
/// between kernel versions (comm fields became `__data_loc` in 6.x).
pub const GLOBAL_FORK_CHILD_PID_OFFSET: &str = "FORK_CHILD_PID_OFFSET";

/// Size of the ring buffer in bytes (a power of two, multiple of the page size).
pub const RING_BYTES: u32 = 1 << 22;
/// Maximum number of simultaneously tracked tasks.
pub const MAX_TRACKED: u32 = 65_536;

/// What a [`RawEvent`] reports. Stored as `u32` in the record.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `clone(2)` entered: `arg0` = flags (low byte is the exit signal).
    Clone = 1,
    /// `clone3(2)` entered: `arg0` = `clone_args.flags`, `arg1` = `exit_signal`.
    Clone3 = 2,
    /// `unshare(2)` entered: `arg0` = flags.
    Unshare = 3,
    /// `setns(2)` entered: `arg0` = fd, `arg1` = nstype.
    Setns = 4,
    /// A tracked task forked (process or thread): `arg0` = child tid.
    Fork = 5,
    /// A tracked task exited.
    Exit = 6,
}

impl Kind {
    /// Decodes the `kind` field of a record.
    pub const fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Clone,
            2 => Self::Clone3,
            3 => Self::Unshare,
            4 => Self::Setns,
            5 => Self::Fork,
            6 => Self::Exit,
            _ => return None,
        })
    }
}

/// One record in the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawEvent {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC in nanoseconds.
    pub ts_ns: u64,
    /// A [`Kind`] as `u32`.
    pub kind: u32,
    /// Kernel task id (the thread's pid).
    pub tid: u32,
    /// Thread group id (the process's pid).
    pub tgid: u32,
    /// Tgid of the traced root this task descends from.
    pub root: u32,
    /// First argument, meaning depends on `kind`.
    pub arg0: u64,
    /// Second argument, meaning depends on `kind`.
    pub arg1: u64,
    /// The task's `comm`, NUL-padded.
    pub comm: [u8; COMM_LEN],
}

impl RawEvent {
    /// Size of a record on the wire.
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// Decodes a record from ring buffer bytes; `None` when the slice is
    /// too short to hold one.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < Self::SIZE {
            return None;
        }
        // SAFETY: length checked above; every bit pattern is a valid
        // RawEvent (integers and a byte array), and read_unaligned copes
        // with any alignment of the slice.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_layout_is_stable() {
        assert_eq!(RawEvent::SIZE, 56);
        assert_eq!(core::mem::align_of::<RawEvent>(), 8);
    }

    #[test]
    fn short_slice_is_rejected() {
        assert!(RawEvent::from_bytes(&[0u8; RawEvent::SIZE - 1]).is_none());
    }

    #[test]
    fn round_trips_through_bytes() {
        let ev = RawEvent {
            ts_ns: 42,
            kind: Kind::Unshare as u32,
            tid: 7,
            tgid: 7,
            root: 7,
            arg0: 0x0402_0000,
            arg1: 0,
            comm: *b"unshare\0\0\0\0\0\0\0\0\0",
        };
        // SAFETY: RawEvent is repr(C) plain data.
        let bytes: [u8; RawEvent::SIZE] = unsafe { core::mem::transmute(ev) };
        let back = RawEvent::from_bytes(&bytes).unwrap();
        assert_eq!(back.ts_ns, 42);
        assert_eq!(Kind::from_u32(back.kind), Some(Kind::Unshare));
        assert_eq!(back.arg0, 0x0402_0000);
        assert_eq!(&back.comm[..7], b"unshare");
    }

    #[test]
    fn unknown_kind_is_none() {
        assert_eq!(Kind::from_u32(0), None);
        assert_eq!(Kind::from_u32(99), None);
    }
}
