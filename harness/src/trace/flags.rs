//! Readable names of flag words: `CLONE_*` (clone, clone3, unshare, setns),
//! `MS_*` (mount), `MNT_*` (umount2), seccomp filter flags.

use std::fmt;

/// Namespace and process flags, in bit order.
pub const CLONE: &[(u64, &str)] = &[
    (0x0000_0080, "CLONE_NEWTIME"),
    (0x0000_0100, "CLONE_VM"),
    (0x0000_0200, "CLONE_FS"),
    (0x0000_0400, "CLONE_FILES"),
    (0x0000_0800, "CLONE_SIGHAND"),
    (0x0000_1000, "CLONE_PIDFD"),
    (0x0000_2000, "CLONE_PTRACE"),
    (0x0000_4000, "CLONE_VFORK"),
    (0x0000_8000, "CLONE_PARENT"),
    (0x0001_0000, "CLONE_THREAD"),
    (0x0002_0000, "CLONE_NEWNS"),
    (0x0004_0000, "CLONE_SYSVSEM"),
    (0x0008_0000, "CLONE_SETTLS"),
    (0x0010_0000, "CLONE_PARENT_SETTID"),
    (0x0020_0000, "CLONE_CHILD_CLEARTID"),
    (0x0040_0000, "CLONE_DETACHED"),
    (0x0080_0000, "CLONE_UNTRACED"),
    (0x0100_0000, "CLONE_CHILD_SETTID"),
    (0x0200_0000, "CLONE_NEWCGROUP"),
    (0x0400_0000, "CLONE_NEWUTS"),
    (0x0800_0000, "CLONE_NEWIPC"),
    (0x1000_0000, "CLONE_NEWUSER"),
    (0x2000_0000, "CLONE_NEWPID"),
    (0x4000_0000, "CLONE_NEWNET"),
    (0x8000_0000, "CLONE_IO"),
    (0x1_0000_0000, "CLONE_CLEAR_SIGHAND"),
    (0x2_0000_0000, "CLONE_INTO_CGROUP"),
];

pub const MOUNT: &[(u64, &str)] = &[
    (1, "MS_RDONLY"),
    (2, "MS_NOSUID"),
    (4, "MS_NODEV"),
    (8, "MS_NOEXEC"),
    (16, "MS_SYNCHRONOUS"),
    (32, "MS_REMOUNT"),
    (64, "MS_MANDLOCK"),
    (128, "MS_DIRSYNC"),
    (256, "MS_NOSYMFOLLOW"),
    (1024, "MS_NOATIME"),
    (2048, "MS_NODIRATIME"),
    (4096, "MS_BIND"),
    (8192, "MS_MOVE"),
    (16384, "MS_REC"),
    (32768, "MS_SILENT"),
    (1 << 16, "MS_POSIXACL"),
    (1 << 17, "MS_UNBINDABLE"),
    (1 << 18, "MS_PRIVATE"),
    (1 << 19, "MS_SLAVE"),
    (1 << 20, "MS_SHARED"),
    (1 << 21, "MS_RELATIME"),
    (1 << 22, "MS_KERNMOUNT"),
    (1 << 23, "MS_I_VERSION"),
    (1 << 24, "MS_STRICTATIME"),
    (1 << 25, "MS_LAZYTIME"),
];

pub const UMOUNT: &[(u64, &str)] = &[
    (1, "MNT_FORCE"),
    (2, "MNT_DETACH"),
    (4, "MNT_EXPIRE"),
    (8, "UMOUNT_NOFOLLOW"),
];

pub const SECCOMP_FILTER: &[(u64, &str)] = &[
    (1, "SECCOMP_FILTER_FLAG_TSYNC"),
    (2, "SECCOMP_FILTER_FLAG_LOG"),
    (4, "SECCOMP_FILTER_FLAG_SPEC_ALLOW"),
    (8, "SECCOMP_FILTER_FLAG_NEW_LISTENER"),
    (16, "SECCOMP_FILTER_FLAG_TSYNC_ESRCH"),
    (32, "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"),
];

pub const CLONE_NEWNS: u64 = 0x0002_0000;
pub const CLONE_THREAD: u64 = 0x0001_0000;
pub const CLONE_NEWUTS: u64 = 0x0400_0000;
pub const CLONE_NEWPID: u64 = 0x2000_0000;

/// mount(2)'s obsolete magic number, still passed by some callers.
const MS_MGC_MSK: u64 = 0xffff_0000;
const MS_MGC_VAL: u64 = 0xc0ed_0000;

/// Writes `A|B|0x..` for `bits`; returns whether anything was written.
fn write_names(
    f: &mut fmt::Formatter<'_>,
    bits: u64,
    table: &[(u64, &str)],
    mut first: bool,
) -> Result<bool, fmt::Error> {
    let mut rest = bits;
    for &(bit, name) in table {
        if rest & bit != 0 {
            if !first {
                f.write_str("|")?;
            }
            f.write_str(name)?;
            first = false;
            rest &= !bit;
        }
    }
    if rest != 0 {
        if !first {
            f.write_str("|")?;
        }
        write!(f, "{rest:#x}")?;
        first = false;
    }
    Ok(!first)
}

fn serialize_flags<S: serde::Serializer>(
    s: S,
    names: String,
    bits: u64,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct as _;
    let mut st = s.serialize_struct("Flags", 2)?;
    st.serialize_field("names", &names)?;
    st.serialize_field("bits", &bits)?;
    st.end()
}

/// A flag word of a fixed table, e.g. `MS_BIND|MS_REC`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags {
    pub bits: u64,
    table: &'static [(u64, &'static str)],
}

impl Flags {
    pub fn new(bits: u64, table: &'static [(u64, &'static str)]) -> Self {
        Self { bits, table }
    }

    /// mount(2) flags, without the obsolete magic number.
    pub fn mount(bits: u64) -> Self {
        let bits = if bits & MS_MGC_MSK == MS_MGC_VAL {
            bits & !MS_MGC_MSK
        } else {
            bits
        };
        Self::new(bits, MOUNT)
    }

    pub fn contains(&self, flag: u64) -> bool {
        self.bits & flag == flag
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !write_names(f, self.bits, self.table, true)? {
            f.write_str("0")?;
        }
        Ok(())
    }
}

/// In JSON: `{"names": "MS_BIND|MS_REC", "bits": 20480}`.
impl serde::Serialize for Flags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_flags(s, self.to_string(), self.bits)
    }
}

/// How the low byte of clone flags is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LowByte {
    /// clone(2): the low byte is the exit signal (CSIGNAL).
    ExitSignal,
    /// clone3/unshare/setns: 0x80 is CLONE_NEWTIME, the rest must be 0.
    Flags,
}

/// Clone flags with a readable rendering, e.g. `CLONE_NEWNS|CLONE_NEWUTS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloneFlags {
    pub bits: u64,
    pub low: LowByte,
}

impl CloneFlags {
    pub fn new(bits: u64, low: LowByte) -> Self {
        Self { bits, low }
    }

    /// Flag bits only (without clone(2)'s exit signal byte).
    pub fn flag_bits(&self) -> u64 {
        match self.low {
            LowByte::ExitSignal => self.bits & !0xff,
            LowByte::Flags => self.bits,
        }
    }

    /// clone(2)'s exit signal, when the flags carry one.
    pub fn exit_signal(&self) -> Option<u32> {
        match self.low {
            LowByte::ExitSignal => Some((self.bits & 0xff) as u32),
            LowByte::Flags => None,
        }
    }

    pub fn contains(&self, flag: u64) -> bool {
        self.flag_bits() & flag == flag
    }
}

impl fmt::Display for CloneFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wrote = write_names(f, self.flag_bits(), CLONE, true)?;
        if let Some(sig) = self.exit_signal().filter(|&s| s != 0) {
            if wrote {
                f.write_str("|")?;
            }
            match signal_name(sig) {
                Some(name) => f.write_str(name)?,
                None => write!(f, "signal {sig}")?,
            }
            wrote = true;
        }
        if !wrote {
            f.write_str("0")?;
        }
        Ok(())
    }
}

/// In JSON: `{"names": "CLONE_NEWNS|CLONE_NEWUTS", "bits": 67239936}`;
/// `bits` leaves out clone(2)'s exit signal byte.
impl serde::Serialize for CloneFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_flags(s, self.to_string(), self.flag_bits())
    }
}

/// Name of a signal number, e.g. for clone's exit signal.
pub fn signal_name(sig: u32) -> Option<&'static str> {
    nix::sys::signal::Signal::try_from(sig as i32)
        .ok()
        .map(|s| s.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unshare_flags() {
        let f = CloneFlags::new(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS, LowByte::Flags);
        assert_eq!(f.to_string(), "CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWPID");
        assert!(f.contains(CLONE_NEWUTS));
        assert!(!f.contains(0x4000_0000));
    }

    #[test]
    fn clone_exit_signal_is_not_a_flag() {
        // glibc's fork(): CLONE_CHILD_SETTID|CLONE_CHILD_CLEARTID|SIGCHLD
        let f = CloneFlags::new(0x0120_0011, LowByte::ExitSignal);
        assert_eq!(
            f.to_string(),
            "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD"
        );
        assert_eq!(f.exit_signal(), Some(17));
        assert_eq!(
            CloneFlags::new(0x11, LowByte::ExitSignal).to_string(),
            "SIGCHLD"
        );
    }

    #[test]
    fn newtime_and_unknown_bits() {
        assert_eq!(
            CloneFlags::new(0x80, LowByte::Flags).to_string(),
            "CLONE_NEWTIME"
        );
        assert_eq!(
            CloneFlags::new(0x40_0000_0000, LowByte::Flags).to_string(),
            "0x4000000000"
        );
        assert_eq!(CloneFlags::new(0, LowByte::Flags).to_string(), "0");
    }

    #[test]
    fn mount_flags_drop_the_magic_number() {
        assert_eq!(
            Flags::mount(0xc0ed_0000 | 4096 | 16384).to_string(),
            "MS_BIND|MS_REC"
        );
        assert_eq!(
            Flags::mount((1 << 19) | 16384).to_string(),
            "MS_REC|MS_SLAVE"
        );
        assert_eq!(Flags::new(2, UMOUNT).to_string(), "MNT_DETACH");
        assert_eq!(Flags::new(0, UMOUNT).to_string(), "0");
    }
}
