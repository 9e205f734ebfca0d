//! Shared inputs of the benchmarks.

use boxtrace::trace::event::testing::{bytes, raw, set_str};
use boxtrace_common::Kind;

/// A mix of ring buffer records shaped like a runc container start:
/// mostly mounts, execs and clones, with strings where they carry them.
pub fn container_start_records() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..64u32 {
        let mut m = raw(Kind::Mount, [0x5000, 0, 0, 0], "runc:[2:INIT]");
        set_str(&mut m, 0, "/proc/self/fd/6");
        set_str(
            &mut m,
            1,
            "/sys/fs/cgroup/memory/process_api/0d1b0dd8759bcb20/bench",
        );
        set_str(&mut m, 2, "bind");
        m.flags = boxtrace_common::FLAG_RETURNED;
        m.container = 1000;
        out.push(bytes(&m));
        let mut e = raw(Kind::Execve, [0; 4], "runc:[2:INIT]");
        set_str(&mut e, 0, "/usr/local/bin/true");
        e.flags = boxtrace_common::FLAG_RETURNED;
        e.ret = -2;
        e.container = 1000;
        out.push(bytes(&e));
        let mut c = raw(Kind::Clone3, [0x3d0f00, 0, 0, 0], "runc");
        c.flags = boxtrace_common::FLAG_RETURNED;
        c.ret = i64::from(2000 + i);
        out.push(bytes(&c));
        let mut f = raw(Kind::Fork, [u64::from(2000 + i), 0, 0, 0], "runc");
        f.container = 1000;
        out.push(bytes(&f));
        let mut a = raw(Kind::CgroupAttach, [3, u64::from(2000 + i), 0, 0], "runc");
        set_str(&mut a, 0, "/bench");
        out.push(bytes(&a));
        out.push(bytes(&raw(Kind::Exit, [0, 1, 0, 0], "true")));
    }
    out
}
