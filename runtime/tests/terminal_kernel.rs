//! Terminals, detached starts and pid files, as containerd's shim and a
//! person at a terminal use them. Needs root.

mod common;

use std::{
    io::{IoSliceMut, Read as _, Write as _},
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::net::UnixListener,
    },
    path::Path,
    time::{Duration, Instant},
};

use common::{BOXRUN, TestBundle, Tmux};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};

/// Accepts one connection on `path` and receives the fd it carries, with
/// the message body (the pty's name), as any console-socket client does.
fn receive_pty(listener: &UnixListener) -> (std::fs::File, String) {
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    let fd = msg
        .cmsgs()
        .unwrap()
        .find_map(|c| match c {
            ControlMessageOwned::ScmRights(f) => Some(f[0]),
            _ => None,
        })
        .expect("an fd over SCM_RIGHTS");
    let n = msg.bytes;
    let name = String::from_utf8_lossy(&buf[..n]).into_owned();
    // SAFETY: the kernel gave us this fd.
    (
        std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) }),
        name,
    )
}

/// Reads from the pty master until `want` shows up (or 10 s pass).
fn read_until(master: &mut std::fs::File, want: &str) -> String {
    let fd = master.as_raw_fd();
    // SAFETY: fcntl on an fd we own.
    unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    let end = Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    let mut buf = [0u8; 1024];
    while !seen.contains(want) {
        assert!(Instant::now() < end, "no `{want}` in {seen:?}");
        match master.read(&mut buf) {
            Ok(n) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    seen
}

#[test]
fn console_socket_receives_the_pty_and_a_line_round_trips() {
    let id = "tt-console";
    let b = TestBundle::new(
        &[
            "sh",
            "-c",
            "read x; echo got-$x on $(tty) as $(id -u) console $(stat -c %t:%T /dev/console)",
        ],
        serde_json::json!({}),
    );
    b.with_terminal();
    b.edit(|c| c["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000}));
    let sock = b.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut create = b
        .cmd(&[
            "create",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
        ])
        .arg(b.path())
        .arg(id)
        .spawn()
        .unwrap();
    let (mut master, name) = receive_pty(&listener);
    assert!(create.wait().unwrap().success());
    assert_eq!(name, "/dev/pts/0", "runc sends the pty's name");
    b.ok(&["start", id]);
    master.write_all(b"hello\n").unwrap();
    let seen = read_until(&mut master, "console 88:0");
    // /dev/console is the pty too (136:0, in hex), as the OCI spec says.
    assert!(
        seen.contains("got-hello on /dev/pts/0 as 1000 console 88:0"),
        "{seen:?}"
    );
    b.wait_stopped(id, Duration::from_secs(5));
    b.ok(&["delete", id]);
}

#[test]
fn a_terminal_without_a_console_socket_is_refused_on_create() {
    let b = TestBundle::new(&["true"], serde_json::json!({}));
    b.with_terminal();
    let err = b.create_err("tt-refused", &[]);
    assert!(err.contains("--console-socket"), "{err}");
    assert!(!b.state_root().join("tt-refused").exists());
    // And the reverse: a socket for a process without a terminal.
    let b = TestBundle::new(&["true"], serde_json::json!({}));
    let sock = b.path().join("console.sock");
    let _l = UnixListener::bind(&sock).unwrap();
    let err = b.create_err("tt-refused", &["--console-socket", sock.to_str().unwrap()]);
    assert!(err.contains("process.terminal is not true"), "{err}");
}

#[test]
fn run_in_the_foreground_is_interactive_in_tmux() {
    let id = "tt-tmux";
    let b = TestBundle::new(&["sh"], serde_json::json!({}));
    b.with_terminal();
    let cmd = format!(
        "{BOXRUN} --root {} run --bundle {} {id}; echo EXIT=$?; sleep 60",
        b.state_root().display(),
        b.path().display()
    );
    let t = Tmux::start("boxrun-test", 100, 30, &cmd);
    t.wait_for("#");
    t.keys(&["echo hi-$((40+2)) $(tty); stty size", "Enter"]);
    // Keys reach the shell, its output comes back, and the pty has the
    // pane's size.
    let pane = t.wait_for("30 100");
    assert!(pane.contains("hi-42 /dev/pts/0"), "{pane}");
    // ^C goes to the container's shell through its terminal, not to
    // boxrun: the shell lives on.
    t.keys(&["sleep 50", "Enter"]);
    std::thread::sleep(Duration::from_millis(300));
    t.keys(&["C-c"]);
    t.keys(&["echo after-$((6*7))", "Enter"]);
    t.wait_for("after-42");
    t.keys(&["exit 7", "Enter"]);
    let pane = t.wait_for("EXIT=");
    assert!(pane.contains("EXIT=7"), "{pane}");
    assert!(
        !b.state_root().join(id).exists(),
        "run deletes the container"
    );
}

fn pid_in(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn detached_run_and_exec_write_pid_files_and_exec_gets_a_pty() {
    let id = "tt-detach";
    let b = TestBundle::new(&["sleep", "60"], serde_json::json!({}));
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/dev/pts", "type": "devpts", "source": "devpts",
            "options": ["newinstance", "ptmxmode=0666"]
        }));
    });
    let pid_file = b.path().join("init.pid");
    let log = std::fs::File::create(b.path().join("run.out")).unwrap();
    let st = b
        .cmd(&[
            "run",
            "--detach",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--bundle",
        ])
        .arg(b.path())
        .arg(id)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(b.status(id), "running");
    assert_eq!(
        pid_in(&pid_file),
        b.state(id)["pid"].as_i64().unwrap() as i32
    );

    // As containerd's shim execs: --detach, --pid-file, --console-socket.
    let sock = b.path().join("exec.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let exec_pid = b.path().join("exec.pid");
    let process = b.path().join("process.json");
    std::fs::write(
        &process,
        r#"{"terminal": true, "args": ["sh", "-c", "read x; echo exec-got-$x $(tty)"],
            "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}"#,
    )
    .unwrap();
    let mut exec = b
        .cmd(&[
            "exec",
            "--process",
            process.to_str().unwrap(),
            "--detach",
            "--pid-file",
            exec_pid.to_str().unwrap(),
            "--console-socket",
            sock.to_str().unwrap(),
            id,
        ])
        .spawn()
        .unwrap();
    let (mut master, _) = receive_pty(&listener);
    assert!(exec.wait().unwrap().success(), "--detach returns at once");
    let pid = pid_in(&exec_pid);
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    master.write_all(b"ping\n").unwrap();
    let seen = read_until(&mut master, "/dev/pts/");
    assert!(seen.contains("exec-got-ping /dev/pts/"), "{seen:?}");

    // A foreground exec -t relays the pty to our stdout.
    let out = b.ok(&["exec", "-t", id, "sh", "-c", "echo fg $(tty)"]);

    assert!(out.contains("fg /dev/pts/"), "{out:?}");
    // The detached exec's shell has exited; its zombie belongs to
    // whoever adopted it (here pid 1, which reaps it late): `delete`
    // waits until the init is gone all the same.
    b.ok(&["delete", "--force", id]);
    // Killed and exited: gone, or a zombie until its adopter reaps it.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid_in(&pid_file)));
    assert!(
        stat.as_ref()
            .map_or(true, |s| s.rsplit_once(") ").unwrap().1.starts_with('Z')),
        "{stat:?}"
    );
}
