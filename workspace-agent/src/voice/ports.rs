//! Which UDP port each peer connection binds: any free one, or one of
//! `HUDDLE_VOICE_UDP_PORTS` not already used by another participant (a firewall or a
//! `hostPort` mapping can then open exactly that range).

use std::collections::HashSet;
use std::ops::RangeInclusive;

/// Ports handed out to live connections.
#[derive(Debug)]
pub struct Ports {
    range: Option<RangeInclusive<u16>>,
    in_use: HashSet<u16>,
    /// Where the next search starts, so a port just released is tried last.
    cursor: u16,
}

impl Ports {
    pub fn new(range: Option<RangeInclusive<u16>>) -> Self {
        let cursor = range.as_ref().map_or(0, |r| *r.start());
        Self {
            range,
            in_use: HashSet::new(),
            cursor,
        }
    }

    /// The ports to try for a new connection, in order; `0` means "any free port".
    pub fn candidates(&self) -> Vec<u16> {
        let Some(range) = &self.range else {
            return vec![0];
        };
        let after = (self.cursor..=*range.end()).chain(*range.start()..self.cursor);
        after
            .filter(|port| range.contains(port) && !self.in_use.contains(port))
            .collect()
    }

    pub fn take(&mut self, port: u16) {
        if port == 0 {
            return;
        }
        self.in_use.insert(port);
        if let Some(range) = &self.range {
            self.cursor = if port >= *range.end() {
                *range.start()
            } else {
                port + 1
            };
        }
    }

    pub fn release(&mut self, port: u16) {
        self.in_use.remove(&port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_range_any_port_will_do() {
        assert_eq!(Ports::new(None).candidates(), vec![0]);
    }

    #[test]
    fn hands_out_each_port_of_the_range_once_and_round_robin() {
        let mut ports = Ports::new(Some(5000..=5002));
        assert_eq!(ports.candidates(), vec![5000, 5001, 5002]);
        ports.take(5000);
        assert_eq!(ports.candidates(), vec![5001, 5002]);
        ports.take(5001);
        ports.take(5002);
        assert!(ports.candidates().is_empty());
        ports.release(5000);
        ports.release(5001);
        // The search continues after the last port handed out.
        assert_eq!(ports.candidates(), vec![5000, 5001]);
        ports.take(5000);
        assert_eq!(ports.candidates(), vec![5001]);
    }
}
