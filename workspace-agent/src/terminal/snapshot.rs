//! Rendering the server-side emulator's state as bytes a fresh terminal can replay.
//!
//! A snapshot is not a replay of everything the shell printed (that grows without bound and
//! would redraw hours of history): it is the emulator's scrollback followed by its screen,
//! re-encoded. Written into a fresh xterm.js or `vt100` terminal of the same size it yields the
//! same scrollback lines, the same screen, cursor position, colours and input modes.
//!
//! Not reproduced: the scroll region, the window title, and, while a full-screen program runs
//! on the alternate screen, the main screen behind it (vt100 exposes only the active one).

use bytes::Bytes;
use vt100::capture::{BasicFormattedCaptureRange, BasicFormattedCaptureState};

use super::config::TerminalSize;

/// What a viewer needs to show a terminal from scratch: the size to open it at, and the bytes
/// to write into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub size: TerminalSize,
    pub bytes: Bytes,
}

/// The bytes, so a snapshot can be sent (or base64-encoded) like a chunk.
impl AsRef<[u8]> for Snapshot {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// RIS, "reset to initial state": a resynchronising viewer may hold anything, so the
/// snapshot starts by clearing its screen, scrollback and modes.
const RESET: &str = "\x1bc";
/// Switch to the alternate screen (what full-screen programs such as vim run on).
const ENTER_ALTERNATE_SCREEN: &str = "\x1b[?1049h";

pub(crate) fn render(screen: &vt100::Screen) -> Snapshot {
    let (rows, cols) = screen.size();
    let mut out = String::from(RESET);
    if screen.alternate_screen() {
        out.push_str(ENTER_ALTERNATE_SCREEN);
    } else {
        push_history(screen, &mut out);
    }
    // Redraw the screen exactly, with absolute cursor moves: this fixes up anything the history
    // pass could not express (wide characters at the edge, rows whose wrap flag is stale) and
    // leaves the cursor, its visibility and the pen's attributes where the shell left them.
    out.push_str(&screen.contents_formatted());
    out.push_str(&screen.input_mode_formatted());
    Snapshot {
        size: TerminalSize {
            rows: rows.get(),
            cols: cols.get(),
        },
        bytes: Bytes::from(out),
    }
}

/// Writes scrollback and screen rows as lines, so that in a terminal of the same height the
/// scrollback rows scroll off the top into the viewer's own scrollback. Uses vt100's "basic"
/// capture: SGR sequences and `\n` between rows that do not wrap into the next.
fn push_history(screen: &vt100::Screen, out: &mut String) {
    let mut lines = String::new();
    let mut state = BasicFormattedCaptureState::new();
    // Writing into a String cannot fail; should vt100 ever report an error we keep what was
    // written, and the exact redraw that follows still shows the right screen.
    let _ = screen
        .write_contents_formatted_basic(&mut lines, BasicFormattedCaptureRange::Full(&mut state));
    // A bare LF moves down without returning to column 0 (the PTY adds the CR for real output).
    for (i, line) in lines.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        out.push_str(line);
    }
    out.push_str("\x1b[m");
}

/// Plain text of the scrollback and the screen, one line per row (wrapped rows joined),
/// without trailing blank lines: what a session snapshot stores for a terminal.
pub(crate) fn plain_text(screen: &vt100::Screen) -> String {
    let mut formatted = String::new();
    let mut state = BasicFormattedCaptureState::new();
    let _ = screen.write_contents_formatted_basic(
        &mut formatted,
        BasicFormattedCaptureRange::Full(&mut state),
    );
    let mut text: String = vt100::capture::basic_formatted_to_plain(&formatted).collect();
    let kept = text.trim_end_matches(['\n', ' ']).len();
    text.truncate(kept);
    text
}
