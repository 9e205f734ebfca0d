//! The workload of boxtrace's built-in image: a multi-call program, named
//! by its first argument (or by the name it was called by, as busybox):
//!
//! ```text
//! workload true                         exit 0 at once
//! workload hello                        say where it runs: hostname, pid, cgroup
//! workload sleep SECS                   sleep (fractions allowed)
//! workload alloc MIB [STEP_MIB [MS]]    touch MIB MiB, STEP_MIB at a time, MS between steps
//! workload spin THREADS SECS            keep THREADS threads busy for SECS
//! workload fork N [SECS]                start N children that sleep SECS; report how many started
//! workload write FILE MIB               write MIB MiB with O_DIRECT, report MiB/s
//! workload read FILE MIB                read MIB MiB with O_DIRECT, report MiB/s
//! ```
//!
//! Each prints one line of `key=value` results on stdout, so the harness
//! can read what happened from inside the container. It uses only std:
//! harness/build.rs compiles this file with rustc alone, statically.

use std::{
    alloc::{Layout, alloc_zeroed},
    io::{Read, Write},
    os::unix::fs::OpenOptionsExt,
    process::ExitCode,
    time::{Duration, Instant},
};

/// O_DIRECT on x86_64 and aarch64 Linux.
#[cfg(target_arch = "x86_64")]
const O_DIRECT: i32 = 0o40000;
#[cfg(not(target_arch = "x86_64"))]
const O_DIRECT: i32 = 0o200000;
const MIB: usize = 1 << 20;
const CHUNK: usize = 64 << 10;

fn usage() -> ExitCode {
    eprintln!(
        "usage: workload true | hello | sleep SECS | alloc MIB [STEP_MIB [MS]] | spin THREADS SECS | \
         fork N [SECS] | write FILE MIB | read FILE MIB"
    );
    ExitCode::from(2)
}

fn num<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Result<T, String> {
    let s = args.get(i).ok_or_else(|| format!("missing {what}"))?;
    s.parse()
        .map_err(|_| format!("{what}: `{s}` is not a number"))
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    let called = std::path::Path::new(&args[0])
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if called == "workload" {
        args.remove(0);
    }
    if args.is_empty() {
        return usage();
    }
    let cmd = std::path::Path::new(&args[0])
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let result = match cmd.as_str() {
        "true" => Ok(()),
        "hello" => hello(),
        "sleep" => {
            num::<f64>(&args, 1, "SECS").map(|s| std::thread::sleep(Duration::from_secs_f64(s)))
        }
        "alloc" => alloc(&args),
        "spin" => spin(&args),
        "fork" => fork(&args),
        "write" | "read" => io(&args, cmd == "write"),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workload {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hello() -> Result<(), String> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let host = read("/proc/sys/kernel/hostname");
    let cgroup = read("/proc/self/cgroup");
    // The v2 line, or the pids hierarchy's on v1: both name the container.
    let line = cgroup
        .lines()
        .find(|l| l.starts_with("0::") || l.contains(":pids:"))
        .or_else(|| cgroup.lines().next())
        .unwrap_or("unknown");
    println!(
        "hello from {} (pid {}), cgroup {line}",
        host.trim(),
        std::process::id()
    );
    Ok(())
}

/// Touches memory step by step, printing the total after each step so an
/// OOM kill shows how far it got.
fn alloc(args: &[String]) -> Result<(), String> {
    let total: usize = num(args, 1, "MIB")?;
    let step: usize = if args.len() > 2 {
        num(args, 2, "STEP_MIB")?
    } else {
        total.max(1)
    };
    let pause: u64 = if args.len() > 3 {
        num(args, 3, "MS")?
    } else {
        0
    };
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut done = 0;
    let out = std::io::stdout();
    while done < total {
        let n = step.min(total - done);
        let mut v = vec![0u8; n * MIB];
        // Write every page: untouched pages cost nothing.
        for p in v.chunks_mut(4096) {
            p[0] = 1;
        }
        held.push(v);
        done += n;
        let _ = writeln!(out.lock(), "allocated_mib={done}");
        if pause > 0 {
            std::thread::sleep(Duration::from_millis(pause));
        }
    }
    std::hint::black_box(&held);
    Ok(())
}

fn spin(args: &[String]) -> Result<(), String> {
    let threads: usize = num(args, 1, "THREADS")?;
    let secs: f64 = num(args, 2, "SECS")?;
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < end {
                    for _ in 0..10_000 {
                        n = std::hint::black_box(n.wrapping_add(1));
                    }
                }
                n
            })
        })
        .collect();
    let loops: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    println!("threads={threads} loops={loops}");
    Ok(())
}

/// Starts children (this program, sleeping) until N or the kernel refuses.
fn fork(args: &[String]) -> Result<(), String> {
    let n: usize = num(args, 1, "N")?;
    let secs = args.get(2).map_or("30", String::as_str);
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut children = Vec::new();
    let mut refused = None;
    for _ in 0..n {
        match std::process::Command::new(&me)
            .args(["sleep", secs])
            .spawn()
        {
            Ok(c) => children.push(c),
            Err(e) => {
                refused = Some(e.raw_os_error().unwrap_or(0));
                break;
            }
        }
    }
    println!(
        "started={} refused_errno={}",
        children.len(),
        refused.map_or("none".to_owned(), |e| e.to_string())
    );
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    Ok(())
}

fn io(args: &[String], write: bool) -> Result<(), String> {
    let path = args.get(1).ok_or("missing FILE")?;
    let mib: usize = num(args, 2, "MIB")?;
    // O_DIRECT needs buffers aligned to the logical block size. 64 KiB
    // requests keep the throttle's byte counts smooth at 100 ms sampling
    // (1 MiB requests at 8 MiB/s move in 125 ms steps).
    let layout = Layout::from_size_align(CHUNK, 4096).map_err(|e| e.to_string())?;
    // SAFETY: non-zero size; freed never (the process exits).
    let ptr = unsafe { alloc_zeroed(layout) };
    if ptr.is_null() {
        return Err("out of memory".into());
    }
    // SAFETY: ptr is valid for CHUNK bytes, zeroed, and only used here.
    let buf = unsafe { std::slice::from_raw_parts_mut(ptr, CHUNK) };
    let mut f = std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .create(write)
        .truncate(write)
        .custom_flags(O_DIRECT)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    let t = Instant::now();
    for _ in 0..mib * (MIB / CHUNK) {
        if write {
            f.write_all(buf).map_err(|e| format!("{path}: {e}"))?;
        } else {
            f.read_exact(buf).map_err(|e| format!("{path}: {e}"))?;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "mib={mib} secs={secs:.3} mib_per_s={:.1}",
        mib as f64 / secs
    );
    Ok(())
}
