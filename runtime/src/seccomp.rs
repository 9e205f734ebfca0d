//! Seccomp filters from `linux.seccomp`, compiled with libseccomp (as runc
//! and crun do) so that syscall names, architectures and argument
//! comparisons mean what they mean for other runtimes.
//!
//! The filter is built in boxrun before clone3, so a bad profile fails
//! before anything exists on the host; the init only loads it.

use std::str::FromStr as _;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SeccompError {
    #[error(
        "linux.seccomp: action SCMP_ACT_NOTIFY needs a listener, which boxrun does not support"
    )]
    Notify,
    #[error("linux.seccomp.architectures: `{0}` is not known to libseccomp")]
    Arch(String),
    #[error("linux.seccomp.flags: `{0}` is not supported")]
    Flag(String),
    #[error("linux.seccomp.syscalls[{index}] ({name}): {source}")]
    Rule {
        index: usize,
        name: String,
        source: libseccomp::error::SeccompError,
    },
    #[error("linux.seccomp: {what}: {source}")]
    Filter {
        what: &'static str,
        source: libseccomp::error::SeccompError,
    },
    #[error("loading the seccomp filter: {0}")]
    Load(libseccomp::error::SeccompError),
}

/// A compiled filter, loaded by the init just before it needs to be.
pub struct Filter {
    ctx: ScmpFilterContext,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Filter")
    }
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, SeccompError> {
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        // The spec's default errno is EPERM.
        LinuxSeccompAction::ScmpActErrno => {
            ScmpAction::Errno(errno.unwrap_or(libc::EPERM as u32) as i32)
        }
        LinuxSeccompAction::ScmpActTrace => {
            ScmpAction::Trace(errno.unwrap_or(libc::EPERM as u32) as u16)
        }
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => return Err(SeccompError::Notify),
    })
}

fn compare(a: &LinuxSeccompArg) -> ScmpArgCompare {
    let op = match a.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // For masked equality `value` is the mask and `valueTwo` the datum.
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(a.value()),
    };
    let datum = match a.op() {
        LinuxSeccompOperator::ScmpCmpMaskedEq => a.value_two().unwrap_or(0),
        _ => a.value(),
    };
    ScmpArgCompare::new(a.index() as u32, op, datum)
}

/// How the argument conditions of one syscall entry become rules: all in
/// one rule (AND) when each argument index appears once; one rule per
/// condition (OR) when an index repeats, because libseccomp refuses two
/// conditions on one argument in a rule. This is what runc does.
pub fn rule_groups(args: &[LinuxSeccompArg]) -> Vec<Vec<LinuxSeccompArg>> {
    let mut idx: Vec<usize> = args.iter().map(|a| a.index()).collect();
    idx.sort_unstable();
    let repeated = idx.windows(2).any(|w| w[0] == w[1]);
    if args.is_empty() {
        vec![Vec::new()]
    } else if repeated {
        args.iter().map(|a| vec![*a]).collect()
    } else {
        vec![args.to_vec()]
    }
}

/// Compiles `linux.seccomp`. `no_new_privs` is the process's setting:
/// libseccomp would otherwise set it on load behind the spec's back.
pub fn compile(s: &LinuxSeccomp, no_new_privs: bool) -> Result<Filter, SeccompError> {
    let filter = |what| move |source| SeccompError::Filter { what, source };
    let default = action(s.default_action(), s.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(filter("default action"))?;
    ctx.set_ctl_nnp(no_new_privs)
        .map_err(filter("no_new_privs"))?;
    for a in s.architectures().iter().flatten() {
        let name = a.to_string();
        let arch = ScmpArch::from_str(&name).map_err(|_| SeccompError::Arch(name.clone()))?;
        ctx.add_arch(arch)
            .map_err(filter("adding an architecture"))?;
    }
    for f in s.flags().iter().flatten() {
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => {
                ctx.set_ctl_log(true).map_err(filter("flag log"))?;
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                ctx.set_ctl_ssb(true).map_err(filter("flag spec_allow"))?;
            }
            // boxrun's init is single-threaded: there is nothing to sync.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => {}
            other => return Err(SeccompError::Flag(other.to_string())),
        }
    }
    for (index, sc) in s.syscalls().iter().flatten().enumerate() {
        let act = action(sc.action(), sc.errno_ret())?;
        // libseccomp refuses a rule whose action is the default one;
        // such a rule changes nothing.
        if act == default {
            continue;
        }
        let groups = rule_groups(sc.args().as_deref().unwrap_or(&[]));
        for name in sc.names() {
            // Profiles list syscalls of newer kernels and other
            // architectures; like runc, skip names libseccomp does not know.
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                tracing::debug!("seccomp: unknown syscall `{name}` skipped");
                continue;
            };
            for g in &groups {
                let cmps: Vec<ScmpArgCompare> = g.iter().map(compare).collect();
                ctx.add_rule_conditional(act, nr, &cmps)
                    .map_err(|source| SeccompError::Rule {
                        index,
                        name: name.clone(),
                        source,
                    })?;
            }
        }
    }
    Ok(Filter { ctx })
}

/// What `compile` accepts, for `features`.
pub fn features() -> serde_json::Value {
    // Every action but SCMP_ACT_NOTIFY (no listener support).
    let actions = [
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_LOG",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_TRAP",
    ];
    let operators = [
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_LE",
        "SCMP_CMP_LT",
        "SCMP_CMP_MASKED_EQ",
        "SCMP_CMP_NE",
    ];
    let archs: Vec<&str> = [
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_MIPS",
        "SCMP_ARCH_MIPS64",
        "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_MIPSEL",
        "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32",
        "SCMP_ARCH_PPC",
        "SCMP_ARCH_PPC64",
        "SCMP_ARCH_PPC64LE",
        "SCMP_ARCH_RISCV64",
        "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
    ]
    .into_iter()
    .filter(|a| ScmpArch::from_str(a).is_ok())
    .collect();
    serde_json::json!({
        "enabled": true,
        "actions": actions,
        "operators": operators,
        "archs": archs,
        "knownFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
        "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"]
    })
}

impl Filter {
    /// Installs the filter on the calling thread.
    pub fn load(&self) -> Result<(), SeccompError> {
        self.ctx.load().map_err(SeccompError::Load)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(index: usize, value: u64) -> LinuxSeccompArg {
        serde_json::from_value(
            serde_json::json!({"index": index, "value": value, "op": "SCMP_CMP_EQ"}),
        )
        .unwrap()
    }

    #[test]
    fn distinct_indexes_are_anded_repeated_ones_ored() {
        assert_eq!(rule_groups(&[]), vec![vec![]]);
        let and = rule_groups(&[arg(0, 1), arg(1, 2)]);
        assert_eq!(and.len(), 1);
        assert_eq!(and[0].len(), 2);
        let or = rule_groups(&[arg(0, 1), arg(0, 2)]);
        assert_eq!(or.len(), 2);
    }

    fn profile(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn compiles_a_profile_without_loading_it() {
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat", "no_such_syscall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 1, "value": 448, "op": "SCMP_CMP_EQ"}]}
            ]
        }));
        compile(&p, true).unwrap();
    }

    #[test]
    fn notify_and_unknown_arch_are_refused_by_name() {
        let p = profile(serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"}));
        assert!(matches!(compile(&p, true), Err(SeccompError::Notify)));
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 9, "value": 0, "op": "SCMP_CMP_EQ"}]}]
        }));
        let e = compile(&p, true).unwrap_err().to_string();
        assert!(e.contains("syscalls[0] (mkdir)"), "{e}");
    }
}
