//! Refusals: bad sizes, input after exit, too many terminals.

use std::path::PathBuf;

use super::super::{TerminalError, TerminalSize, Terminals, default_shell};
use super::{Terminal, TerminalConfig, TerminalOutput, Viewer, sh, sh_config};

#[tokio::test]
async fn invalid_sizes_are_rejected() {
    let terminal = sh();
    for (rows, cols) in [
        (0, 80),
        (24, 0),
        (1001, 80),
        (24, 1001),
        (u16::MAX, u16::MAX),
    ] {
        assert!(
            matches!(
                terminal.resize(rows, cols),
                Err(TerminalError::InvalidSize { .. })
            ),
            "{rows}x{cols} accepted"
        );
    }
    assert_eq!(terminal.size(), TerminalSize::default());
    terminal
        .resize(1000, 1)
        .expect("the largest and smallest sizes are fine");

    let too_big = TerminalConfig {
        size: TerminalSize {
            rows: 2000,
            cols: 80,
        },
        ..sh_config()
    };
    assert!(matches!(
        Terminal::spawn(too_big),
        Err(TerminalError::InvalidSize { .. })
    ));
}

#[tokio::test]
async fn writing_after_exit_fails() {
    let terminal = sh();
    let mut viewer = Viewer::new(&terminal);
    terminal.write(&b"exit 3\n"[..]).await.expect("write");
    viewer.until("the exit", |v| v.exit_code.is_some()).await;
    assert_eq!(viewer.exit_code, Some(3));
    assert_eq!(viewer.subscription.next().await, None);
    assert_eq!(terminal.exit_code(), Some(3));

    assert!(matches!(
        terminal.write(&b"echo hi\n"[..]).await,
        Err(TerminalError::Exited { code: 3 })
    ));
    // A viewer arriving afterwards still gets the last screen, then the exit.
    let (_, mut late) = terminal.subscribe();
    assert_eq!(late.next().await, Some(TerminalOutput::Exited(3)));
    assert_eq!(late.next().await, None);
}

#[test]
fn missing_working_directory_is_an_error() {
    let config = TerminalConfig {
        cwd: Some(PathBuf::from("/nonexistent/huddle")),
        ..sh_config()
    };
    assert!(matches!(
        Terminal::spawn(config),
        Err(TerminalError::BadWorkingDirectory(_))
    ));
}

#[test]
fn default_shell_exists() {
    assert!(std::path::Path::new(&default_shell()).is_file());
}

#[tokio::test]
async fn registry_caps_open_terminals_and_closing_hangs_up() {
    let terminals = Terminals::new(2);
    let (first, terminal) = terminals.create(sh_config()).expect("first");
    let (second, _) = terminals.create(sh_config()).expect("second");
    assert_ne!(first, second);
    assert!(matches!(
        terminals.create(sh_config()),
        Err(TerminalError::TooManyTerminals { max: 2 })
    ));
    let ids: Vec<_> = terminals.list().iter().map(|info| info.id).collect();
    assert_eq!(ids, [first, second]);

    let mut viewer = Viewer::new(&terminal);
    drop(terminal);
    terminals.close(first).expect("close");
    viewer.until("the hang-up", |v| v.exit_code.is_some()).await;
    assert!(terminals.get(first).is_none());
    assert!(matches!(
        terminals.close(first),
        Err(TerminalError::NotFound(id)) if id == first
    ));

    let (third, _) = terminals
        .create(sh_config())
        .expect("room again after a close");
    assert!(third > second, "ids are not reused");
}

#[tokio::test]
async fn registry_forwards_by_id() {
    let terminals = Terminals::default();
    let (id, _) = terminals.create(sh_config()).expect("create");
    let shared = terminals.clone();
    let (snapshot, subscription) = shared.subscribe(id).expect("subscribe");
    let mut viewer = Viewer::starting_from(snapshot, subscription);
    shared
        .write(id, &b"printf 'by-%s\\n' id\n"[..])
        .expect("write");
    viewer
        .until("output", |v| v.raw_text().contains("by-id"))
        .await;
    shared.resize(id, 10, 40).expect("resize");
    viewer.until("the new size", |v| v.size.rows == 10).await;
    assert_eq!(terminals.ids(), [id]);
    assert!(matches!(
        shared.write(id + 1, &b"x"[..]),
        Err(TerminalError::NotFound(_))
    ));
}
