//! `ClientMessage::parse` on whatever a browser (or anyone) sends as a WebSocket text frame.
//!
//! It must never panic. A message that parses serializes and parses back to itself, and an
//! `op` message's payload goes through the same `TextOperation` decoding the room uses.

#![no_main]

use huddle_ot::TextOperation;
use huddle_protocol::messages::ClientMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = ClientMessage::parse(text) else {
        return;
    };
    let wire = serde_json::to_string(&message)
        .unwrap_or_else(|e| panic!("parsed {message:?} does not serialize: {e}"));
    let again = ClientMessage::parse(&wire)
        .unwrap_or_else(|e| panic!("serialized {wire} does not parse: {e:?}"));
    match &message {
        ClientMessage::Op { op, .. } => {
            // `op` is raw JSON; numbers in it may not survive a float round trip bit for bit,
            // so only the decoded operation is compared.
            let decoded = serde_json::from_value::<TextOperation>(op.clone());
            if let ClientMessage::Op { op: op_again, .. } = &again {
                if let Ok(decoded) = decoded {
                    let decoded_again = serde_json::from_value::<TextOperation>(op_again.clone());
                    assert_eq!(decoded_again.ok(), Some(decoded), "op changed through {wire}");
                }
            } else {
                panic!("{wire} came back as {again:?}");
            }
        }
        _ => assert_eq!(again, message, "round trip through {wire}"),
    }
});
