//! OCI mount options as mount(2) flags, propagation and data.

use nix::mount::MsFlags;

/// A parsed `options` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOpts {
    pub flags: MsFlags,
    /// Flags to clear (an explicit `rw`, `suid`, ...).
    pub clear: MsFlags,
    pub propagation: MsFlags,
    /// Filesystem-specific options, comma-joined (`mode=755,size=65536k`).
    pub data: String,
}

impl Default for MountOpts {
    fn default() -> Self {
        Self {
            flags: MsFlags::empty(),
            clear: MsFlags::empty(),
            propagation: MsFlags::empty(),
            data: String::new(),
        }
    }
}

impl MountOpts {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// Options that are mount(2) flags: (name, flags it sets, flags it clears).
const FLAG_OPTIONS: &[(&str, MsFlags, MsFlags)] = &[
    ("ro", MsFlags::MS_RDONLY, MsFlags::empty()),
    ("rw", MsFlags::empty(), MsFlags::MS_RDONLY),
    ("nosuid", MsFlags::MS_NOSUID, MsFlags::empty()),
    ("suid", MsFlags::empty(), MsFlags::MS_NOSUID),
    ("nodev", MsFlags::MS_NODEV, MsFlags::empty()),
    ("dev", MsFlags::empty(), MsFlags::MS_NODEV),
    ("noexec", MsFlags::MS_NOEXEC, MsFlags::empty()),
    ("exec", MsFlags::empty(), MsFlags::MS_NOEXEC),
    ("sync", MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
    ("async", MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
    ("dirsync", MsFlags::MS_DIRSYNC, MsFlags::empty()),
    ("remount", MsFlags::MS_REMOUNT, MsFlags::empty()),
    ("mand", MsFlags::MS_MANDLOCK, MsFlags::empty()),
    ("nomand", MsFlags::empty(), MsFlags::MS_MANDLOCK),
    ("atime", MsFlags::empty(), MsFlags::MS_NOATIME),
    ("noatime", MsFlags::MS_NOATIME, MsFlags::empty()),
    ("diratime", MsFlags::empty(), MsFlags::MS_NODIRATIME),
    ("nodiratime", MsFlags::MS_NODIRATIME, MsFlags::empty()),
    ("bind", MsFlags::MS_BIND, MsFlags::empty()),
    (
        "rbind",
        MsFlags::MS_BIND.union(MsFlags::MS_REC),
        MsFlags::empty(),
    ),
    ("relatime", MsFlags::MS_RELATIME, MsFlags::empty()),
    ("norelatime", MsFlags::empty(), MsFlags::MS_RELATIME),
    ("strictatime", MsFlags::MS_STRICTATIME, MsFlags::empty()),
    ("nostrictatime", MsFlags::empty(), MsFlags::MS_STRICTATIME),
];

/// Propagation options.
const PROPAGATION_OPTIONS: &[&str] = &[
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
];

/// Every option boxrun acts on itself (others go to the filesystem as
/// data), sorted: what `features` reports.
pub fn known() -> Vec<&'static str> {
    let mut v: Vec<&str> = FLAG_OPTIONS
        .iter()
        .map(|o| o.0)
        .chain(PROPAGATION_OPTIONS.iter().copied())
        .collect();
    v.sort_unstable();
    v
}

pub fn parse<S: AsRef<str>>(options: &[S]) -> MountOpts {
    let mut o = MountOpts::default();
    let mut data = Vec::new();
    for opt in options {
        let opt = opt.as_ref();
        if PROPAGATION_OPTIONS.contains(&opt) {
            o.propagation |= propagation(opt);
            continue;
        }
        let Some(&(_, set, clear)) = FLAG_OPTIONS.iter().find(|f| f.0 == opt) else {
            data.push(opt);
            continue;
        };
        o.flags = (o.flags | set) & !clear;
        o.clear = (o.clear | clear) & !set;
    }
    o.data = data.join(",");
    o
}

/// Propagation flags of one of `private`, `rslave`, ...
pub fn propagation(name: &str) -> MsFlags {
    let rec = name.starts_with('r') && name != "rw";
    let base = match name.trim_start_matches('r') {
        "private" => MsFlags::MS_PRIVATE,
        "shared" => MsFlags::MS_SHARED,
        "slave" => MsFlags::MS_SLAVE,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        _ => MsFlags::empty(),
    };
    if rec { base | MsFlags::MS_REC } else { base }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_data_and_propagation() {
        let o = parse(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        let o = parse(&["rbind", "ro", "rprivate"]);
        assert!(o.is_bind());
        assert!(o.flags.contains(MsFlags::MS_REC | MsFlags::MS_RDONLY));
        assert_eq!(o.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        let o = parse(&["ro", "rw"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert_eq!(propagation("slave"), MsFlags::MS_SLAVE);
    }
}
