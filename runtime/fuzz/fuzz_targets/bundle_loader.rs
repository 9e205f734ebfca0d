//! The config.json loader and what boxrun derives from an accepted spec
//! before any syscall: mount options, the seccomp program, hook lists,
//! mount destinations resolved in an (empty) rootfs. Any input must end
//! in Ok or a typed error, never a panic or a hang.
#![no_main]

use std::{path::Path, sync::OnceLock};

use boxrun::{
    bundle::check_text,
    container::{mount_opts, resolve_in_root},
    hooks::Kind,
    seccomp,
};
use libfuzzer_sys::fuzz_target;

fn rootfs() -> &'static Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("boxrun-fuzz-rootfs-{}", std::process::id()));
        std::fs::create_dir_all(d.join("usr/lib")).unwrap();
        let _ = std::os::unix::fs::symlink("usr/lib", d.join("lib"));
        let _ = std::os::unix::fs::symlink("/etc", d.join("abs"));
        let _ = std::os::unix::fs::symlink("../../..", d.join("usr/up"));
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = check_text(Path::new("config.json"), text) else {
        return;
    };
    for m in spec.mounts().iter().flatten() {
        let _ = mount_opts::parse(m.options().as_deref().unwrap_or_default());
        let _ = resolve_in_root(rootfs(), &m.destination().to_string_lossy());
    }
    for k in Kind::ALL {
        let _ = k.of(spec.hooks().as_ref()).len();
    }
    if let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        let nnp = spec
            .process()
            .as_ref()
            .is_some_and(|p| p.no_new_privileges() == Some(true));
        let _ = seccomp::compile(s, nnp);
    }
    let _ = serde_json::to_string(&spec);
});
