//! Names of `CLONE_*` flags as clone(2), clone3(2), unshare(2) and setns(2)
//! take them.

use std::fmt;

/// Namespace and process flags, in bit order.
const NAMES: &[(u64, &str)] = &[
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

/// Every namespace-creating flag.
pub const NAMESPACE_MASK: u64 = 0x0002_0000
    | 0x0200_0000
    | 0x0400_0000
    | 0x0800_0000
    | 0x1000_0000
    | 0x2000_0000
    | 0x4000_0000
    | 0x0000_0080;

pub const CLONE_NEWNS: u64 = 0x0002_0000;
pub const CLONE_NEWUTS: u64 = 0x0400_0000;
pub const CLONE_NEWPID: u64 = 0x2000_0000;

/// How the low byte of the flags is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LowByte {
    /// clone(2): the low byte is the exit signal (CSIGNAL).
    ExitSignal,
    /// clone3/unshare/setns: 0x80 is CLONE_NEWTIME, the rest must be 0.
    Flags,
}

/// A flags word with a readable rendering, e.g. `CLONE_NEWNS|CLONE_NEWUTS`.
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
        let mut rest = self.flag_bits();
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { "|" };
            first = false;
            f.write_str(s)
        };
        for &(bit, name) in NAMES {
            if rest & bit != 0 {
                sep(f)?;
                f.write_str(name)?;
                rest &= !bit;
            }
        }
        if rest != 0 {
            sep(f)?;
            write!(f, "{rest:#x}")?;
        }
        if let Some(sig) = self.exit_signal().filter(|&s| s != 0) {
            sep(f)?;
            match signal_name(sig) {
                Some(name) => f.write_str(name)?,
                None => write!(f, "signal {sig}")?,
            }
        }
        if first {
            f.write_str("0")?;
        }
        Ok(())
    }
}

/// Name of a signal number, for clone's exit signal.
pub fn signal_name(sig: u32) -> Option<&'static str> {
    nix::sys::signal::Signal::try_from(sig as i32)
        .ok()
        .map(|s| s.as_str())
}

/// In JSON: `{"names": "CLONE_NEWNS|CLONE_NEWUTS", "bits": 67239936}`;
/// `bits` leaves out clone(2)'s exit signal byte.
impl serde::Serialize for CloneFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("CloneFlags", 2)?;
        st.serialize_field("names", &self.to_string())?;
        st.serialize_field("bits", &self.flag_bits())?;
        st.end()
    }
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
}
