//! cgroup v2 has no devices files: access to device nodes is decided by a
//! BPF_PROG_TYPE_CGROUP_DEVICE program attached to the cgroup. boxrun
//! assembles one from the rules (their order matters, so it is built at
//! create, not compiled ahead) and attaches it with BPF_F_ALLOW_MULTI:
//! programs of ancestor cgroups still apply too.
//!
//! The program: the last rule that matches decides (rules are checked
//! from the end), nothing matching means deny, as a v1 devices cgroup
//! after `a` was denied.

use std::{
    fs::File,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::Path,
};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::CgroupError;

/// One device rule, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// `BPF_DEVCG_DEV_BLOCK` (1), `BPF_DEVCG_DEV_CHAR` (2), None for all.
    pub kind: Option<u32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// `BPF_DEVCG_ACC_MKNOD` 1 | `READ` 2 | `WRITE` 4.
    pub access: u32,
}

impl Rule {
    pub fn from_spec(d: &LinuxDeviceCgroup) -> Self {
        let access = d
            .access()
            .as_deref()
            .unwrap_or("rwm")
            .chars()
            .map(|c| match c {
                'm' => 1,
                'r' => 2,
                'w' => 4,
                _ => 0,
            })
            .fold(0, |a, b| a | b);
        let kind = match d.typ() {
            Some(LinuxDeviceType::B) => Some(1),
            Some(LinuxDeviceType::C | LinuxDeviceType::U) => Some(2),
            // Pipes are no device: nothing to decide.
            Some(LinuxDeviceType::P) => Some(0),
            Some(LinuxDeviceType::A) | None => None,
        };
        let num = |n: Option<i64>| n.filter(|&n| n >= 0).map(|n| n as u32);
        Self {
            allow: d.allow(),
            kind,
            major: num(d.major()),
            minor: num(d.minor()),
            access,
        }
    }

    /// A char device allowed rwm (the OCI default devices).
    pub fn char_allowed(major: u32, minor: Option<u32>) -> Self {
        Self {
            allow: true,
            kind: Some(2),
            major: Some(major),
            minor,
            access: 7,
        }
    }
}

/// `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const MOV32_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// The program for `rules` (in spec order).
pub fn assemble(rules: &[Rule]) -> Vec<Insn> {
    // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
    // access_type = access << 16 | type.
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        // Jumps with a placeholder offset skip the rest of the block.
        let mut block: Vec<(Insn, bool)> = Vec::new();
        if let Some(k) = r.kind {
            block.push((insn(JNE_K, 2, 0, 0, k as i32), true));
        }
        if let Some(m) = r.major {
            block.push((insn(JNE_K, 4, 0, 0, m as i32), true));
        }
        if let Some(m) = r.minor {
            block.push((insn(JNE_K, 5, 0, 0, m as i32), true));
        }
        block.push((insn(MOV32_X, 0, 3, 0, 0), false));
        if r.allow {
            // Allowed only if every access asked for is allowed.
            block.push((insn(AND32_K, 0, 0, 0, !r.access as i32), false));
            block.push((insn(JNE_K, 0, 0, 0, 0), true));
        } else {
            // Denied if any access asked for is denied.
            block.push((insn(AND32_K, 0, 0, 0, r.access as i32), false));
            block.push((insn(JEQ_K, 0, 0, 0, 0), true));
        }
        block.push((insn(MOV64_K, 0, 0, 0, r.allow as i32), false));
        block.push((insn(EXIT, 0, 0, 0, 0), false));
        let len = block.len();
        for (i, (mut ins, skip)) in block.into_iter().enumerate() {
            if skip {
                ins.off = (len - i - 1) as i16;
            }
            p.push(ins);
        }
    }
    p.push(insn(MOV64_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The leading fields of `union bpf_attr` for BPF_PROG_LOAD, zero-padded.
#[repr(C)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    pad: [u8; 56],
}

#[repr(C)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    pad: [u8; 44],
}

fn bpf<T>(cmd: libc::c_long, attr: &T) -> std::io::Result<i64> {
    // SAFETY: bpf(2) with an attr struct of the size we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>() as u32,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r)
}

/// Loads the program for `rules` and attaches it to the cgroup `dir`.
pub fn attach(dir: &Path, rules: &[Rule]) -> Result<(), CgroupError> {
    let err = |what: &'static str| {
        let path = dir.to_owned();
        move |source| CgroupError::DeviceFilter { path, what, source }
    };
    let prog = assemble(rules);
    let mut log = vec![0u8; 64 * 1024];
    let mut name = [0u8; 16];
    name[..13].copy_from_slice(b"boxrun_device");
    let attr = LoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: c"Apache-2.0".as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        prog_ifindex: 0,
        expected_attach_type: BPF_CGROUP_DEVICE,
        pad: [0; 56],
    };
    let fd = match bpf(BPF_PROG_LOAD, &attr) {
        Ok(fd) => fd,
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(0);
            tracing::debug!(
                "verifier: {}",
                String::from_utf8_lossy(&log[..end.min(log.len())])
            );
            return Err(err("loading the device program")(e));
        }
    };
    // SAFETY: a new fd we own.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cg = File::open(dir).map_err(err("opening the cgroup"))?;
    let attach = AttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
        pad: [0; 44],
    };
    // The cgroup keeps the program; our fds may go.
    bpf(BPF_PROG_ATTACH, &attach).map_err(err("attaching the device program"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program the way the kernel would, for one access.
    fn eval(p: &[Insn], kind: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | kind, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => r[dst] = ctx[i.off as usize / 4] as u64,
                AND32_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                RSH32_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                MOV32_X => r[dst] = r[src] as u32 as u64,
                MOV64_K => r[dst] = i.imm as i64 as u64,
                JNE_K if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
                JEQ_K if r[dst] == i.imm as i64 as u64 => pc += i.off as usize,
                JNE_K | JEQ_K => {}
                EXIT => return r[0],
                c => panic!("unknown opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn the_last_matching_rule_decides_and_nothing_matching_is_denied() {
        let deny_all = Rule {
            allow: false,
            kind: None,
            major: None,
            minor: None,
            access: 7,
        };
        let read_only_disk = Rule {
            allow: true,
            kind: Some(1),
            major: Some(8),
            minor: None,
            access: 2,
        };
        let p = assemble(&[
            deny_all.clone(),
            Rule::char_allowed(1, Some(3)),
            read_only_disk,
        ]);
        // /dev/null: any access.
        assert_eq!(eval(&p, 2, 7, 1, 3), 1);
        // /dev/zero: not listed.
        assert_eq!(eval(&p, 2, 2, 1, 5), 0);
        // A disk: read yes, write or mknod no; any minor.
        assert_eq!(eval(&p, 1, 2, 8, 17), 1);
        assert_eq!(eval(&p, 1, 4, 8, 17), 0);
        assert_eq!(eval(&p, 1, 6, 8, 0), 0);
        // A char device with the disk's numbers: the type matters.
        assert_eq!(eval(&p, 2, 2, 8, 17), 0);
        // A later deny of writes overrides an earlier allow.
        let p = assemble(&[
            Rule::char_allowed(1, Some(3)),
            Rule {
                allow: false,
                kind: Some(2),
                major: Some(1),
                minor: Some(3),
                access: 4,
            },
        ]);
        assert_eq!(eval(&p, 2, 2, 1, 3), 1);
        assert_eq!(eval(&p, 2, 6, 1, 3), 0);
        // No rules: everything denied.
        assert_eq!(eval(&assemble(&[]), 2, 2, 1, 3), 0);
    }
}
