//! Input reaches the shell whole and in order.

use super::{Viewer, sh};

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
