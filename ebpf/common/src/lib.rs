//! Wire format between the eBPF probes and user space.
//!
//! Every record the probes write into the ring buffer is one [`RawEvent`]:
//! `#[repr(C)]`, fixed-size and 8-byte aligned, so the kernel side can copy
//! it from a map value with `bpf_ringbuf_output` and user space can decode
//! it without parsing. Probes and harness are built from the same source,
//! so the layout cannot drift between them.
#![no_std]

/// Length of a task's `comm` as the kernel stores it.
pub const COMM_LEN: usize = 16;
/// Capacity of the string slots of a record (bytes, NUL not stored).
pub const STR0_LEN: usize = 256;
pub const STR1_LEN: usize = 128;
pub const STR2_LEN: usize = 32;

/// Name of the ring buffer map carrying [`RawEvent`]s.
pub const MAP_EVENTS: &str = "EVENTS";
/// Name of the hash map `tid -> Track` of tracked tasks.
pub const MAP_TRACKED: &str = "TRACKED";
/// Name of the per-CPU array of loss counters (see [`Lost`]).
pub const MAP_LOST: &str = "LOST";
/// Name of the global holding the [`Config`].
pub const GLOBAL_CONFIG: &str = "CONFIG";

/// Default size of the ring buffer in bytes (a power of two, multiple of
/// the page size); user space may choose another before loading.
pub const RING_BYTES: u32 = 1 << 24;
/// Flag bit: wake the reader as soon as this record is committed.
pub const FLAG_URGENT: u32 = 4;
/// How often the reader polls the ring buffer, in milliseconds.
pub const POLL_MS: u64 = 20;
/// Maximum number of simultaneously tracked tasks.
pub const MAX_TRACKED: u32 = 65_536;

/// Slots of the `LOST` per-CPU array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lost {
    /// A record did not fit in the ring buffer.
    RingFull = 0,
    /// A task could not be tracked: `TRACKED` was full.
    TrackFull = 1,
    /// A syscall's entry could not be remembered until its exit.
    PendingFull = 2,
}

/// Number of slots in `LOST`.
pub const LOST_SLOTS: u32 = 3;

/// Which tree a task belongs to. Value of the `TRACKED` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Track {
    /// Pid of the traced root (the command, or in `--all` mode the task
    /// that created the namespaces).
    pub root: u32,
    /// Pid of the task that first created a new pid or mount namespace in
    /// this tree (the container's key); 0 before any did.
    pub container: u32,
}

/// Tracepoint record offsets read from tracefs, and switches, set by user
/// space before loading. 0 means "this kernel has no such field".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Follow every task that creates a new pid or mount namespace.
    pub all_mode: u32,
    pub fork_child_pid: u32,
    pub exec_filename: u32,
    pub exec_old_pid: u32,
    pub exit_group_dead: u32,
    pub signal_sig: u32,
    pub signal_handler: u32,
    pub cgroup_path: u32,
    pub cgroup_level: u32,
    pub attach_pid: u32,
    pub attach_path: u32,
    pub frozen_val: u32,
    pub oom_pid: u32,
    pub oom_total_vm: u32,
    pub oom_anon_rss: u32,
    pub oom_file_rss: u32,
    pub oom_shmem_rss: u32,
    pub switch_prev_pid: u32,
    pub switch_prev_state: u32,
    pub switch_next_pid: u32,
    pub oom_comm: u32,
    /// Unread ring buffer bytes past which the reader is woken at once.
    pub wakeup_bytes: u32,
}

#[cfg(feature = "user")]
// SAFETY: repr(C), only u32 fields, no padding.
unsafe impl aya::Pod for Config {}
#[cfg(feature = "user")]
// SAFETY: repr(C), two u32 fields, no padding.
unsafe impl aya::Pod for Track {}

macro_rules! kinds {
    ($($(#[$doc:meta])* $name:ident = $v:literal,)*) => {
        /// What a [`RawEvent`] reports. Stored as `u32` in the record.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind { $($(#[$doc])* $name = $v,)* }

        impl Kind {
            /// Every kind, in numeric order.
            pub const ALL: &[Kind] = &[$(Kind::$name,)*];

            /// Decodes the `kind` field of a record.
            pub const fn from_u32(v: u32) -> Option<Self> {
                match v { $($v => Some(Self::$name),)* _ => None }
            }
        }
    };
}

kinds! {
    /// clone(2): args[0] flags (low byte: exit signal).
    Clone = 1,
    /// clone3(2): args[0] clone_args.flags, args[1] exit_signal.
    Clone3 = 2,
    /// unshare(2): args[0] flags; when it starts a container in `--all`
    /// mode, args[2] parent pid, args[3] grandparent pid (0: unknown).
    Unshare = 3,
    /// setns(2): args[0] fd, args[1] nstype.
    Setns = 4,
    /// pivot_root(2): str0 new_root, str1 put_old.
    PivotRoot = 5,
    /// chroot(2): str0 path.
    Chroot = 6,
    /// mount(2): str0 target, str1 source, str2 fstype, args[0] flags.
    Mount = 7,
    /// umount2(2): str0 target, args[0] flags.
    Umount = 8,
    /// execve(2): str0 filename.
    Execve = 9,
    /// execveat(2): str0 filename, args[0] dirfd, args[1] flags.
    Execveat = 10,
    /// sethostname(2): str0 name.
    Sethostname = 11,
    /// prctl(2), PR_SET_NO_NEW_PRIVS and PR_SET_SECCOMP only: args = option, arg2..arg3.
    Prctl = 12,
    /// seccomp(2): args[0] op, args[1] flags.
    Seccomp = 13,
    /// A tracked task created a process or thread: args[0] child tid;
    /// when the child starts a container, args[1] the forking task's parent;
    /// args[2] the flags of the clone that made it (0: unknown).
    Fork = 20,
    /// A tracked task exec'd: str0 filename, args[0] old tid.
    Exec = 21,
    /// A tracked task exited: args[0] wait status (or u32::MAX unknown), args[1] group_dead.
    Exit = 22,
    /// cgroup directory created: str0 path, args[0] hierarchy id, args[1] level.
    CgroupMkdir = 30,
    /// cgroup directory removed: same fields as CgroupMkdir.
    CgroupRmdir = 31,
    /// A task was moved into a cgroup: str0 path, args[0] hierarchy id, args[1] pid moved.
    CgroupAttach = 32,
    /// cgroup v2 freeze requested: str0 path.
    CgroupFreeze = 33,
    /// cgroup v2 unfreeze requested: str0 path.
    CgroupUnfreeze = 34,
    /// cgroup v2 frozen state changed: str0 path, args[0] frozen (0/1).
    CgroupNotifyFrozen = 35,
    /// The OOM killer chose a tracked task: args = total_vm, anon_rss, file_rss, shmem_rss (kB).
    OomVictim = 40,
    /// A CPU switched from/to a tracked task: args[0] prev tid, args[1] next tid, args[2] prev_state.
    SchedSwitch = 50,
}

impl Kind {
    /// Whether the record is a syscall with return value and duration.
    pub const fn is_syscall(self) -> bool {
        (self as u32) < 20
    }
}

/// The record is a syscall that returned: `ret` and `dur_ns` are valid.
pub const FLAG_RETURNED: u32 = 1;
/// The record's task just started a container (its key): the unshare that
/// created the namespaces, or the fork of a clone that did.
pub const FLAG_CONTAINER_START: u32 = 2;

/// One record in the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawEvent {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC, ns); a syscall's entry.
    pub ts_ns: u64,
    /// Syscall duration, entry to exit.
    pub dur_ns: u64,
    /// Syscall return value.
    pub ret: i64,
    pub args: [u64; 4],
    /// A [`Kind`] as `u32`.
    pub kind: u32,
    /// Kernel task id (the thread's pid).
    pub tid: u32,
    /// Thread group id (the process's pid).
    pub tgid: u32,
    pub root: u32,
    pub container: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Bytes used in `str0`, `str1`, `str2` (the fourth is padding).
    pub str_len: [u16; 4],
    /// The task's `comm`, NUL-padded.
    pub comm: [u8; COMM_LEN],
    pub str0: [u8; STR0_LEN],
    pub str1: [u8; STR1_LEN],
    pub str2: [u8; STR2_LEN],
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
        // RawEvent (integers and byte arrays), and read_unaligned copes
        // with any alignment of the slice.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }

    /// The used bytes of string slot `i` (0..3).
    pub fn str_bytes(&self, i: usize) -> &[u8] {
        let (buf, len): (&[u8], u16) = match i {
            0 => (&self.str0, self.str_len[0]),
            1 => (&self.str1, self.str_len[1]),
            2 => (&self.str2, self.str_len[2]),
            _ => return &[],
        };
        &buf[..(len as usize).min(buf.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank(kind: Kind) -> RawEvent {
        RawEvent {
            ts_ns: 42,
            dur_ns: 0,
            ret: 0,
            args: [0; 4],
            kind: kind as u32,
            tid: 7,
            tgid: 7,
            root: 7,
            container: 0,
            flags: 0,
            str_len: [0; 4],
            comm: [0; COMM_LEN],
            str0: [0; STR0_LEN],
            str1: [0; STR1_LEN],
            str2: [0; STR2_LEN],
        }
    }

    #[test]
    fn record_layout_is_stable() {
        assert_eq!(RawEvent::SIZE, 520);
        assert_eq!(core::mem::align_of::<RawEvent>(), 8);
        assert_eq!(core::mem::size_of::<Config>() % 8, 0);
    }

    #[test]
    fn short_slice_is_rejected() {
        assert!(RawEvent::from_bytes(&[0u8; RawEvent::SIZE - 1]).is_none());
    }

    #[test]
    fn round_trips_through_bytes() {
        let mut ev = blank(Kind::Mount);
        ev.str0[..4].copy_from_slice(b"/mnt");
        ev.str_len[0] = 4;
        ev.str_len[1] = 999; // corrupt length is clamped, never panics
        // SAFETY: RawEvent is repr(C) plain data.
        let bytes: [u8; RawEvent::SIZE] = unsafe { core::mem::transmute(ev) };
        let back = RawEvent::from_bytes(&bytes).unwrap();
        assert_eq!(back.ts_ns, 42);
        assert_eq!(Kind::from_u32(back.kind), Some(Kind::Mount));
        assert_eq!(back.str_bytes(0), b"/mnt");
        assert_eq!(back.str_bytes(1).len(), STR1_LEN);
        assert_eq!(back.str_bytes(3), b"");
    }

    #[test]
    fn kinds_decode_and_classify() {
        assert_eq!(Kind::from_u32(0), None);
        assert_eq!(Kind::from_u32(99), None);
        for &k in Kind::ALL {
            assert_eq!(Kind::from_u32(k as u32), Some(k));
        }
        assert!(Kind::Seccomp.is_syscall());
        assert!(!Kind::Fork.is_syscall());
    }
}
