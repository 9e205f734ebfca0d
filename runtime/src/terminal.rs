//! Terminals. The container's pty is made inside the container (its
//! /dev/ptmx, so the pty belongs to the container's devpts), and its master
//! is handed over a unix socket with SCM_RIGHTS: runc's `--console-socket`
//! protocol, which containerd's shim speaks. `run` and `exec` in the
//! foreground take the master themselves and relay it to their own
//! terminal.

use std::{
    io::{IoSlice, IoSliceMut},
    os::{
        fd::{AsFd, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd},
        unix::net::UnixStream,
    },
    path::{Path, PathBuf},
};

use nix::{
    poll::{PollFd, PollFlags, PollTimeout, poll},
    sys::{
        socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg},
        termios::{self, SetArg, Termios},
    },
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TerminalError {
    #[error("connecting to the console socket {path}: {source}")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        source: nix::Error,
    },
    #[error("the console socket carried no file descriptor")]
    NoFd,
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> TerminalError {
    move |source| TerminalError::Sys { what, source }
}

/// A new pty: the master and the peer (the terminal the process gets).
pub struct Pty {
    pub master: OwnedFd,
    pub peer: OwnedFd,
    /// The peer's path, as the container sees it (`/dev/pts/N`).
    pub name: String,
}

/// Opens a pty on the /dev/ptmx of the current mount namespace.
pub fn open_pty() -> Result<Pty, TerminalError> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: plain open(2) of a constant path.
    let m = unsafe { libc::open(c"/dev/ptmx".as_ptr(), flags) };
    if m < 0 {
        return Err(sys("opening /dev/ptmx")(nix::Error::last()));
    }
    // SAFETY: m is a new fd we own.
    let master = unsafe { OwnedFd::from_raw_fd(m) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int.
    if unsafe { libc::ioctl(m, libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(sys("unlocking the pty")(nix::Error::last()));
    }
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes an unsigned int.
    if unsafe { libc::ioctl(m, libc::TIOCGPTN, &mut n) } < 0 {
        return Err(sys("numbering the pty")(nix::Error::last()));
    }
    // The peer by the master, not by path: no lookup in a /dev/pts the
    // container's files could have changed.
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd.
    let p = unsafe { libc::ioctl(m, libc::TIOCGPTPEER, flags) };
    if p < 0 {
        return Err(sys("opening the pty's peer")(nix::Error::last()));
    }
    Ok(Pty {
        master,
        // SAFETY: p is a new fd we own.
        peer: unsafe { OwnedFd::from_raw_fd(p) },
        name: format!("/dev/pts/{n}"),
    })
}

/// Makes `peer` the controlling terminal and stdio of this process, in a
/// new session.
pub fn take_as_stdio(peer: &OwnedFd) -> Result<(), TerminalError> {
    nix::unistd::setsid().map_err(sys("setsid"))?;
    // SAFETY: TIOCSCTTY with 0: take it only if no other session has it.
    if unsafe { libc::ioctl(peer.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(sys("making the pty the controlling terminal")(
            nix::Error::last(),
        ));
    }
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors.
        if unsafe { libc::dup2(peer.as_raw_fd(), fd) } < 0 {
            return Err(sys("dup2 of the pty")(nix::Error::last()));
        }
    }
    Ok(())
}

/// Connects to a `--console-socket` path.
pub fn connect(path: &Path) -> Result<UnixStream, TerminalError> {
    UnixStream::connect(path).map_err(|source| TerminalError::Connect {
        path: path.to_owned(),
        source,
    })
}

/// Sends `fd` with `name` as the message body (runc sends the pty's name).
pub fn send_fd(sock: RawFd, fd: BorrowedFd<'_>, name: &str) -> Result<(), TerminalError> {
    let fds = [fd.as_raw_fd()];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<()>(
        sock,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(sys("sending the pty over the console socket"))?;
    Ok(())
}

/// Receives one fd sent by [`send_fd`], and its name.
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<(OwnedFd, String), TerminalError> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(sys("receiving the pty"))?;
    let fd = msg
        .cmsgs()
        .map_err(sys("receiving the pty"))?
        .find_map(|c| match c {
            ControlMessageOwned::ScmRights(f) => f.first().copied(),
            _ => None,
        })
        .ok_or(TerminalError::NoFd)?;
    let n = msg.bytes;
    // SAFETY: the kernel installed fd in this process for us.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok((fd, String::from_utf8_lossy(&buf[..n]).into_owned()))
}

/// Our terminal in raw mode while this lives (keys go to the container
/// as typed); the old mode comes back on drop.
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    pub fn enter() -> Self {
        let stdin = std::io::stdin();
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
            // Not a terminal: nothing to change.
            return Self { saved: None };
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        Self { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, t);
        }
    }
}

/// Sets the pty's window size (process.consoleSize).
pub fn set_size(master: &OwnedFd, rows: u64, cols: u64) {
    let ws = libc::winsize {
        ws_row: rows.min(u16::MAX as u64) as u16,
        ws_col: cols.min(u16::MAX as u64) as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// Copies our terminal's window size to the pty.
pub fn copy_window_size(master: BorrowedFd<'_>) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read and write a winsize.
    unsafe {
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

fn write_all(fd: RawFd, mut b: &[u8]) -> bool {
    while !b.is_empty() {
        // SAFETY: writing from a live buffer.
        let n = unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
        if n < 0 {
            if nix::Error::last() == nix::Error::EINTR {
                continue;
            }
            return false;
        }
        b = &b[n as usize..];
    }
    true
}

/// Relays our stdin to `master` and `master` to our stdout until
/// `done` (a pidfd of the container's process) is readable and the
/// master has nothing left, or the pty hangs up. `winch` says when our
/// window changed.
pub fn relay(master: &OwnedFd, done: BorrowedFd<'_>, winch: &dyn Fn() -> bool) {
    let mut buf = [0u8; 8192];
    let mut stdin_open = true;
    let stdin = std::io::stdin();
    loop {
        if winch() {
            copy_window_size(master.as_fd());
        }
        let mut fds = vec![
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
            PollFd::new(done, PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(_) => return,
        }
        let ev = |i: usize| fds[i].revents().unwrap_or(PollFlags::empty());
        let (m, d) = (ev(0), ev(1));
        let s = if stdin_open {
            ev(2)
        } else {
            PollFlags::empty()
        };
        if m.contains(PollFlags::POLLIN) {
            // SAFETY: reading into a live buffer.
            let n = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return;
            }
            write_all(1, &buf[..n as usize]);
            continue;
        }
        if m.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) || !d.is_empty() {
            // The process is gone (or no one holds the terminal) and its
            // output is drained.
            return;
        }
        if s.intersects(PollFlags::POLLIN | PollFlags::POLLHUP) {
            // SAFETY: reading into a live buffer.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 || !write_all(master.as_raw_fd(), &buf[..n as usize]) {
                // End of our input: the container's terminal keeps going.
                stdin_open = false;
            }
        }
    }
}
