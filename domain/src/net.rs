//! The `net` capability named `fetch` as data (SPEC §9, §11): its config,
//! `{"allow": [...], "max_fetch_kb": N}`, parsed once, so a template refuses
//! a bad one when the capability is added and the runtime builds its policy
//! from the same rules. Pure: what an entry lets through, and what the
//! addresses a name resolves to may be, is the runtime's to decide.
//!
//! Allow-list entries:
//! - `api.example.com`: that host, on its scheme's default port (80 for
//!   `http`, 443 for `https`); `api.example.com:8443`: on that port only.
//! - `*.example.org`, `*.example.org:8443`: its subdomains (at any depth),
//!   never `example.org` itself.
//! - `203.0.113.7`, `[2001:db8::1]`, with an optional `:port`: that address,
//!   named as such in the URL.

use std::net::{IpAddr, Ipv6Addr};

use serde_json::{Map, Value};
use url::Host;

use crate::template::CapabilityKind;
use crate::DomainError;

/// The name of the `net` capability that turns `fetch` on.
pub const FETCH_CAPABILITY: &str = "fetch";
/// `max_fetch_kb` when the capability does not say: 10 MiB.
pub const DEFAULT_MAX_FETCH_KB: u64 = 10 * 1024;

/// Whether a capability of this kind and name configures `fetch`.
pub fn configures_fetch(kind: CapabilityKind, name: &str) -> bool {
    kind == CapabilityKind::Net && name == FETCH_CAPABILITY
}

/// One `fetch` capability's config, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchConfig {
    pub allow: Vec<AllowEntry>,
    /// Response body KiB a fetch may receive; positive.
    pub max_fetch_kb: u64,
}

/// One allow-list entry: a host pattern and, optionally, the one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    pub host: HostPattern,
    /// `None`: the default port of the URL's scheme.
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this name (lowercase, punycode, no trailing dot).
    Name(String),
    /// Any name ending in `.` and this domain.
    Subdomains(String),
    /// This address, written as such in the URL.
    Ip(IpAddr),
}

/// Why a `fetch` capability's config is refused: the field at fault
/// (`config.allow[1]`, `config.max_fetch_kb` …) and a message naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FetchConfigError {
    pub field: String,
    pub message: String,
}

impl From<FetchConfigError> for DomainError {
    fn from(err: FetchConfigError) -> Self {
        // The allow list's grammar is more than the API document states: a
        // schema-valid body it refuses is 422, not 400.
        DomainError::InvalidValue { field: err.field, message: err.message }
    }
}

/// Why one allow-list entry is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid allow entry {entry:?}: {why} (write `host`, `host:port`, `*.domain`, `*.domain:port`, an IPv4 \
     address or a bracketed IPv6 address, each with an optional port)"
)]
pub struct InvalidAllowEntry {
    pub entry: String,
    pub why: String,
}

impl FetchConfig {
    /// `{"allow": [...], "max_fetch_kb": N}`: `allow` a list of entry
    /// strings, `max_fetch_kb` (optional) a positive integer, nothing else.
    pub fn parse(config: &Map<String, Value>) -> Result<Self, FetchConfigError> {
        let refused = |field: String, message: String| FetchConfigError {
            field,
            message: format!("the net capability `fetch`: {message}"),
        };
        if let Some(unknown) = config.keys().find(|k| !matches!(k.as_str(), "allow" | "max_fetch_kb")) {
            return Err(refused(
                format!("config.{unknown}"),
                format!("unknown config key {unknown:?} (it takes `allow` and `max_fetch_kb`)"),
            ));
        }
        let entries = match config.get("allow") {
            Some(Value::Array(entries)) => entries,
            Some(_) => return Err(refused("config.allow".into(), "`allow` must be an array of host strings".into())),
            None => {
                return Err(refused("config.allow".into(), "`allow` is missing: list the hosts fetch may reach".into()))
            }
        };
        let allow = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let parsed = match entry {
                    Value::String(entry) => AllowEntry::parse(entry),
                    other => Err(InvalidAllowEntry { entry: other.to_string(), why: "not a string".into() }),
                };
                parsed.map_err(|err| FetchConfigError {
                    field: format!("config.allow[{i}]"),
                    message: format!("the net capability `fetch` has an {err}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let max_fetch_kb = match config.get("max_fetch_kb") {
            None => DEFAULT_MAX_FETCH_KB,
            Some(value) => value.as_u64().filter(|kb| *kb > 0).ok_or_else(|| {
                refused("config.max_fetch_kb".into(), format!("`max_fetch_kb` must be a positive integer, not {value}"))
            })?,
        };
        Ok(Self { allow, max_fetch_kb })
    }
}

impl AllowEntry {
    pub fn parse(raw: &str) -> Result<Self, InvalidAllowEntry> {
        let bad = |why: &str| InvalidAllowEntry { entry: raw.to_owned(), why: why.to_owned() };
        let entry = raw.trim();
        if entry.is_empty() {
            return Err(bad("it is empty"));
        }
        if entry.contains("://") || entry.contains('/') {
            return Err(bad("write the host without a scheme or path"));
        }
        if let Ok(ip) = entry.parse::<Ipv6Addr>() {
            return Ok(Self { host: HostPattern::Ip(IpAddr::V6(ip)), port: None });
        }
        let (host, port) = split_port(entry).map_err(|why| bad(&why))?;
        if let Some(domain) = host.strip_prefix("*.") {
            return match Host::parse(domain) {
                Ok(Host::Domain(domain)) if !domain.contains('*') && domain.contains('.') => {
                    Ok(Self { host: HostPattern::Subdomains(domain.trim_end_matches('.').to_owned()), port })
                }
                Ok(Host::Domain(_)) => Err(bad("a wildcard needs a domain of at least two labels, as `*.example.org`")),
                Ok(_) => Err(bad("a wildcard applies to domain names, not to IP addresses")),
                Err(err) => Err(bad(&format!("not a host name ({err})"))),
            };
        }
        if host.contains('*') {
            return Err(bad("a wildcard may only open the entry, as `*.example.org`"));
        }
        let host = match Host::parse(host) {
            Ok(Host::Domain(name)) => HostPattern::Name(name.trim_end_matches('.').to_owned()),
            Ok(Host::Ipv4(ip)) => HostPattern::Ip(IpAddr::V4(ip)),
            Ok(Host::Ipv6(ip)) => HostPattern::Ip(IpAddr::V6(ip)),
            Err(err) => return Err(bad(&format!("not a host name ({err})"))),
        };
        match &host {
            HostPattern::Name(name) if name.is_empty() => Err(bad("it names no host")),
            _ => Ok(Self { host, port }),
        }
    }
}

/// `host[:port]` or `[v6][:port]`, split.
fn split_port(entry: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or("an opening `[` without its `]`")?;
        match after {
            "" => (&entry[..inside.len() + 2], None),
            _ => match after.strip_prefix(':') {
                Some(port) => (&entry[..inside.len() + 2], Some(port)),
                None => return Err("only `:port` may follow a bracketed address".into()),
            },
        }
    } else {
        match entry.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        }
    };
    let port = port
        .map(|port| match port.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("{port:?} is not a port (1-65535)")),
            Ok(port) => Ok(port),
        })
        .transpose()?;
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(config: Value) -> Result<FetchConfig, FetchConfigError> {
        FetchConfig::parse(config.as_object().expect("a config object"))
    }

    #[test]
    fn entries_parse_into_names_wildcards_and_addresses_with_optional_ports() {
        let cases = [
            ("api.example.com", HostPattern::Name("api.example.com".into()), None),
            ("API.Example.COM.", HostPattern::Name("api.example.com".into()), None),
            ("api.example.com:8443", HostPattern::Name("api.example.com".into()), Some(8443)),
            ("*.example.org", HostPattern::Subdomains("example.org".into()), None),
            ("*.example.org:8443", HostPattern::Subdomains("example.org".into()), Some(8443)),
            ("127.0.0.1", HostPattern::Ip("127.0.0.1".parse().unwrap()), None),
            ("127.0.0.1:3000", HostPattern::Ip("127.0.0.1".parse().unwrap()), Some(3000)),
            ("[::1]", HostPattern::Ip("::1".parse().unwrap()), None),
            ("[::1]:8080", HostPattern::Ip("::1".parse().unwrap()), Some(8080)),
            ("::1", HostPattern::Ip("::1".parse().unwrap()), None),
            ("bücher.example", HostPattern::Name("xn--bcher-kva.example".into()), None),
        ];
        for (raw, host, port) in cases {
            assert_eq!(AllowEntry::parse(raw), Ok(AllowEntry { host, port }), "{raw}");
        }
    }

    #[test]
    fn malformed_entries_are_refused_with_the_entry_named() {
        let cases = [
            ("", "empty"),
            ("https://api.example.com", "without a scheme"),
            ("api.example.com/v1", "without a scheme or path"),
            ("api.example.com:0", "not a port"),
            ("api.example.com:http", "not a port"),
            ("api.example.com:70000", "not a port"),
            ("*.com", "two labels"),
            ("*.10.0.0.1", "not to IP addresses"),
            ("api.*.example.com", "may only open the entry"),
            ("*", "may only open the entry"),
            ("[::1", "without its `]`"),
            ("[::1]8080", "only `:port`"),
            ("exa mple.com", "not a host name"),
            ("bad host!", "not a host name"),
        ];
        for (raw, why) in cases {
            let err = AllowEntry::parse(raw).expect_err(raw);
            assert!(err.to_string().contains(why), "{raw}: {err}");
            assert!(err.to_string().contains(&format!("{raw:?}")), "{raw}: {err}");
        }
    }

    #[test]
    fn a_refused_config_names_the_field_at_fault() {
        let cases = [
            ("no allow", json!({}), "config.allow", "`allow` is missing"),
            ("allow not a list", json!({"allow": "api.example.com"}), "config.allow", "must be an array"),
            ("an entry not a string", json!({"allow": [1]}), "config.allow[0]", "not a string"),
            (
                "the second entry malformed",
                json!({"allow": ["api.example.com", "bad host!"]}),
                "config.allow[1]",
                "invalid allow entry \"bad host!\"",
            ),
            ("max_fetch_kb zero", json!({"allow": [], "max_fetch_kb": 0}), "config.max_fetch_kb", "positive integer"),
            ("max_fetch_kb negative", json!({"allow": [], "max_fetch_kb": -1}), "config.max_fetch_kb", "not -1"),
            ("max_fetch_kb a string", json!({"allow": [], "max_fetch_kb": "1"}), "config.max_fetch_kb", "integer"),
            ("max_fetch_kb a fraction", json!({"allow": [], "max_fetch_kb": 1.5}), "config.max_fetch_kb", "integer"),
            ("an unknown key", json!({"allow": [], "allowed": []}), "config.allowed", "unknown config key \"allowed\""),
        ];
        for (label, config, field, message) in cases {
            let err = parse(config).expect_err(label);
            assert_eq!(err.field, field, "{label}");
            assert!(err.message.contains(message), "{label}: {}", err.message);
            assert!(err.message.starts_with("the net capability `fetch`"), "{label}: {}", err.message);
            match DomainError::from(err) {
                DomainError::InvalidValue { field: named, .. } => assert_eq!(named, field, "{label}"),
                other => panic!("{label}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_valid_config_keeps_its_entries_in_order_and_defaults_max_fetch_kb() {
        let config = parse(json!({"allow": ["b.example", "*.a.example:8443"], "max_fetch_kb": 2})).unwrap();
        assert_eq!(config.max_fetch_kb, 2);
        assert_eq!(
            config.allow,
            [
                AllowEntry { host: HostPattern::Name("b.example".into()), port: None },
                AllowEntry { host: HostPattern::Subdomains("a.example".into()), port: Some(8443) },
            ]
        );
        assert_eq!(parse(json!({"allow": []})).unwrap().max_fetch_kb, DEFAULT_MAX_FETCH_KB);
    }

    #[test]
    fn only_a_net_capability_named_fetch_configures_fetch() {
        assert!(configures_fetch(CapabilityKind::Net, "fetch"));
        assert!(!configures_fetch(CapabilityKind::Module, "fetch"));
        assert!(!configures_fetch(CapabilityKind::Net, "socket"));
    }
}
