//! This node's own address, learned from what its peers see.
//!
//! Each side of a link tells the other the address the connection comes
//! from (`LinkMessage::Observed`). A node not told `--advertise` takes the
//! IP that peers agree on and advertises it with its listening port. One
//! peer's word is not enough: a liar could make the node hand out a third
//! party's address (and have others dial it). So a vote counts once per
//! peer network (an IPv4 /24 or IPv6 /64; peers on this machine count one
//! each, as loopback has no networks to tell apart), and an address is
//! taken only when at least [`MIN_AGREEING`] of them report it and they
//! are a strict majority of those who reported anything.

use std::collections::HashMap;
use std::net::IpAddr;

use warren_crypto::NodePublicKey;

/// Distinct peer networks that must report the same address.
pub(super) const MIN_AGREEING: usize = 2;

/// Who a vote is from: a peer network, or one local peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Voter {
    Network([u8; 8]),
    Local(NodePublicKey),
}

fn voter(peer: NodePublicKey, peer_ip: IpAddr) -> Voter {
    match peer_ip {
        ip if ip.is_loopback() => Voter::Local(peer),
        IpAddr::V4(v4) => {
            let o = v4.octets();
            Voter::Network([4, o[0], o[1], o[2], 0, 0, 0, 0])
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            Voter::Network([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
        }
    }
}

/// Whether `reported` can be this node's address, as told by a peer at
/// `peer_ip`: never unspecified or multicast, and loopback only from a
/// peer on this machine.
fn plausible(reported: IpAddr, peer_ip: IpAddr) -> bool {
    !reported.is_unspecified()
        && !reported.is_multicast()
        && (!reported.is_loopback() || peer_ip.is_loopback())
        && reported != IpAddr::V4(std::net::Ipv4Addr::BROADCAST)
}

/// The address the peers agree on, from each link's (peer, the peer's IP,
/// what the peer reported). `None` while there is no such agreement.
pub(super) fn consensus(
    reports: impl IntoIterator<Item = (NodePublicKey, IpAddr, IpAddr)>,
) -> Option<IpAddr> {
    // One vote per voter; a voter whose links say different things is out.
    let mut votes: HashMap<Voter, Option<IpAddr>> = HashMap::new();
    for (peer, peer_ip, reported) in reports {
        if !plausible(reported, peer_ip) {
            continue;
        }
        votes
            .entry(voter(peer, peer_ip))
            .and_modify(|vote| {
                if *vote != Some(reported) {
                    *vote = None;
                }
            })
            .or_insert(Some(reported));
    }
    let voters = votes.len();
    let mut tally: HashMap<IpAddr, usize> = HashMap::new();
    for ip in votes.into_values().flatten() {
        *tally.entry(ip).or_default() += 1;
    }
    let (ip, count) = tally.into_iter().max_by_key(|&(ip, count)| (count, ip))?;
    (count >= MIN_AGREEING && 2 * count > voters).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> NodePublicKey {
        NodePublicKey([n; 32])
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn two_networks_agreeing_are_believed_one_is_not() {
        let public = ip("198.51.100.7");
        assert_eq!(consensus([(peer(1), ip("203.0.113.1"), public)]), None);
        let two = [
            (peer(1), ip("203.0.113.1"), public),
            (peer(2), ip("192.0.2.9"), public),
        ];
        assert_eq!(consensus(two), Some(public));
    }

    #[test]
    fn many_identities_from_one_network_are_one_vote() {
        let lie = ip("192.0.2.200");
        let sybils = (0..50).map(|n| (peer(n), ip(&format!("203.0.113.{n}")), lie));
        assert_eq!(consensus(sybils.clone()), None);
        // Two honest networks outvote fifty identities on one /24.
        let public = ip("198.51.100.7");
        let honest = [
            (peer(100), ip("192.0.2.1"), public),
            (peer(101), ip("198.18.0.1"), public),
        ];
        let all: Vec<_> = sybils.chain(honest).collect();
        assert_eq!(consensus(all), Some(public));
    }

    #[test]
    fn no_majority_no_address() {
        let a = ip("198.51.100.7");
        let b = ip("198.51.100.8");
        let reports = [
            (peer(1), ip("203.0.113.1"), a),
            (peer(2), ip("192.0.2.1"), a),
            (peer(3), ip("198.18.0.1"), b),
            (peer(4), ip("198.19.0.1"), b),
        ];
        assert_eq!(consensus(reports), None);
    }

    #[test]
    fn implausible_reports_are_ignored() {
        let remote = ip("203.0.113.1");
        let other = ip("192.0.2.1");
        for bad in ["0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255", "::"] {
            let reports = [(peer(1), remote, ip(bad)), (peer(2), other, ip(bad))];
            assert_eq!(consensus(reports), None, "{bad}");
        }
        // Loopback is plausible from peers on this machine, one vote each.
        let local = ip("127.0.0.5");
        let reports = [
            (peer(1), ip("127.0.0.1"), local),
            (peer(2), ip("127.0.0.1"), local),
        ];
        assert_eq!(consensus(reports), Some(local));
    }

    #[test]
    fn a_network_contradicting_itself_loses_its_vote() {
        let a = ip("198.51.100.7");
        let reports = [
            (peer(1), ip("203.0.113.1"), a),
            (peer(2), ip("203.0.113.2"), ip("198.51.100.99")),
            (peer(3), ip("192.0.2.1"), a),
        ];
        // 203.0.113.0/24 said two things: only 192.0.2.0/24 is left for a.
        assert_eq!(consensus(reports), None);
        let ipv6 = [
            (peer(1), ip("2001:db8:1::1"), ip("2001:db8:9::7")),
            (peer(2), ip("2001:db8:1::2"), ip("2001:db8:9::7")),
            (peer(3), ip("2001:db8:2::1"), ip("2001:db8:9::7")),
        ];
        assert_eq!(consensus(ipv6), Some(ip("2001:db8:9::7")));
    }
}
