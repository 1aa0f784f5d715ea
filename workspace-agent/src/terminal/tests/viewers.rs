//! A slow viewer never holds up the PTY or the others; it is resynchronised instead.

use super::super::{TerminalConfig, TerminalOutput, snapshot};
use super::{DEADLINE, Terminal, Viewer, replay, sh_config};

#[tokio::test]
async fn slow_viewer_gets_a_snapshot_and_does_not_block_a_fast_one() {
    let terminal = Terminal::spawn(TerminalConfig {
        output_queue: 4,
        ..sh_config()
    })
    .expect("spawn");
    // Subscribed, then never read until the end.
    let (_, mut slow) = terminal.subscribe();
    let mut fast = Viewer::new(&terminal);

    terminal
        .write(
            &b"i=1; while [ $i -le 3000 ]; do echo row-$i; i=$((i+1)); done; echo fin''ished\n"[..],
        )
        .await
        .expect("write");

    // The fast viewer ends up with exactly the server's screen and scrollback (through chunks,
    // or a resync should it have lagged itself with so small a queue).
    fast.until("the fast viewer to match the server", |v| {
        let state = terminal.shared().lock();
        let server = state.parser.screen();
        v.text().contains("finished")
            && v.parser.screen().contents_formatted() == server.contents_formatted()
            && v.text() == snapshot::plain_text(server)
    })
    .await;

    // 3000 lines through a 4-chunk queue: the slow viewer lagged, and is told so once, with
    // the current screen rather than the missed bytes.
    match tokio::time::timeout(DEADLINE, slow.next())
        .await
        .expect("slow viewer's next")
    {
        Some(TerminalOutput::Resync(snapshot)) => {
            let screen = replay(&snapshot).screen().contents();
            assert!(
                screen.contains("row-3000") && screen.contains("finished"),
                "{screen}"
            );
        }
        other => panic!("expected a resync, got {other:?}"),
    }
    println!("fast viewer resyncs: {}", fast.resyncs);
}
