//! boxrun: a minimal OCI runtime. The harness starts containers with it,
//! and it is a contender in the start-latency benchmarks.
//!
//! One concern per module: `bundle` reads and checks config.json, `state`
//! keeps what a container is across commands, `cgroup` applies limits
//! (v1 and v2 drivers), `container` creates the process and its world,
//! `seccomp` compiles the spec's filter, `terminal` makes and relays ptys,
//! `hooks` runs the spec's hooks.

pub mod bundle;
pub mod cgroup;
pub mod container;
pub mod hooks;
pub mod id;
pub mod phases;
pub mod seccomp;
pub mod state;
pub mod terminal;
