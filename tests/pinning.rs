//! `--pin-core`: the loop thread alone on its core, the fsync thread off it (the real
//! server, its threads' affinity read from /proc).

mod common;

use common::TestServer;

/// The cores a thread may run on, from `/proc/<pid>/task/<tid>/status`.
fn allowed(pid: u32, tid: &str) -> String {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// The thread ids of the process whose name is `name`.
fn threads_named(pid: u32, name: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .is_ok_and(|c| c.trim() == name)
        })
        .collect()
}

#[test]
fn the_fsync_thread_runs_off_the_pinned_loop_core() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut s = TestServer::start("pin_core = 0\n[storage]\npersist = true\n");
    let pid = s.child.id();
    s.wait_log("pinned to core");
    let fsync = threads_named(pid, "tracecast-fsync");
    assert_eq!(fsync.len(), 1, "one fsync thread");
    let main = allowed(pid, &pid.to_string());
    assert_eq!(main, "0", "the loop thread is pinned to core 0");
    let helper = allowed(pid, &fsync[0]);
    if cores > 1 {
        assert!(
            !helper.is_empty() && helper != "0",
            "fsync thread on {helper:?}"
        );
    } else {
        assert_eq!(helper, "0", "with one core there is nowhere else to go");
    }
    s.terminate();
}
