//! Late joiners get the emulator's screen and scrollback, re-encoded, not a byte replay.

use super::super::snapshot;
use super::{TerminalSize, Viewer, eventually, replay, sh};

#[tokio::test]
async fn late_subscriber_sees_earlier_output_and_the_new_size() {
    let terminal = sh();
    let mut early = Viewer::new(&terminal);
    // `%s` keeps the typed command itself from containing the text we look for.
    terminal
        .write(&b"printf 'hello-%s\\n' late\n"[..])
        .await
        .expect("write");
    eventually("hello-late on the server's screen", || {
        terminal
            .scrollback_text()
            .contains("hello-late")
            .then_some(())
    })
    .await;

    terminal.resize(30, 100).expect("resize");
    let expected = TerminalSize {
        rows: 30,
        cols: 100,
    };
    assert_eq!(terminal.size(), expected);

    let (snapshot, _subscription) = terminal.subscribe();
    assert_eq!(snapshot.size, expected);
    let late = replay(&snapshot);
    assert!(
        late.screen().contents().contains("hello-late"),
        "late joiner's screen:\n{}",
        late.screen().contents()
    );

    early
        .until("a resync at the new size", |v| v.size == expected)
        .await;
}

#[tokio::test]
async fn snapshot_keeps_the_last_500_lines_and_reproduces_the_screen() {
    let terminal = sh();
    terminal
        .write(
            &b"i=1; while [ $i -le 700 ]; do echo row-$i; i=$((i+1)); done; echo fin''ished\n"[..],
        )
        .await
        .expect("write");
    eventually("the 700 rows", || {
        terminal
            .scrollback_text()
            .contains("finished")
            .then_some(())
    })
    .await;

    let text = terminal.scrollback_text();
    let lines: Vec<&str> = text.lines().collect();
    for gone in [1, 2, 100, 150] {
        let row = format!("row-{gone}");
        assert!(
            !lines.contains(&row.as_str()),
            "{row} should have scrolled away"
        );
    }
    let kept: Vec<String> = (200..=700).map(|i| format!("row-{i}")).collect();
    let first = lines
        .iter()
        .position(|line| *line == "row-200")
        .expect("row-200 kept");
    assert_eq!(lines[first..first + kept.len()], kept[..]);

    // The snapshot and the server's own state, under the same lock.
    let state = terminal.shared().lock();
    let server = state.parser.screen();
    let snapshot = snapshot::render(server);
    let replayed = replay(&snapshot);
    assert_eq!(
        replayed.screen().contents_formatted(),
        server.contents_formatted()
    );
    assert_eq!(
        replayed.screen().cursor_position(),
        server.cursor_position()
    );
    assert_eq!(
        snapshot::plain_text(replayed.screen()),
        snapshot::plain_text(server)
    );
}

#[tokio::test]
async fn snapshot_keeps_colours_cursor_and_modes() {
    let terminal = sh();
    let mut viewer = Viewer::new(&terminal);
    // Red and bold text, a line with a reverse-video blank, the cursor keys in application
    // mode, and the cursor left mid-line with no newline after it.
    terminal
        .write(
            &b"printf '\\033[31;1mred\\033[0m plain\\n\\033[7m  \\033[0mx\\n\\033[?1h' ; printf 'stay-%s' here\n"[..],
        )
        .await
        .expect("write");
    viewer
        .until("the coloured output", |v| v.text().contains("stay-here"))
        .await;

    let state = terminal.shared().lock();
    let server = state.parser.screen();
    let replayed = replay(&snapshot::render(server));
    assert_eq!(
        replayed.screen().contents_formatted(),
        server.contents_formatted()
    );
    assert_eq!(
        replayed.screen().cursor_position(),
        server.cursor_position()
    );
    assert!(replayed.screen().application_cursor());
    // The prompt may precede it: the shell can print it after the typed-ahead command echo.
    let (row, col) = replayed
        .screen()
        .rows(0, 80)
        .enumerate()
        .find_map(|(row, text)| text.find("red plain").map(|col| (row, col)))
        .expect("the red line");
    let cell = replayed
        .screen()
        .cell(
            u16::try_from(row).expect("row"),
            u16::try_from(col).expect("col"),
        )
        .expect("cell");
    assert_eq!(cell.fgcolor(), vt100::Color::Idx(1));
    assert!(cell.bold());
}

#[tokio::test]
async fn snapshot_of_a_full_screen_program_shows_its_screen() {
    let terminal = sh();
    let mut viewer = Viewer::new(&terminal);
    // What vim and less do: switch to the alternate screen and draw at absolute positions.
    terminal
        .write(&b"printf '\\033[?1049h\\033[5;10Hfull-%s' screen\n"[..])
        .await
        .expect("write");
    viewer
        .until("the alternate screen", |v| v.text().contains("full-screen"))
        .await;

    let state = terminal.shared().lock();
    let server = state.parser.screen();
    assert!(server.alternate_screen());
    let replayed = replay(&snapshot::render(server));
    assert!(replayed.screen().alternate_screen());
    assert_eq!(
        replayed.screen().contents_formatted(),
        server.contents_formatted()
    );
    assert_eq!(
        replayed.screen().cursor_position(),
        server.cursor_position()
    );
}
