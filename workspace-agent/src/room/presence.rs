//! Who is in the room: participants (people, by user id) and their connections (tabs), colours
//! chosen by the server, and the heartbeat clock that evicts silent connections.

use huddle_protocol::Role;
use huddle_protocol::messages::{MAX_PARTICIPANTS, Participant, VoiceState, ZOMBIE_AFTER_SECS};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Ten colours far apart in hue and readable on a dark and a light editor background; one per
/// participant, so ten people never share one.
pub const PALETTE: [&str; MAX_PARTICIPANTS] = [
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46a0a0", "#f032e6", "#9a6324",
    "#808000", "#000075",
];

/// Identifies one WebSocket connection for the life of the agent.
pub type ConnId = u64;

/// One open connection.
#[derive(Debug, Clone)]
pub struct Connection {
    pub user_id: String,
    pub client_id: String,
    pub last_seen: Instant,
}

/// Participants and connections.
#[derive(Debug, Default)]
pub struct Presence {
    participants: BTreeMap<String, Participant>,
    connections: HashMap<ConnId, Connection>,
    /// Colour kept per user for the life of the agent, so a reconnect keeps its colour.
    colours: HashMap<String, &'static str>,
}

/// What joining did.
#[derive(Debug, PartialEq, Eq)]
pub enum Joined {
    /// A person who was not in the room yet: everyone else hears of them.
    NewParticipant(Participant),
    /// Another tab of someone already here.
    AnotherTab(Participant),
}

impl Presence {
    /// Adds a connection for `user_id`, refusing an eleventh person.
    pub fn join(
        &mut self,
        conn: ConnId,
        user_id: &str,
        client_id: &str,
        name: &str,
        role: Role,
        now: Instant,
    ) -> Result<Joined, String> {
        let existing = self.participants.get(user_id).cloned();
        if existing.is_none() && self.participants.len() >= MAX_PARTICIPANTS {
            return Err(format!(
                "this session is full: at most {MAX_PARTICIPANTS} people can be in it at once"
            ));
        }
        self.connections.insert(
            conn,
            Connection {
                user_id: user_id.to_owned(),
                client_id: client_id.to_owned(),
                last_seen: now,
            },
        );
        if let Some(participant) = existing {
            return Ok(Joined::AnotherTab(participant));
        }
        let colour = self.colour_for(user_id);
        let participant = Participant {
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            role,
            color: colour.to_owned(),
            voice: None,
        };
        self.participants
            .insert(user_id.to_owned(), participant.clone());
        Ok(Joined::NewParticipant(participant))
    }

    fn colour_for(&mut self, user_id: &str) -> &'static str {
        if let Some(colour) = self.colours.get(user_id)
            && !self.participants.values().any(|p| p.color == *colour)
        {
            return colour;
        }
        let colour = PALETTE
            .iter()
            .find(|c| !self.participants.values().any(|p| p.color == **c))
            .copied()
            .unwrap_or(PALETTE[0]);
        self.colours.insert(user_id.to_owned(), colour);
        colour
    }

    /// Removes a connection; returns the user id when that was their last tab.
    pub fn leave(&mut self, conn: ConnId) -> Option<String> {
        let connection = self.connections.remove(&conn)?;
        let still_here = self
            .connections
            .values()
            .any(|c| c.user_id == connection.user_id);
        if still_here {
            return None;
        }
        self.participants.remove(&connection.user_id);
        Some(connection.user_id)
    }

    /// Records whether `user_id` is in voice and muted; false if they are not here.
    pub fn set_voice(&mut self, user_id: &str, voice: Option<VoiceState>) -> bool {
        match self.participants.get_mut(user_id) {
            Some(participant) => {
                participant.voice = voice;
                true
            }
            None => false,
        }
    }

    /// Notes that a connection is alive.
    pub fn seen(&mut self, conn: ConnId, now: Instant) {
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.last_seen = now;
        }
    }

    /// Connections silent for longer than the zombie limit.
    pub fn zombies(&self, now: Instant) -> Vec<ConnId> {
        let limit = Duration::from_secs(ZOMBIE_AFTER_SECS);
        self.connections
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.last_seen) > limit)
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn connection(&self, conn: ConnId) -> Option<&Connection> {
        self.connections.get(&conn)
    }

    pub fn participant(&self, user_id: &str) -> Option<&Participant> {
        self.participants.get(user_id)
    }

    /// Everyone here, in a stable order.
    pub fn participants(&self) -> Vec<Participant> {
        self.participants.values().cloned().collect()
    }

    pub fn connection_ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.connections.keys().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(presence: &mut Presence, conn: ConnId, user: &str) -> Result<Joined, String> {
        presence.join(
            conn,
            user,
            &format!("c{conn}"),
            user,
            Role::Editor,
            Instant::now(),
        )
    }

    #[test]
    fn ten_people_get_ten_colours_and_the_eleventh_is_refused() {
        let mut presence = Presence::default();
        for i in 0..10 {
            join(&mut presence, i, &format!("u{i}")).unwrap();
        }
        let colours: std::collections::HashSet<String> = presence
            .participants()
            .into_iter()
            .map(|p| p.color)
            .collect();
        assert_eq!(colours.len(), 10);
        let refused = join(&mut presence, 10, "u10").unwrap_err();
        assert!(refused.contains("full"));
        // Someone already here may still open another tab.
        assert!(matches!(
            join(&mut presence, 11, "u3"),
            Ok(Joined::AnotherTab(_))
        ));
    }

    #[test]
    fn leaving_frees_the_place_when_the_last_tab_closes() {
        let mut presence = Presence::default();
        join(&mut presence, 1, "ada").unwrap();
        join(&mut presence, 2, "ada").unwrap();
        assert_eq!(presence.leave(1), None);
        assert_eq!(presence.leave(2), Some("ada".into()));
        assert!(presence.participants().is_empty());
    }

    #[test]
    fn silent_connections_become_zombies() {
        let mut presence = Presence::default();
        let start = Instant::now();
        presence
            .join(1, "a", "c1", "a", Role::Viewer, start)
            .unwrap();
        presence
            .join(2, "b", "c2", "b", Role::Viewer, start)
            .unwrap();
        let later = start + Duration::from_secs(ZOMBIE_AFTER_SECS - 1);
        presence.seen(2, later);
        let much_later = start + Duration::from_secs(ZOMBIE_AFTER_SECS + 1);
        assert_eq!(presence.zombies(much_later), vec![1]);
    }

    #[test]
    fn voice_state_is_kept_with_the_participant() {
        let mut presence = Presence::default();
        join(&mut presence, 1, "ada").unwrap();
        assert!(presence.set_voice("ada", Some(VoiceState { muted: true })));
        assert_eq!(
            presence.participants()[0].voice,
            Some(VoiceState { muted: true })
        );
        assert!(presence.set_voice("ada", None));
        assert_eq!(presence.participants()[0].voice, None);
        assert!(!presence.set_voice("bob", None));
    }

    #[test]
    fn a_returning_user_keeps_their_colour() {
        let mut presence = Presence::default();
        join(&mut presence, 1, "ada").unwrap();
        join(&mut presence, 2, "bob").unwrap();
        let colour = presence.participant("bob").unwrap().color.clone();
        presence.leave(2);
        join(&mut presence, 3, "bob").unwrap();
        assert_eq!(presence.participant("bob").unwrap().color, colour);
    }
}
