//! Where `tracecast publish` and `tracecast tail` get their bearer token, end to end over
//! the real binary and a server that requires it: `--token-file PATH` or
//! `TRACECAST_TOKEN` keep the token out of the process list; `--token` still works but
//! warns that `ps` shows it; a file outranks the environment; a file that cannot give a
//! token stops the command with a message naming the path, before anything is sent.

mod common;
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const KEY: &str = "client-token-key-0123456789-abcdef";
const WRONG: &str = "not-the-key-0123456789";

fn server() -> TestServer {
    TestServer::start(&format!(
        "[storage]\npersist = false\n[auth]\nenabled = true\n\
         [[auth.api_keys]]\nkey = {KEY:?}\npermissions = [\"read\", \"publish\"]\n"
    ))
}

fn tracecast(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tracecast"));
    // Only what the test says: a TRACECAST_TOKEN from the caller's shell must not leak in.
    cmd.args(args).env_clear().envs(env.iter().copied());
    cmd
}

/// Runs `tracecast publish` with one event on stdin; the wait is bounded.
fn publish(s: &TestServer, args: &[&str], env: &[(&str, &str)]) -> Output {
    let url = format!("http://{}", s.addr);
    let mut all = vec!["publish", "--url", url.as_str()];
    all.extend_from_slice(args);
    let mut child = tracecast(&all, env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn publish");
    let line = format!("{}\n", event("tok", "a", "TASK_START", 1));
    let mut stdin = child.stdin.take().expect("stdin");
    // A command that fails before reading stdin closes it: a write error is fine here.
    let _ = stdin.write_all(line.as_bytes());
    drop(stdin);
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("publish did not finish");
        }
        std::thread::sleep(Duration::from_millis(10)); // polling a process, not syncing
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    if let Some(mut o) = child.stdout.take() {
        o.read_to_end(&mut stdout).expect("stdout");
    }
    if let Some(mut e) = child.stderr.take() {
        e.read_to_end(&mut stderr).expect("stderr");
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_published(out: &Output) {
    assert!(
        out.status.success(),
        "publish failed: {}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("\"accepted\":1"), "{out:?}");
}

fn token_file(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write token file");
    path.display().to_string()
}

#[test]
fn publish_reads_the_token_from_a_file_without_a_warning() {
    let s = server();
    let tmp = tempfile::tempdir().expect("tempdir");
    // An editor or `echo > file` leaves a newline: it is not part of the token.
    let file = token_file(tmp.path(), "token", &format!("{KEY}\n"));
    let out = publish(&s, &["--token-file", &file], &[]);
    assert_published(&out);
    assert!(!text(&out.stderr).contains("warning"), "{out:?}");
}

#[test]
fn token_file_outranks_the_environment() {
    let s = server();
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = token_file(tmp.path(), "token", KEY);
    let out = publish(&s, &["--token-file", &file], &[("TRACECAST_TOKEN", WRONG)]);
    assert_published(&out);
    // And the environment alone is used, silently, when there is no flag.
    let out = publish(&s, &[], &[("TRACECAST_TOKEN", KEY)]);
    assert_published(&out);
    assert!(!text(&out.stderr).contains("warning"), "{out:?}");
    let out = publish(&s, &[], &[("TRACECAST_TOKEN", WRONG)]);
    assert!(!out.status.success(), "{out:?}");
}

#[test]
fn token_flag_still_works_but_warns_that_ps_shows_it() {
    let s = server();
    let out = publish(&s, &["--token", KEY], &[("TRACECAST_TOKEN", WRONG)]);
    assert_published(&out);
    let err = text(&out.stderr);
    for needle in [
        "warning",
        "--token",
        "ps",
        "--token-file",
        "TRACECAST_TOKEN",
    ] {
        assert!(err.contains(needle), "no {needle:?} in the warning: {err}");
    }
    assert!(
        !err.contains(KEY),
        "the warning must not repeat the token: {err}"
    );
}

#[test]
fn unusable_token_file_is_an_error_naming_the_path() {
    let s = server();
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("missing").display().to_string();
    let empty = token_file(tmp.path(), "empty", "");
    let blank = token_file(tmp.path(), "blank", "\n");
    let directory = tmp.path().display().to_string();
    for path in [&missing, &empty, &blank, &directory] {
        // A usable environment token must not paper over a broken file.
        let out = publish(&s, &["--token-file", path], &[("TRACECAST_TOKEN", KEY)]);
        assert_eq!(out.status.code(), Some(2), "{path}: {out:?}");
        assert!(out.stdout.is_empty(), "{path}: nothing is sent: {out:?}");
        let err = text(&out.stderr);
        assert!(err.contains(path.as_str()), "{path} not named: {err}");
        assert!(err.contains("--token-file"), "{err}");
    }
}

#[test]
fn token_and_token_file_together_are_refused() {
    let s = server();
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = token_file(tmp.path(), "token", KEY);
    let out = publish(&s, &["--token", KEY, "--token-file", &file], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
}

#[test]
fn tail_reads_the_token_from_a_file() {
    let s = server();
    let bearer = format!("Bearer {KEY}");
    let body = json!([event("tok", "a", "TASK_START", 1)]).to_string();
    let (st, _, _) = s.http(
        "POST",
        "/v1/events",
        &[("Authorization", &bearer)],
        body.as_bytes(),
    );
    assert_eq!(st, 202);

    let tmp = tempfile::tempdir().expect("tempdir");
    let file = token_file(tmp.path(), "token", &format!("{KEY}\r\n"));
    let url = s.ws_url();
    let mut child = tracecast(
        &[
            "tail",
            "--url",
            &url,
            "--session",
            "tok",
            "--since",
            "0",
            "--token-file",
            &file,
        ],
        &[("TRACECAST_TOKEN", WRONG)],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn tail");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx.recv_timeout(WAIT);
    // tail follows forever: stop it before judging, so a failure leaves no process behind.
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let line = line.unwrap_or_else(|_| panic!("tail printed no event; stderr: {err}"));
    let v: serde_json::Value = serde_json::from_str(&line).expect("an NDJSON line");
    assert_eq!(v["sessionId"], "tok", "{line}");
    assert!(!err.contains("warning"), "{err}");
}
