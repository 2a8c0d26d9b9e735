//! Hand-built Ethernet frames for verdict tests and packet injection.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86DD;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88A8;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

/// Ethernet header (broadcast destination unless given), VLAN tags outermost first (each
/// `(tpid, vlan id)`), then `payload` of type `ethertype`.
#[must_use]
pub fn ethernet(
    dst: [u8; 6],
    src: [u8; 6],
    vlans: &[(u16, u16)],
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 4 * vlans.len() + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for (tpid, vid) in vlans {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A frame with default MACs: `ethernet` for the common case.
#[must_use]
pub fn eth(vlans: &[(u16, u16)], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    ethernet([0xff; 6], [2, 0, 0, 0, 0, 1], vlans, ethertype, payload)
}

/// The Internet checksum of `bytes`.
#[must_use]
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).expect("folded")
}

/// An IPv4 packet with a correct header checksum. `fragment` is the 13-bit fragment offset
/// (in 8-byte units) with the MF flag in bit 13.
#[must_use]
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, fragment: u16, l4: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + l4.len()).expect("small packet");
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&fragment.to_be_bytes());
    h.extend_from_slice(&[64, protocol, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let sum = checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h.extend_from_slice(l4);
    h
}

/// An IPv6 packet; `ext` holds extension headers already chained to `next`.
#[must_use]
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, ext: &[u8], l4: &[u8]) -> Vec<u8> {
    let len = u16::try_from(ext.len() + l4.len()).expect("small packet");
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(ext);
    h.extend_from_slice(l4);
    h
}

/// A UDP header and payload (checksum 0: optional over IPv4, and XDP does not check it).
#[must_use]
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(8 + payload.len()).expect("small datagram");
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// A TCP SYN header.
#[must_use]
pub fn tcp_syn(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

/// An 8-byte IPv6 extension header (hop-by-hop, destination options) chained to `next`.
#[must_use]
pub fn ipv6_options(next: u8) -> Vec<u8> {
    vec![next, 0, 1, 4, 0, 0, 0, 0]
}

/// An IPv6 fragment header chained to `next` at `offset` (8-byte units).
#[must_use]
pub fn ipv6_fragment(next: u8, offset: u16, more: bool) -> Vec<u8> {
    let field = (offset << 3) | u16::from(more);
    let mut h = vec![next, 0];
    h.extend_from_slice(&field.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 7]);
    h
}

/// An IPv4 UDP frame from `src` to `dst:dport`, untagged.
#[must_use]
pub fn udp4(src: Ipv4Addr, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    eth(
        &[],
        ETH_P_IP,
        &ipv4(src, dst, UDP, 0, &udp(40000, dport, b"banxdp")),
    )
}

/// An IPv6 UDP frame from `src` to `dst:dport`, untagged.
#[must_use]
pub fn udp6(src: Ipv6Addr, dst: Ipv6Addr, dport: u16) -> Vec<u8> {
    eth(
        &[],
        ETH_P_IPV6,
        &ipv6(src, dst, UDP, &[], &udp(40000, dport, b"banxdp")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_verifies() {
        let p = ipv4(
            Ipv4Addr::new(198, 51, 100, 9),
            Ipv4Addr::new(198, 51, 100, 1),
            UDP,
            0,
            &udp(1, 2, b"x"),
        );
        assert_eq!(checksum(&p[..20]), 0);
    }

    #[test]
    fn vlan_tags_sit_between_macs_and_type() {
        let f = eth(&[(ETH_P_8021AD, 10), (ETH_P_8021Q, 20)], ETH_P_IP, &[1]);
        assert_eq!(&f[12..14], &[0x88, 0xa8]);
        assert_eq!(&f[16..18], &[0x81, 0x00]);
        assert_eq!(&f[20..22], &[0x08, 0x00]);
    }
}
