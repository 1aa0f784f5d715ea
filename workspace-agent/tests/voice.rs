//! Voice as participants meet it: a real agent on loopback, and Rust WebRTC clients that join
//! over the agent's WebSocket, publish synthetic Opus (50 packets/s, each saying who sent it and
//! its number) and receive everyone else's through the agent's SFU. No mocks: real ICE, DTLS
//! and SRTP over 127.0.0.1.

#[allow(dead_code)]
mod support;

use anyhow::{Result, bail, ensure};
use huddle_agent::voice::{IceServer, VoiceConfig};
use huddle_protocol::Role;
use huddle_protocol::messages::{ClientMessage, ErrorCode, ServerMessage, VoiceState};
use std::collections::BTreeSet;
use std::time::Duration;
use support::voice_client::{VoiceClient, everyone_hears_everyone};
use support::{start_agent, token, user_id};

/// One scenario at a time: ten clients and the agent in one debug-built process already keep a
/// core busy, and starving them of CPU would lose packets this file means to count.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A window over which delivery is counted, and how long late packets get to arrive.
const WINDOW: Duration = Duration::from_secs(2);
const SETTLE: Duration = Duration::from_millis(400);
const UNMUTED: Option<VoiceState> = Some(VoiceState { muted: false });
const MUTED: Option<VoiceState> = Some(VoiceState { muted: true });

/// Checks that every client heard at least 90% of what each other, not `silent`, sent in a
/// window.
async fn everyone_hears_most_of_everyone(clients: &[VoiceClient], silent: &[u8]) -> Result<()> {
    let start: Vec<u32> = clients.iter().map(VoiceClient::next_seq).collect();
    tokio::time::sleep(WINDOW).await;
    let end: Vec<u32> = clients.iter().map(VoiceClient::next_seq).collect();
    tokio::time::sleep(SETTLE).await;
    for listener in clients {
        for (p, publisher) in clients.iter().enumerate() {
            if publisher.index == listener.index || silent.contains(&publisher.index) {
                continue;
            }
            let sent = (end[p] - start[p]) as usize;
            let heard = listener.received.count(publisher.index, start[p]..end[p]);
            ensure!(
                sent >= 80 && heard * 10 >= sent * 9,
                "participant {} heard {heard} of {sent} packets from participant {}",
                listener.index,
                publisher.index
            );
        }
    }
    Ok(())
}

/// Nobody heard themselves, and every packet came on its publisher's track (stream id = the
/// publisher's user id).
fn no_echo_and_right_streams(clients: &[VoiceClient]) -> Result<()> {
    for client in clients {
        ensure!(
            client.received.own() == 0,
            "participant {} heard itself",
            client.index
        );
        ensure!(
            client.received.misattributed() == 0,
            "participant {} got packets on a track whose stream id is not their publisher's",
            client.index
        );
    }
    Ok(())
}

/// Waits until `client` has been told that each of `users` is in voice, unmuted.
async fn told_in_voice(client: &mut VoiceClient, users: &[String]) -> Result<()> {
    let mut missing: BTreeSet<String> = users.iter().cloned().collect();
    client
        .until("everyone's voice state", |m| {
            if let ServerMessage::VoiceState { user_id, voice } = m
                && *voice == UNMUTED
            {
                missing.remove(user_id);
            }
            missing.is_empty().then_some(())
        })
        .await
}

/// The next agent offer, and whether it carries `user_id`'s voice.
async fn next_offer_carries(client: &mut VoiceClient, user_id: &str) -> Result<bool> {
    let sdp = client
        .until("an agent offer", |m| match m {
            ServerMessage::VoiceOffer { sdp } => Some(sdp.clone()),
            _ => None,
        })
        .await?;
    Ok(sdp.contains(&format!("a=msid:{user_id} ")))
}

async fn voice_error(client: &mut VoiceClient) -> Result<String> {
    client
        .until("a voice error", |m| match m {
            ServerMessage::Error { code, message } => Some((*code, message.clone())),
            _ => None,
        })
        .await
        .and_then(|(code, message)| {
            ensure!(code == ErrorCode::VoiceFailed, "{code:?}: {message}");
            Ok(message)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_people_talk_one_mutes_two_leave_and_an_eleventh_is_refused() -> Result<()> {
    support::logs();
    let _turn = ONE_AT_A_TIME.lock().await;
    let agent = start_agent(VoiceConfig::default()).await?;
    let mut clients = Vec::new();
    for index in 0..10u8 {
        // The last one only views the session: talking is not editing.
        let role = if index == 9 {
            Role::Viewer
        } else {
            Role::Editor
        };
        clients.push(VoiceClient::connect(&agent, index, role).await?);
    }
    for client in &clients {
        client.join_voice();
    }
    everyone_hears_everyone(&clients, Duration::from_secs(30)).await?;
    let everyone: Vec<String> = (0..10).map(user_id).collect();
    for client in &mut clients {
        told_in_voice(client, &everyone).await?;
        let mut streams = client.received.streams();
        streams.sort();
        let others: Vec<String> = everyone
            .iter()
            .filter(|u| **u != client.user_id)
            .cloned()
            .collect();
        ensure!(
            streams == others,
            "participant {}'s tracks are {streams:?}",
            client.index
        );
    }
    everyone_hears_most_of_everyone(&clients, &[]).await?;

    // A late tab sees who is in voice in its welcome; an eleventh person is refused.
    let tab = VoiceClient::connect(&agent, 0, Role::Editor).await?;
    let ServerMessage::Welcome { participants, .. } = &tab.welcome else {
        bail!("not a welcome: {:?}", tab.welcome);
    };
    ensure!(participants.len() == 10 && participants.iter().all(|p| p.voice == UNMUTED));
    drop(tab);
    match VoiceClient::connect(&agent, 10, Role::Editor).await {
        Ok(_) => bail!("an eleventh person got in"),
        Err(error) => ensure!(
            format!("{error:#}").contains("at most 10 people"),
            "{error:#}"
        ),
    }

    // Muting is done by the agent: once the mute is acknowledged, nothing participant 3 sends
    // reaches anyone, and everyone is told.
    clients[3].send(ClientMessage::VoiceMute { muted: true });
    clients[3].voice_state(&user_id(3), MUTED).await?;
    let last_before_ack = clients[3].next_seq();
    for client in clients.iter_mut().filter(|c| c.index != 3) {
        client.voice_state(&user_id(3), MUTED).await?;
    }
    everyone_hears_most_of_everyone(&clients, &[3]).await?;
    for client in &clients {
        let latest = client.received.max_seq(3).unwrap_or(0);
        ensure!(
            client.index == 3 || latest <= last_before_ack,
            "participant {} heard packet {latest} of muted participant 3 (muted at {last_before_ack})",
            client.index
        );
    }
    clients[3].send(ClientMessage::VoiceMute { muted: false });
    clients[3].voice_state(&user_id(3), UNMUTED).await?;
    everyone_hears_most_of_everyone(&clients, &[]).await?;

    // Leaving voice (the viewer), then closing the WebSocket (participant 8): the leaver's
    // track is gone from everyone's next offer, their voice stops, and everyone is told.
    clients[9].send(ClientMessage::VoiceLeave);
    for client in clients.iter_mut().take(9) {
        client.voice_state(&user_id(9), None).await?;
        ensure!(
            !next_offer_carries(client, &user_id(9)).await?,
            "participant {} was offered the voice of 9 after it left",
            client.index
        );
    }
    clients[8].close();
    for client in clients.iter_mut().take(8) {
        client.voice_state(&user_id(8), None).await?;
        ensure!(
            !next_offer_carries(client, &user_id(8)).await?,
            "participant {} was offered the voice of 8 after it left",
            client.index
        );
    }
    let heard_before: Vec<(Option<u32>, Option<u32>)> = clients
        .iter()
        .map(|c| (c.received.max_seq(8), c.received.max_seq(9)))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (client, before) in clients.iter().zip(&heard_before).take(8) {
        ensure!(
            (client.received.max_seq(8), client.received.max_seq(9)) == *before,
            "participant {} still hears 8 or 9 after they left",
            client.index
        );
    }
    let out_of_voice = clients[9].received.max_seq(0);
    everyone_hears_most_of_everyone(&clients[..8], &[]).await?;
    ensure!(
        clients[9].received.max_seq(0) == out_of_voice,
        "the viewer still hears people after leaving voice"
    );
    no_echo_and_right_streams(&clients)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sdp_gets_voice_failed_and_a_retry_works() -> Result<()> {
    support::logs();
    let _turn = ONE_AT_A_TIME.lock().await;
    let agent = start_agent(VoiceConfig::default()).await?;
    let mut a = VoiceClient::connect(&agent, 0, Role::Editor).await?;
    let mut b = VoiceClient::connect(&agent, 1, Role::Editor).await?;
    b.join_voice();
    b.voice_state(&user_id(1), UNMUTED).await?;

    a.send(ClientMessage::VoiceOffer { sdp: "v=0".into() });
    let message = voice_error(&mut a).await?;
    ensure!(message.contains("voice_join"), "{message}");

    // Not SDP at all; then SDP that parses but cannot be applied (no ICE, no DTLS).
    for sdp in [
        "this is not SDP",
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\na=sendrecv\r\n",
    ] {
        a.send(ClientMessage::VoiceJoin);
        a.send(ClientMessage::VoiceOffer { sdp: sdp.into() });
        let message = voice_error(&mut a).await?;
        ensure!(message.contains("offer"), "{message}");
    }
    // Nothing else changed: nobody heard of participant 0 in voice.
    tokio::time::sleep(SETTLE).await;
    let heard_of_a = b.drain(|m| match m {
        ServerMessage::VoiceState { user_id, .. } if *user_id == a.user_id => Some(()),
        _ => None,
    });
    ensure!(heard_of_a.is_empty(), "a failed join was announced");

    a.join_voice();
    a.voice_state(&user_id(0), UNMUTED).await?;
    let both = [a, b];
    everyone_hears_everyone(&both, Duration::from_secs(15)).await?;
    everyone_hears_most_of_everyone(&both, &[]).await?;
    no_echo_and_right_streams(&both)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colliding_offers_are_settled_by_the_client_rolling_back() -> Result<()> {
    support::logs();
    let _turn = ONE_AT_A_TIME.lock().await;
    let agent = start_agent(VoiceConfig::default()).await?;
    let mut clients = Vec::new();
    for index in 0..3u8 {
        clients.push(VoiceClient::connect(&agent, index, Role::Editor).await?);
    }
    clients[0].join_voice();
    clients[1].join_voice();
    everyone_hears_everyone(&clients[..2], Duration::from_secs(15)).await?;

    // Participant 2 joins: the agent offers its voice to 0, whose own offer crosses it (0 only
    // sees the agent's once its own is sent).
    clients[0].drain(|_| None::<()>);
    clients[0].hold_offers(true);
    clients[2].join_voice();
    ensure!(next_offer_carries(&mut clients[0], &user_id(2)).await?);
    clients[0].offer();
    // The agent keeps its offer and ignores the colliding one: no answer comes.
    tokio::time::sleep(SETTLE).await;
    let answers =
        clients[0].drain(|m| matches!(m, ServerMessage::VoiceAnswer { .. }).then_some(()));
    ensure!(answers.is_empty(), "the agent answered a colliding offer");
    // 0 gets the agent's offer: it rolls back its own, answers, and offers again, which the
    // agent now answers.
    clients[0].hold_offers(false);
    clients[0]
        .until("the agent's answer", |m| {
            matches!(m, ServerMessage::VoiceAnswer { .. }).then_some(())
        })
        .await?;
    everyone_hears_everyone(&clients, Duration::from_secs(15)).await?;
    everyone_hears_most_of_everyone(&clients, &[]).await?;
    no_echo_and_right_streams(&clients)?;
    Ok(())
}

#[tokio::test]
async fn browsers_get_their_ice_servers_from_voice_config() -> Result<()> {
    let turn = IceServer {
        urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
        username: Some("user".into()),
        credential: Some("secret".into()),
    };
    let agent = start_agent(VoiceConfig {
        ice_servers: vec![turn],
        ..VoiceConfig::default()
    })
    .await?;
    let url = format!("http://{}/voice/config", agent.addr);
    let refused = reqwest::get(&url).await?;
    ensure!(refused.status() == reqwest::StatusCode::UNAUTHORIZED);
    let config: serde_json::Value = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token(0, Role::Viewer))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    ensure!(
        config
            == serde_json::json!({"iceServers": [{
                "urls": ["turn:127.0.0.1:3478?transport=udp"],
                "username": "user",
                "credential": "secret",
            }]}),
        "{config}"
    );
    Ok(())
}
