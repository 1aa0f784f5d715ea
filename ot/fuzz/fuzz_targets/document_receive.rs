//! The server's document under a fuzzer-chosen stream of submissions, checked against a model.
//!
//! The input is text, one submission per line, so seeds are readable and JSON survives
//! mutation:
//!
//! ```text
//! <history limit> <initial text>
//! <client> <seq> <base rev> <op>
//! ...
//! ```
//!
//! `<base rev>` is a revision number or `~k` for "k revisions ago"; `<op>` is an ot.js JSON
//! op, and a leading `+` pads it with a final retain to fit the document at `<base rev>`.
//! Unparseable lines are skipped. After every submission:
//!
//! - nothing panics; the revision never goes down and grows by exactly one per applied op;
//! - an applied op's transformed form takes the previous text to the new one, its lengths
//!   match the texts, and it equals the model's transform over the ops since `<base rev>`;
//! - a resend (seq not above the client's last) is a duplicate and changes nothing;
//! - an op that fits the document at a revision still in the history is applied, and
//!   anything refused leaves text, revision and checksum as they were;
//! - at the end the kept history replays from its oldest text to the current one.

#![no_main]

use std::collections::HashMap;

use huddle_ot::checksum::checksum_str;
use huddle_ot::{ClientId, Document, Outcome, TextOperation};
use huddle_ot_fuzz::char_len;
use libfuzzer_sys::fuzz_target;

const MAX_SUBMISSIONS: usize = 64;
const MAX_HISTORY_LIMIT: usize = 16;

struct Submission {
    client: ClientId,
    seq: u64,
    base_rev: u64,
    op: TextOperation,
}

/// Parses one `<client> <seq> <base rev> <op>` line; `texts[r]` is the text at revision r.
fn parse_line(line: &str, texts: &[String]) -> Option<Submission> {
    let mut fields = line.splitn(4, ' ');
    let client = ClientId(fields.next()?.to_owned());
    let seq = fields.next()?.parse().ok()?;
    let rev = (texts.len() - 1) as u64;
    let base_rev = match fields.next()? {
        back if back.starts_with('~') => rev.saturating_sub(back[1..].parse().ok()?),
        absolute => absolute.parse().ok()?,
    };
    let json = fields.next()?;
    let (pad, json) = match json.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, json),
    };
    let mut op: TextOperation = serde_json::from_str(json).ok()?;
    if pad {
        let len = usize::try_from(base_rev)
            .ok()
            .and_then(|r| texts.get(r))
            .map_or(0, |t| char_len(t));
        op.retain(len.saturating_sub(op.base_len()));
    }
    Some(Submission {
        client,
        seq,
        base_rev,
        op,
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = input.split('\n');
    let first = lines.next().unwrap_or_default();
    let (limit, initial) = match first.split_once(' ') {
        Some((n, text)) => match n.parse::<usize>() {
            Ok(n) => (n.min(MAX_HISTORY_LIMIT), text),
            Err(_) => (4, first),
        },
        None => (4, first),
    };

    let mut doc = Document::with_history_limit(initial, limit);
    // The model: every text by revision, every applied (transformed) op, each client's last
    // applied (seq, rev).
    let mut texts = vec![initial.to_owned()];
    let mut applied: Vec<TextOperation> = Vec::new();
    let mut last: HashMap<ClientId, (u64, u64)> = HashMap::new();

    for line in lines.take(MAX_SUBMISSIONS) {
        let Some(sub) = parse_line(line, &texts) else {
            continue;
        };
        let rev = doc.rev();
        assert_eq!(rev, (texts.len() - 1) as u64);
        let text = texts.last().expect("at least the initial text").clone();
        let oldest = rev.saturating_sub(limit as u64);
        assert_eq!(doc.oldest_rev(), oldest);

        let duplicate = last.get(&sub.client).is_some_and(|&(s, _)| sub.seq <= s);
        let fits = sub.base_rev >= oldest
            && sub.base_rev <= rev
            && sub.op.base_len() == char_len(&texts[sub.base_rev as usize]);

        let client = sub.client.clone();
        let result = doc.receive(&sub.client, sub.seq, sub.base_rev, sub.op.clone());
        match result {
            Ok(Outcome::Applied {
                rev: new_rev,
                op_transformed,
            }) => {
                assert!(!duplicate, "a resend of {:?} was applied again", sub.seq);
                assert!(fits, "applied an op that does not fit: {:?}", sub.op);
                assert_eq!(new_rev, rev + 1);
                assert_eq!(doc.rev(), new_rev);
                let new_text = doc.text().to_string();
                assert_eq!(op_transformed.base_len(), char_len(&text));
                assert_eq!(op_transformed.target_len(), char_len(&new_text));
                assert_eq!(op_transformed.apply_str(&text).as_ref(), Ok(&new_text));
                let mut expected = sub.op.clone();
                for past in &applied[sub.base_rev as usize..] {
                    expected = TextOperation::transform(&expected, past)
                        .expect("ops since base_rev chain")
                        .0;
                }
                assert_eq!(op_transformed, expected, "not the transform over history");
                texts.push(new_text);
                applied.push(op_transformed);
                last.insert(sub.client, (sub.seq, new_rev));
            }
            Ok(Outcome::Duplicate { rev: dup_rev }) => {
                assert!(duplicate, "seq {} reported as a duplicate", sub.seq);
                let (last_seq, last_rev) = last[&sub.client];
                let expected = if sub.seq == last_seq { last_rev } else { rev };
                assert_eq!(dup_rev, expected);
                assert_eq!(doc.rev(), rev);
                assert_eq!(doc.text().to_string(), text);
            }
            Err(error) => {
                assert!(!duplicate, "a resend was refused: {error}");
                assert!(!fits, "a fitting op was refused: {error} ({:?})", sub.op);
                assert_eq!(doc.rev(), rev);
                assert_eq!(doc.text().to_string(), text, "a refused op changed the text");
            }
        }
        assert_eq!(doc.checksum(), checksum_str(texts.last().expect("non-empty")));
        assert_eq!(doc.last_seq(&client), last.get(&client).map(|&(s, _)| s));
    }

    // The kept history replays from its oldest text to the current one.
    let oldest = doc.oldest_rev();
    let mut text = texts[oldest as usize].clone();
    let history = doc.history_since(oldest).expect("oldest is in range");
    assert_eq!(history.len() as u64, doc.rev() - oldest);
    for (i, step) in history.enumerate() {
        assert_eq!(step.rev, oldest + 1 + i as u64);
        text = step.op.apply_str(&text).expect("history ops chain");
    }
    assert_eq!(text, doc.text().to_string());
    assert_eq!(doc.snapshot(), (doc.rev(), text));
});
