//! The network's address plan, pure: the VPC's block (`a.b.c.d/p`, p from 16 to 24, host
//! bits zero) is cut into 16 equal subnets (prefix + 4): block *i* is zone *i*'s public
//! subnet, block 8 + *i* its private one.

use std::net::Ipv4Addr;

use crate::steps::StepError;

/// A VPC's IPv4 block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Block {
    network: Ipv4Addr,
    prefix: u8,
}

impl Block {
    /// Parse the `cidr` parameter.
    pub(super) fn parse(text: &str) -> Result<Self, StepError> {
        let invalid = |why: &str| StepError::Params(format!("`cidr` `{text}` {why}"));
        let (address, prefix) = text
            .split_once('/')
            .ok_or_else(|| invalid("needs a `/prefix`"))?;
        let network: Ipv4Addr = address
            .parse()
            .map_err(|_| invalid("is not an IPv4 block"))?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid("has a bad prefix"))?;
        if !(16..=24).contains(&prefix) {
            return Err(invalid("must have a prefix from /16 to /24"));
        }
        let mask = u32::MAX << (32 - prefix);
        if u32::from(network) & !mask != 0 {
            return Err(invalid("has host bits set"));
        }
        Ok(Self { network, prefix })
    }

    /// The `index`-th of the 16 equal blocks the VPC is cut into.
    pub(super) fn subnet(self, index: u32) -> String {
        let prefix = self.prefix + 4;
        let size = 1u32 << (32 - prefix);
        let start = u32::from(self.network) + index * size;
        format!("{}/{prefix}", Ipv4Addr::from(start))
    }

    /// Zone `zone`'s public subnet.
    pub(super) fn public(self, zone: usize) -> String {
        self.subnet(zone as u32)
    }

    /// Zone `zone`'s private subnet.
    pub(super) fn private(self, zone: usize) -> String {
        self.subnet(8 + zone as u32)
    }
}

/// A zone's letter (`ap-southeast-1a` → `a`), for resource names.
pub(super) fn zone_letter(zone: &str) -> String {
    zone.chars().last().map(String::from).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_the_vpc_into_sixteen_blocks() {
        let block = Block::parse("10.42.0.0/16").unwrap();
        assert_eq!(block.subnet(0), "10.42.0.0/20");
        assert_eq!(block.subnet(2), "10.42.32.0/20");
        assert_eq!(block.subnet(8), "10.42.128.0/20");
        assert_eq!(block.public(1), "10.42.16.0/20");
        assert_eq!(block.private(2), "10.42.160.0/20");
    }

    #[test]
    fn rejects_bad_blocks() {
        assert!(Block::parse("10.42.0.0").is_err());
        assert!(Block::parse("10.42.0.1/16").is_err());
        assert!(Block::parse("10.0.0.0/8").is_err());
        assert!(Block::parse("banana/16").is_err());
    }

    #[test]
    fn zones_are_named_by_their_letter() {
        assert_eq!(zone_letter("ap-southeast-1b"), "b");
        assert_eq!(zone_letter(""), "");
    }
}
