//! Input reaches the shell whole and in order.

use super::{Terminal, Viewer, sh, sh_config};

#[tokio::test]
async fn many_small_inputs_are_echoed_in_order() {
    let terminal = sh();
    let mut viewer = Viewer::new(&terminal);
    // The terminal's own echo of typed input is interleaved with the shell's output at any
    // byte, which would make the order unreadable; switch it off and wait until it is.
    terminal
        .write(&b"stty -echo; printf 'rea%s\\n' dy\n"[..])
        .await
        .expect("write");
    viewer
        .until("echo off", |v| v.raw_text().contains("ready\r\n"))
        .await;
    viewer.raw.clear();

    for i in 0..200 {
        terminal
            .write(format!("echo line-{i}\n").into_bytes())
            .await
            .expect("write");
    }
    viewer
        .until("200 echoed lines", |v| {
            printed_numbers(&v.raw_text()).len() >= 200
        })
        .await;
    let numbers = printed_numbers(&viewer.raw_text());
    assert_eq!(numbers, (0..200).collect::<Vec<_>>());
}

/// The N of every complete `line-N` the shell printed.
fn printed_numbers(raw: &str) -> Vec<u32> {
    raw.split("line-")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            // Only complete lines: a chunk may end in the middle of one.
            rest[digits.len()..]
                .starts_with("\r\n")
                .then(|| digits.parse().ok())
                .flatten()
        })
        .collect()
}

#[tokio::test]
async fn the_shell_never_sees_the_signing_key() {
    // The agent's own environment is not ours to change in a test (and set_var is unsafe), so
    // the key comes through the config's env: it is dropped the same way the inherited one is.
    let mut config = sh_config();
    config
        .env
        .push(("HUDDLE_TOKEN_KEY".into(), "do-not-leak".into()));
    config.env.push(("VISIBLE".into(), "yes".into()));
    let terminal = Terminal::spawn(config).expect("start /bin/sh on a pty");
    let mut viewer = Viewer::new(&terminal);
    terminal
        .write(&b"echo \"key=[${HUDDLE_TOKEN_KEY-unset}] other=[$VISIBLE]\"\n"[..])
        .await
        .expect("write");
    viewer
        .until("the echo", |v| v.raw_text().contains("other=[yes]"))
        .await;
    assert!(
        viewer.raw_text().contains("key=[unset] other=[yes]"),
        "{}",
        viewer.raw_text()
    );
    assert!(!viewer.raw_text().contains("do-not-leak\r\n"));
}

/// Set in the child process [`the_shell_never_inherits_the_signing_key`] starts.
const INHERIT_CHILD: &str = "HUDDLE_TEST_INHERIT_CHILD";

#[tokio::test]
async fn the_shell_never_inherits_the_signing_key() {
    // In a pod the key is in the agent's own environment, which every child inherits unless
    // told otherwise. A test may not change its own environment (set_var is unsafe), so it runs
    // itself again as a child process with the key in the environment, and the child checks.
    if std::env::var_os(INHERIT_CHILD).is_none() {
        let name = module_path!()
            .split_once("::")
            .map_or(module_path!(), |(_, path)| path);
        let name = format!("{name}::the_shell_never_inherits_the_signing_key");
        let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", &name, "--nocapture", "--test-threads=1"])
            .env(INHERIT_CHILD, "1")
            .env("HUDDLE_TOKEN_KEY", "do-not-leak")
            .env("HUDDLE_TEST_INHERITED", "yes")
            .output()
            .expect("run the test binary again");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "the child run failed or ran nothing:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    assert_eq!(
        std::env::var("HUDDLE_TOKEN_KEY").as_deref(),
        Ok("do-not-leak")
    );
    let terminal = sh();
    let mut viewer = Viewer::new(&terminal);
    terminal
        .write(&b"echo \"key=[${HUDDLE_TOKEN_KEY-unset}] other=[$HUDDLE_TEST_INHERITED]\"\n"[..])
        .await
        .expect("write");
    // The other variable proves the shell does inherit the agent's environment.
    viewer
        .until("the echo", |v| v.raw_text().contains("other=[yes]"))
        .await;
    assert!(
        viewer.raw_text().contains("key=[unset] other=[yes]"),
        "{}",
        viewer.raw_text()
    );
    assert!(!viewer.raw_text().contains("do-not-leak"));
}
