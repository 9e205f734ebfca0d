//! A start's phases from the tracer, for any runtime, on the same
//! CLOCK_MONOTONIC timeline as the benchmark's own clock: from the
//! runtime's spawn to namespace creation, cgroup attach, pivot_root, the
//! workload's exec and exit, and the end of the last runtime command.
//! Milestones are put in the order they happened (runc attaches the cgroup
//! before it creates namespaces, boxrun after); each phase is named by the
//! milestone that ends it.

use std::collections::HashMap;

use crate::trace::event::{Detail, Event};

/// Container key -> runtime id, from every event that carries both: early
/// events of a container (before the runtime put it in its cgroup) have
/// the key but not yet the id.
pub fn ids_by_key(events: &[Event]) -> HashMap<u32, String> {
    events
        .iter()
        .filter(|e| e.container != 0)
        .filter_map(|e| Some((e.container, e.container_id.clone()?)))
        .collect()
}

fn last_component(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path)
}

/// The phases of start `id` (milliseconds, in order), or none when the
/// tracer saw too little of it.
pub fn of_start(
    events: &[Event],
    keys: &HashMap<u32, String>,
    id: &str,
    begin_ns: u64,
    end_ns: u64,
) -> Vec<(String, f64)> {
    let mine = |e: &&Event| keys.get(&e.container).is_some_and(|k| k == id);
    let in_window = |e: &&Event| e.ts_ns >= begin_ns && e.ts_ns <= end_ns;
    let evs: Vec<&Event> = events.iter().filter(in_window).collect();
    let mut marks: Vec<(&str, u64)> = Vec::new();
    // A clone that made the namespaces starts the container with the fork
    // event of its parent, keyed by the child.
    let started = |e: &&&Event| {
        let key = match e.detail {
            Detail::Fork { child_tid, .. } => child_tid,
            _ => e.container,
        };
        e.container_start && keys.get(&key).is_some_and(|k| k == id)
    };
    if let Some(e) = evs.iter().find(started) {
        marks.push(("namespaces", e.ts_ns));
    }
    if let Some(e) = evs.iter().find(
        |e| matches!(&e.detail, Detail::CgroupAttach { path, .. } if last_component(path) == id),
    ) {
        marks.push(("cgroup_attach", e.ts_ns));
    }
    if let Some(e) = evs
        .iter()
        .find(|e| mine(e) && matches!(e.detail, Detail::PivotRoot { .. } | Detail::Chroot { .. }))
    {
        marks.push(("pivot_root", e.ts_ns));
    }
    // The workload is the container's last image.
    let exec = evs
        .iter()
        .rfind(|e| mine(e) && matches!(e.detail, Detail::Exec { .. }));
    if let Some(x) = exec {
        marks.push(("workload_exec", x.ts_ns));
        if let Some(e) = evs.iter().find(|e| {
            e.tid == x.tid
                && e.ts_ns >= x.ts_ns
                && matches!(
                    e.detail,
                    Detail::Exit {
                        group_dead: true,
                        ..
                    }
                )
        }) {
            marks.push(("workload_exit", e.ts_ns));
        }
    }
    if marks.is_empty() {
        return Vec::new();
    }
    marks.sort_by_key(|m| m.1);
    marks.push(("deleted", end_ns));
    let mut prev = begin_ns;
    marks
        .into_iter()
        .map(|(name, t)| {
            let d = t.saturating_sub(prev) as f64 / 1e6;
            prev = prev.max(t);
            (name.to_owned(), d)
        })
        .collect()
}
