//! Security-group rules, judged once for every step that lets one group into another: a
//! rule is there when the group already admits the source on the protocol and port (an
//! all-traffic rule, or a port range that covers it, counts), so a re-run reads instead of
//! authorizing again.

use aws_sdk_ec2::types::SecurityGroup;

/// Whether `group` admits the group `source` on `protocol` (`tcp`, or `-1` for all
/// traffic) and `port` (`None`: every port).
pub(super) fn admits(
    group: &SecurityGroup,
    source: &str,
    protocol: &str,
    port: Option<i32>,
) -> bool {
    group.ip_permissions().iter().any(|permission| {
        let all = permission.ip_protocol() == Some("-1");
        let protocol_matches = all || permission.ip_protocol() == Some(protocol);
        let port_matches = all
            || match (port, permission.from_port(), permission.to_port()) {
                (Some(port), Some(from), Some(to)) => from <= port && port <= to,
                (None, from, to) => from.is_none() && to.is_none(),
                _ => true,
            };
        protocol_matches
            && port_matches
            && permission
                .user_id_group_pairs()
                .iter()
                .any(|pair| pair.group_id() == Some(source))
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{IpPermission, UserIdGroupPair};

    use super::*;

    fn group(protocol: &str, ports: Option<(i32, i32)>, source: &str) -> SecurityGroup {
        let pair = UserIdGroupPair::builder().group_id(source).build();
        let permission = IpPermission::builder()
            .ip_protocol(protocol)
            .set_from_port(ports.map(|(from, _)| from))
            .set_to_port(ports.map(|(_, to)| to))
            .user_id_group_pairs(pair)
            .build();
        SecurityGroup::builder().ip_permissions(permission).build()
    }

    #[test]
    fn a_rule_is_there_when_protocol_port_and_source_are_covered() {
        let postgres = group("tcp", Some((5432, 5432)), "sg-nodes");
        assert!(admits(&postgres, "sg-nodes", "tcp", Some(5432)));
        assert!(!admits(&postgres, "sg-nodes", "tcp", Some(3306)));
        assert!(!admits(&postgres, "sg-other", "tcp", Some(5432)));
        assert!(
            !admits(&postgres, "sg-nodes", "-1", None),
            "all traffic is more"
        );
        let range = group("tcp", Some((1024, 65535)), "sg-nodes");
        assert!(admits(&range, "sg-nodes", "tcp", Some(5432)));
        let all = group("-1", None, "sg-nodes");
        assert!(admits(&all, "sg-nodes", "tcp", Some(5432)));
        assert!(admits(&all, "sg-nodes", "-1", None));
        assert!(!admits(&all, "sg-other", "-1", None));
    }
}
