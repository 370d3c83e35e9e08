//! Who gets a link: slots by how a peer was met, limits per source address
//! and subnet, and a dial limiter for noderefs that came from the network.
//! Plain data and functions, so every rule is tested without sockets.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::time::Instant;

/// Share of the link slots strangers dialling in may hold at most; the rest
/// stay free for friends and for peers this node chose itself.
pub const DEFAULT_INBOUND_SHARE: f64 = 0.5;
/// Opennet links to one IP address at most (friends are not counted).
pub const DEFAULT_MAX_PER_IP: usize = 2;
/// Opennet links to one /24 (IPv4) or /64 (IPv6) at most.
pub const DEFAULT_MAX_PER_SUBNET: usize = 4;
/// One opennet dial to one address per this interval at most, whoever asks:
/// a node cannot be made to dial a third party over and over.
pub const OPENNET_REDIAL_INTERVAL: Duration = Duration::from_secs(60);
/// Opennet dials in flight at once.
pub const MAX_OPENNET_DIALS: usize = 8;
/// Addresses the dial limiter remembers; the oldest are forgotten first.
pub const MAX_DIAL_MEMORY: usize = 1024;

/// How a link came about, as far as admission is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A configured peer (either direction).
    Friend,
    /// A peer this node dialled (seed, announced, folded, remembered).
    Chosen,
    /// A stranger that dialled in.
    Stranger,
}

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("every link slot is taken")]
    Full,
    #[error("the slots for strangers dialling in are taken")]
    StrangersFull,
    #[error("too many links to this IP address")]
    PerIp,
    #[error("too many links to this subnet")]
    PerSubnet,
}

/// Admission limits.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionConfig {
    pub max_links: usize,
    pub inbound_share: f64,
    pub max_per_ip: usize,
    pub max_per_subnet: usize,
    /// Loopback peers are exempt from the per-IP and subnet limits (a test bed
    /// on one machine); the stranger share still applies to them.
    pub exempt_loopback: bool,
}

impl AdmissionConfig {
    pub fn new(max_links: usize) -> Self {
        AdmissionConfig {
            max_links,
            inbound_share: DEFAULT_INBOUND_SHARE,
            max_per_ip: DEFAULT_MAX_PER_IP,
            max_per_subnet: DEFAULT_MAX_PER_SUBNET,
            exempt_loopback: true,
        }
    }

    fn max_strangers(&self) -> usize {
        ((self.max_links as f64 * self.inbound_share) as usize).max(1)
    }
}

/// The /24 or /64 an address belongs to.
pub fn subnet(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::from(o)
        }
    }
}

/// The live links, as admission counts them.
#[derive(Debug, Default)]
pub struct LinkCounts {
    total: usize,
    strangers: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_subnet: HashMap<IpAddr, usize>,
}

impl LinkCounts {
    /// Whether one more link from `ip` with `origin` is allowed.
    pub fn check(&self, cfg: &AdmissionConfig, ip: IpAddr, origin: Origin) -> Result<(), Refusal> {
        if self.total >= cfg.max_links {
            return Err(Refusal::Full);
        }
        if origin == Origin::Friend {
            return Ok(());
        }
        if origin == Origin::Stranger && self.strangers >= cfg.max_strangers() {
            return Err(Refusal::StrangersFull);
        }
        if cfg.exempt_loopback && ip.is_loopback() {
            return Ok(());
        }
        if self.per_ip.get(&ip).copied().unwrap_or(0) >= cfg.max_per_ip {
            return Err(Refusal::PerIp);
        }
        if self.per_subnet.get(&subnet(ip)).copied().unwrap_or(0) >= cfg.max_per_subnet {
            return Err(Refusal::PerSubnet);
        }
        Ok(())
    }

    /// Counts a link that was admitted.
    pub fn add(&mut self, ip: IpAddr, origin: Origin) {
        self.total += 1;
        if origin == Origin::Friend {
            return;
        }
        self.strangers += usize::from(origin == Origin::Stranger);
        *self.per_ip.entry(ip).or_insert(0) += 1;
        *self.per_subnet.entry(subnet(ip)).or_insert(0) += 1;
    }

    /// Uncounts a link that closed.
    pub fn remove(&mut self, ip: IpAddr, origin: Origin) {
        self.total = self.total.saturating_sub(1);
        if origin == Origin::Friend {
            return;
        }
        if origin == Origin::Stranger {
            self.strangers = self.strangers.saturating_sub(1);
        }
        for (map, key) in [(&mut self.per_ip, ip), (&mut self.per_subnet, subnet(ip))] {
            if let Some(n) = map.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn strangers(&self) -> usize {
        self.strangers
    }
}

/// Rate limit on dials to noderefs learnt from the network.
#[derive(Debug, Default)]
pub struct DialLimiter {
    last: HashMap<SocketAddr, Instant>,
    order: VecDeque<SocketAddr>,
    pub refused: u64,
}

impl DialLimiter {
    /// Whether `addr` may be dialled now; records the dial if so.
    pub fn allow(&mut self, addr: SocketAddr, now: Instant, in_flight: usize) -> bool {
        let recent = self
            .last
            .get(&addr)
            .is_some_and(|&t| now.saturating_duration_since(t) < OPENNET_REDIAL_INTERVAL);
        if recent || in_flight >= MAX_OPENNET_DIALS {
            self.refused += 1;
            return false;
        }
        while self.last.len() >= MAX_DIAL_MEMORY {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.last.remove(&old);
        }
        if self.last.insert(addr, now).is_none() {
            self.order.push_back(addr);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn strangers_get_a_bounded_share_and_never_block_friends_or_chosen_peers() {
        let cfg = AdmissionConfig {
            exempt_loopback: false,
            ..AdmissionConfig::new(10)
        };
        let mut counts = LinkCounts::default();
        let mut refused = 0;
        for i in 0..100u8 {
            let from = IpAddr::from([10, i, 0, 1]);
            match counts.check(&cfg, from, Origin::Stranger) {
                Ok(()) => counts.add(from, Origin::Stranger),
                Err(e) => {
                    assert_eq!(e, Refusal::StrangersFull);
                    refused += 1;
                }
            }
        }
        assert_eq!(counts.strangers(), 5);
        assert_eq!(refused, 95);
        // The other half is still there for peers this node picks.
        for i in 0..5u8 {
            let to = IpAddr::from([172, 16, i, 1]);
            assert_eq!(counts.check(&cfg, to, Origin::Chosen), Ok(()));
            counts.add(to, Origin::Chosen);
        }
        assert_eq!(
            counts.check(&cfg, ip("192.0.2.1"), Origin::Chosen),
            Err(Refusal::Full)
        );
        // Full is full, for friends too (the routing core's own limit).
        assert_eq!(
            counts.check(&cfg, ip("192.0.2.1"), Origin::Friend),
            Err(Refusal::Full)
        );
        counts.remove(IpAddr::from([10, 0, 0, 1]), Origin::Stranger);
        assert_eq!(counts.check(&cfg, ip("192.0.2.1"), Origin::Friend), Ok(()));
    }

    #[test]
    fn one_address_or_subnet_cannot_fill_the_table() {
        let cfg = AdmissionConfig {
            exempt_loopback: false,
            ..AdmissionConfig::new(256)
        };
        let mut counts = LinkCounts::default();
        // Many identities from one address: two links.
        let one = ip("203.0.113.7");
        let admitted = (0..50)
            .filter(|_| {
                let ok = counts.check(&cfg, one, Origin::Stranger).is_ok();
                if ok {
                    counts.add(one, Origin::Stranger);
                }
                ok
            })
            .count();
        assert_eq!(admitted, DEFAULT_MAX_PER_IP);
        // Many addresses in one /24: four in all.
        let admitted = (1..=50u8)
            .filter(|&i| {
                let from = IpAddr::from([203, 0, 113, i]);
                let ok = counts.check(&cfg, from, Origin::Chosen).is_ok();
                if ok {
                    counts.add(from, Origin::Chosen);
                }
                ok
            })
            .count();
        assert_eq!(admitted, DEFAULT_MAX_PER_SUBNET - DEFAULT_MAX_PER_IP);
        assert_eq!(
            counts.check(&cfg, ip("203.0.113.200"), Origin::Chosen),
            Err(Refusal::PerSubnet)
        );
        // IPv6: a /64 is one subnet.
        let v6 = |counts: &LinkCounts, s: &str| counts.check(&cfg, ip(s), Origin::Chosen);
        assert_eq!(v6(&counts, "2001:db8::1"), Ok(()));
        for i in 1..=4 {
            counts.add(ip(&format!("2001:db8::{i}")), Origin::Chosen);
        }
        assert_eq!(v6(&counts, "2001:db8::ffff"), Err(Refusal::PerSubnet));
        assert_eq!(v6(&counts, "2001:db8:0:1::1"), Ok(()));
        // A friend is never counted against these limits.
        assert_eq!(counts.check(&cfg, one, Origin::Friend), Ok(()));
    }

    #[test]
    fn loopback_is_exempt_from_address_limits_but_not_from_the_stranger_share() {
        let cfg = AdmissionConfig::new(8);
        let mut counts = LinkCounts::default();
        let lo = ip("127.0.0.1");
        for _ in 0..4 {
            assert_eq!(counts.check(&cfg, lo, Origin::Stranger), Ok(()));
            counts.add(lo, Origin::Stranger);
        }
        assert_eq!(
            counts.check(&cfg, lo, Origin::Stranger),
            Err(Refusal::StrangersFull)
        );
        assert_eq!(counts.check(&cfg, lo, Origin::Chosen), Ok(()));
    }

    #[test]
    fn an_address_is_dialled_once_per_interval_and_dials_in_flight_are_capped() {
        let mut limiter = DialLimiter::default();
        let t0 = Instant::now();
        let victim: SocketAddr = "198.51.100.9:80".parse().unwrap();
        assert!(limiter.allow(victim, t0, 0));
        for i in 1..100 {
            assert!(!limiter.allow(victim, t0 + Duration::from_millis(i * 100), 0));
        }
        assert!(limiter.allow(victim, t0 + OPENNET_REDIAL_INTERVAL, 0));
        let other: SocketAddr = "198.51.100.10:80".parse().unwrap();
        assert!(!limiter.allow(other, t0, MAX_OPENNET_DIALS));
        assert_eq!(limiter.refused, 100);
        // Memory stays bounded however many addresses are named.
        for i in 0..(MAX_DIAL_MEMORY as u32 * 2) {
            let addr = SocketAddr::from((i.to_be_bytes(), 1));
            limiter.allow(addr, t0, 0);
        }
        assert!(limiter.last.len() <= MAX_DIAL_MEMORY);
        assert!(limiter.order.len() <= MAX_DIAL_MEMORY);
    }
}
