//! The agent's ICE candidates as browsers get them: each local host candidate, plus a copy for
//! every configured public address (`HUDDLE_VOICE_PUBLIC_IPS`).
//!
//! webrtc 0.21.1 accepts `SettingEngine::with_nat_1to1_ips` but never applies it (nor
//! `with_include_loopback_candidate`), so the copies are made here, on the way out. A browser
//! sending to `public:port` reaches the socket bound on `private:port` through the 1:1 NAT,
//! and the agent answers from that socket, which is all ICE needs.

use std::net::IpAddr;

/// `candidate` (an `a=candidate` value, with or without the `candidate:` prefix) followed by
/// one copy per public address of the same family, when it is a host candidate on a
/// non-loopback address. Anything that does not parse is passed through unchanged.
pub fn with_public_ips(candidate: &str, public_ips: &[IpAddr]) -> Vec<String> {
    let mut all = vec![candidate.to_owned()];
    let fields: Vec<&str> = candidate.split_whitespace().collect();
    // foundation component transport priority address port "typ" type ...
    if fields.len() < 8 || fields[6] != "typ" || fields[7] != "host" {
        return all;
    }
    let Ok(local) = fields[4].parse::<IpAddr>() else {
        return all;
    };
    if local.is_loopback() {
        return all;
    }
    for (index, public) in public_ips.iter().enumerate() {
        if public.is_ipv4() != local.is_ipv4() || *public == local {
            continue;
        }
        let mut copy: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        // A different address is a different foundation (RFC 8445 §5.1.1.3).
        copy[0] = format!("{}{}", fields[0], index + 1);
        copy[4] = public.to_string();
        all.push(copy.join(" "));
    }
    all
}

/// The `mid` of the first media section of `sdp`: candidates of a bundled connection are
/// tagged with it, since browsers refuse a candidate whose `sdpMid` names no section.
pub fn first_mid(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|line| line.trim_end().strip_prefix("a=mid:"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "candidate:1234 1 udp 2130706431 10.0.0.5 50000 typ host";

    #[test]
    fn adds_one_copy_per_public_address_of_the_same_family() {
        let ips: Vec<IpAddr> = vec![
            "203.0.113.7".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ];
        let all = with_public_ips(HOST, &ips);
        assert_eq!(
            all,
            vec![
                HOST.to_owned(),
                "candidate:12341 1 udp 2130706431 203.0.113.7 50000 typ host".to_owned()
            ]
        );
    }

    #[test]
    fn leaves_loopback_other_types_and_garbage_alone() {
        let ips: Vec<IpAddr> = vec!["203.0.113.7".parse().unwrap()];
        for candidate in [
            "candidate:1 1 udp 1 127.0.0.1 5000 typ host",
            "candidate:1 1 udp 1 10.0.0.5 5000 typ srflx raddr 0.0.0.0 rport 0",
            "candidate:1 1 udp 1 x.local 5000 typ host",
            "nonsense",
            "",
        ] {
            assert_eq!(with_public_ips(candidate, &ips), vec![candidate.to_owned()]);
        }
    }

    #[test]
    fn finds_the_first_mid() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\nm=audio 9 x\r\na=mid:1\r\n";
        assert_eq!(first_mid(sdp).as_deref(), Some("0"));
        assert_eq!(first_mid("v=0\r\n"), None);
    }
}
