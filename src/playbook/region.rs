//! AWS region names: a syntactic check good enough to catch typos such as `ap-southeast1`
//! or `sydney` before anything talks to the cloud.

const AREAS: &[&str] = &["us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx", "cn"];
const DIRECTIONS: &[&str] = &[
    "north",
    "south",
    "east",
    "west",
    "central",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
];

/// Whether `name` has the shape of an AWS region name, such as `ap-southeast-1` or
/// `us-gov-west-1`.
pub fn is_valid(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    let (area, partition, direction, number) = match parts.as_slice() {
        [area, direction, number] => (*area, None, *direction, *number),
        [area, partition, direction, number] => (*area, Some(*partition), *direction, *number),
        _ => return false,
    };
    AREAS.contains(&area)
        && partition.is_none_or(|p| p == "gov" || p.starts_with("iso"))
        && DIRECTIONS.contains(&direction)
        && !number.is_empty()
        && number.len() <= 2
        && number.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_regions() {
        for region in [
            "ap-southeast-1",
            "ap-southeast-2",
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
        ] {
            assert!(is_valid(region), "{region}");
        }
    }

    #[test]
    fn rejects_typos() {
        for region in [
            "ap-southeast1",
            "sydney",
            "ap-southeast-",
            "xx-east-1",
            "AP-SOUTHEAST-1",
            "",
        ] {
            assert!(!is_valid(region), "{region}");
        }
    }
}
