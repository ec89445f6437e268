//! A session's `fetch` policy (SPEC §9, §11): which schemes, hosts and
//! ports a script may reach, and which resolved addresses stay out of
//! reach. Pure: it decides, [`super::client`] connects.
//!
//! The allow list comes from an enabled `net` capability named `fetch`,
//! parsed by the domain ([`vm_domain::net::FetchConfig`], which also
//! refuses a bad one when the capability is added); this module matches
//! URLs against its entries and classifies addresses.
//!
//! A name must resolve only to public addresses: loopback, private,
//! link-local, unique-local, shared (CGNAT), cloud metadata, unspecified,
//! multicast and reserved addresses are reachable only by an IP literal the
//! list names, so DNS can never lead a listed name inside the host or its
//! network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};
use url::{Host, Url};
use vm_domain::net::{configures_fetch, AllowEntry, FetchConfig, FetchConfigError, HostPattern};
use vm_domain::template::Capability;

/// Redirects followed before a fetch is refused, as browsers do.
pub const MAX_REDIRECTS: usize = 20;

/// The session's `fetch` policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    allow: Vec<AllowEntry>,
    /// Response body bytes a fetch may receive.
    pub max_bytes: u64,
}

/// Why a request may not go where it asks: a `code` for the script's
/// `TypeError` and a message saying what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// A URL's host as the policy let it through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A name: resolve it, then [`check_resolved`] every address.
    Name(String),
    /// An address the list names: connect to it as it is.
    Ip(IpAddr),
}

impl FetchPolicy {
    /// The policy of a session with these capabilities: `None` when no
    /// enabled `net` capability is named `fetch`. Several such capabilities
    /// add up their lists; the smallest `max_fetch_kb` among them wins. A
    /// config the domain would refuse (stored before it checked) is an
    /// error: the session does not start.
    pub fn from_capabilities(capabilities: &[Capability]) -> Result<Option<Self>, FetchConfigError> {
        let mut policy: Option<Self> = None;
        for capability in capabilities {
            if !configures_fetch(capability.kind, &capability.name) || !capability.enabled {
                continue;
            }
            let one = Self::from_config(&capability.config)?;
            policy = Some(match policy {
                None => one,
                Some(mut all) => {
                    all.allow.extend(one.allow);
                    all.max_bytes = all.max_bytes.min(one.max_bytes);
                    all
                }
            });
        }
        Ok(policy)
    }

    /// One capability's `{"allow": [...], "max_fetch_kb": N}`.
    pub fn from_config(config: &Map<String, Value>) -> Result<Self, FetchConfigError> {
        let FetchConfig { allow, max_fetch_kb } = FetchConfig::parse(config)?;
        Ok(Self { allow, max_bytes: max_fetch_kb.saturating_mul(1024) })
    }

    /// Whether `url` may be fetched before anything is resolved: its scheme
    /// is `http` or `https` and an entry names its host and port.
    pub fn check_url(&self, url: &Url) -> Result<Target, Refusal> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(Refusal::new(
                "ERR_SCHEME_NOT_ALLOWED",
                format!("fetch supports http and https only, not {scheme}: ({})", shown(url)),
            ));
        }
        let default_port = if scheme == "https" { 443 } else { 80 };
        let port = url.port().unwrap_or(default_port);
        let host = match url.host() {
            Some(Host::Domain(name)) => Target::Name(name.trim_end_matches('.').to_ascii_lowercase()),
            Some(Host::Ipv4(ip)) => Target::Ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Target::Ip(IpAddr::V6(ip)),
            None => return Err(Refusal::new("ERR_INVALID_URL", format!("{} names no host", shown(url)))),
        };
        let listed = self.allow.iter().any(|entry| {
            entry.port.unwrap_or(default_port) == port
                && match (&entry.host, &host) {
                    (HostPattern::Name(name), Target::Name(host)) => name == host,
                    (HostPattern::Subdomains(domain), Target::Name(host)) => {
                        host.len() > domain.len() + 1
                            && host.ends_with(domain.as_str())
                            && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
                    }
                    (HostPattern::Ip(ip), Target::Ip(host)) => ip == host,
                    _ => false,
                }
        });
        if !listed {
            let shown = match &host {
                Target::Name(name) => format!("{name}:{port}"),
                Target::Ip(IpAddr::V4(ip)) => format!("{ip}:{port}"),
                Target::Ip(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
            };
            return Err(Refusal::new(
                "ERR_HOST_NOT_ALLOWED",
                format!(
                    "{shown} is not in the allow list of the session's net capability `fetch` ({})",
                    self::shown(url)
                ),
            ));
        }
        Ok(host)
    }
}

/// `url` as messages and events show it: credentials (`user:password@`),
/// which may be secrets, become `***`.
pub fn shown(url: &Url) -> String {
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    let _ = shown.set_password(None);
    let _ = shown.set_username("***");
    shown.to_string()
}

/// A URL as the script wrote it, shown as [`shown`] does; text that is no
/// URL loses what lies between `://` and an `@`.
pub fn shown_text(raw: &str) -> String {
    if let Ok(url) = Url::parse(raw) {
        return shown(&url);
    }
    match (raw.find("://"), raw.rfind('@')) {
        (Some(start), Some(at)) if at > start + 3 => format!("{}***{}", &raw[..start + 3], &raw[at..]),
        _ => raw.to_owned(),
    }
}

/// Whether a listed name may be reached at the addresses it resolved to:
/// only when every one of them is public.
pub fn check_resolved(name: &str, addresses: &[IpAddr]) -> Result<(), Refusal> {
    if addresses.is_empty() {
        return Err(Refusal::new("ERR_NAME_NOT_RESOLVED", format!("{name} resolves to no address")));
    }
    for address in addresses {
        let class = classify(*address);
        if class != AddressClass::Public {
            return Err(Refusal::new(
                "ERR_ADDRESS_NOT_ALLOWED",
                format!(
                    "{name} resolves to {address}, {}: such addresses are reachable only by an IP address named \
                     in both the URL and the allow list",
                    class.describe()
                ),
            ));
        }
    }
    Ok(())
}

/// What kind of address an IP is, as far as reaching it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    /// RFC 1918.
    Private,
    LinkLocal,
    /// IPv6 `fc00::/7`.
    UniqueLocal,
    /// `100.64.0.0/10` (carrier-grade NAT).
    Shared,
    /// A cloud instance metadata service: `169.254.169.254`, `fd00:ec2::254`.
    Metadata,
    Unspecified,
    Multicast,
    /// Not routable on the internet: `0.0.0.0/8`, `192.0.0.0/24`, test
    /// nets, benchmarking, `240.0.0.0/4`, broadcast, IPv6 discard and
    /// documentation prefixes.
    Reserved,
}

impl AddressClass {
    fn describe(self) -> &'static str {
        match self {
            Self::Public => "a public address",
            Self::Loopback => "a loopback address",
            Self::Private => "a private address",
            Self::LinkLocal => "a link-local address",
            Self::UniqueLocal => "a unique-local address",
            Self::Shared => "a shared (carrier-grade NAT) address",
            Self::Metadata => "a cloud metadata address",
            Self::Unspecified => "the unspecified address",
            Self::Multicast => "a multicast address",
            Self::Reserved => "a reserved address",
        }
    }
}

/// The class of `ip`. IPv6 addresses that embed an IPv4 one (mapped,
/// compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are the class of it.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        AddressClass::Metadata
    } else if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if a == 127 {
        AddressClass::Loopback
    } else if a == 10 || (a == 172 && (16..32).contains(&b)) || (a == 192 && b == 168) {
        AddressClass::Private
    } else if a == 169 && b == 254 {
        AddressClass::LinkLocal
    } else if a == 100 && (64..128).contains(&b) {
        AddressClass::Shared
    } else if (224..240).contains(&a) {
        AddressClass::Multicast
    } else if a == 0
        || a >= 240
        || (a, b, c) == (192, 0, 0)
        || (a, b, c) == (192, 0, 2)
        || (a == 198 && (b == 18 || b == 19))
        || (a, b, c) == (198, 51, 100)
        || (a, b, c) == (203, 0, 113)
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let s = ip.segments();
    let embedded = |high: u16, low: u16| Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8);
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        AddressClass::Metadata
    } else if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated).
        classify_v4(embedded(s[6], s[7]))
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64.
        classify_v4(embedded(s[6], s[7]))
    } else if s[0] == 0x2002 {
        // 6to4.
        classify_v4(embedded(s[1], s[2]))
    } else if s[0] & 0xfe00 == 0xfc00 {
        AddressClass::UniqueLocal
    } else if s[0] & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if s[0] & 0xff00 == 0xff00 {
        AddressClass::Multicast
    } else if s[..4] == [0x100, 0, 0, 0]
        || (s[0] == 0x2001 && s[1] == 0xdb8)
        || s[0] & 0xfff0 == 0x3ff0
        || s[0] & 0xffc0 == 0xfec0
    {
        // Discard, documentation (2001:db8::/32, 3fff::/20), deprecated site-local.
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

#[cfg(test)]
mod tests {
    use vm_domain::template::CapabilityKind;

    use super::*;

    fn policy(allow: &[&str]) -> FetchPolicy {
        let config = serde_json::json!({ "allow": allow });
        FetchPolicy::from_config(config.as_object().unwrap()).expect("a valid policy")
    }

    fn check(policy: &FetchPolicy, url: &str) -> Result<Target, &'static str> {
        policy.check_url(&Url::parse(url).unwrap()).map_err(|refusal| refusal.code)
    }

    #[test]
    fn the_config_is_the_domains_and_max_fetch_kb_becomes_bytes() {
        let config = serde_json::json!({"allow": ["api.example.com", "https://api.example.com"]});
        let err = FetchPolicy::from_config(config.as_object().unwrap()).expect_err("a malformed entry");
        assert_eq!(err.field, "config.allow[1]");
        assert!(err.to_string().contains("invalid allow entry \"https://api.example.com\""), "{err}");
        let config = serde_json::json!({"allow": [], "max_fetch_kb": 2});
        assert_eq!(FetchPolicy::from_config(config.as_object().unwrap()).unwrap().max_bytes, 2048);
        assert_eq!(policy(&[]).max_bytes, vm_domain::net::DEFAULT_MAX_FETCH_KB * 1024);
    }

    #[test]
    fn only_enabled_net_capabilities_named_fetch_make_a_policy_and_they_add_up() {
        let capability = |kind, name: &str, enabled, config: Value| Capability {
            id: vm_domain::ids::CapabilityId::new(),
            template_id: vm_domain::ids::TemplateId::new(),
            kind,
            name: name.into(),
            enabled,
            config: config.as_object().unwrap().clone(),
            created_at: serde_json::from_value(Value::from("2026-01-02T03:04:05Z")).unwrap(),
        };
        let a = serde_json::json!({"allow": ["a.example"], "max_fetch_kb": 100});
        let b = serde_json::json!({"allow": ["b.example"], "max_fetch_kb": 5});
        let none = [
            capability(CapabilityKind::Net, "fetch", false, a.clone()),
            capability(CapabilityKind::Module, "fetch", true, a.clone()),
            capability(CapabilityKind::Net, "socket", true, a.clone()),
        ];
        assert_eq!(FetchPolicy::from_capabilities(&none), Ok(None));
        let both =
            [capability(CapabilityKind::Net, "fetch", true, a), capability(CapabilityKind::Net, "fetch", true, b)];
        let policy = FetchPolicy::from_capabilities(&both).unwrap().expect("a policy");
        assert_eq!(policy.max_bytes, 5 * 1024);
        assert!(check(&policy, "http://a.example/").is_ok());
        assert!(check(&policy, "http://b.example/").is_ok());
    }

    #[test]
    fn urls_pass_only_with_a_listed_host_on_a_listed_or_default_port() {
        let policy = policy(&["api.example.com", "*.example.org:8443", "127.0.0.1:3000", "[::1]"]);
        let cases = [
            ("http://api.example.com/x", Ok(Target::Name("api.example.com".into()))),
            ("https://api.example.com/x", Ok(Target::Name("api.example.com".into()))),
            ("https://API.EXAMPLE.COM./x", Ok(Target::Name("api.example.com".into()))),
            ("http://api.example.com:80/x", Ok(Target::Name("api.example.com".into()))),
            ("http://api.example.com:8080/x", Err("ERR_HOST_NOT_ALLOWED")),
            ("http://api.example.com:443/x", Err("ERR_HOST_NOT_ALLOWED")),
            ("http://www.api.example.com/", Err("ERR_HOST_NOT_ALLOWED")),
            ("http://example.com/", Err("ERR_HOST_NOT_ALLOWED")),
            ("https://a.example.org:8443/", Ok(Target::Name("a.example.org".into()))),
            ("https://a.b.example.org:8443/", Ok(Target::Name("a.b.example.org".into()))),
            ("https://example.org:8443/", Err("ERR_HOST_NOT_ALLOWED")),
            ("https://a.example.org/", Err("ERR_HOST_NOT_ALLOWED")),
            ("https://evilexample.org:8443/", Err("ERR_HOST_NOT_ALLOWED")),
            ("http://127.0.0.1:3000/", Ok(Target::Ip("127.0.0.1".parse().unwrap()))),
            ("http://0x7f.0.0.1:3000/", Ok(Target::Ip("127.0.0.1".parse().unwrap()))),
            ("http://127.0.0.1/", Err("ERR_HOST_NOT_ALLOWED")),
            ("http://127.0.0.2:3000/", Err("ERR_HOST_NOT_ALLOWED")),
            ("http://localhost:3000/", Err("ERR_HOST_NOT_ALLOWED")),
            ("http://[::1]/", Ok(Target::Ip("::1".parse().unwrap()))),
            ("http://[::ffff:127.0.0.1]:3000/", Err("ERR_HOST_NOT_ALLOWED")),
            ("ftp://api.example.com/", Err("ERR_SCHEME_NOT_ALLOWED")),
            ("file:///etc/passwd", Err("ERR_SCHEME_NOT_ALLOWED")),
            ("data:text/plain,hi", Err("ERR_SCHEME_NOT_ALLOWED")),
        ];
        for (url, expected) in cases {
            assert_eq!(check(&policy, url), expected, "{url}");
        }
    }

    #[test]
    fn credentials_in_urls_are_never_shown() {
        assert_eq!(shown_text("http://user:secret@api.example.com/a"), "http://***@api.example.com/a");
        assert_eq!(shown_text("https://token@api.example.com/"), "https://***@api.example.com/");
        assert_eq!(shown_text("http://api.example.com/a@b"), "http://api.example.com/a@b");
        assert_eq!(shown_text("http://us er:secret@x y/"), "http://***@x y/");
        let refusal = policy(&[]).check_url(&Url::parse("http://user:secret@example.invalid/").unwrap()).unwrap_err();
        assert!(!refusal.message.contains("secret"), "{}", refusal.message);
    }

    #[test]
    fn a_refused_host_is_named_with_its_port_in_the_message() {
        let refusal = policy(&[]).check_url(&Url::parse("http://example.invalid/a").unwrap()).unwrap_err();
        assert_eq!(refusal.code, "ERR_HOST_NOT_ALLOWED");
        assert!(refusal.message.contains("example.invalid:80 is not in the allow list"), "{}", refusal.message);
    }

    #[test]
    fn addresses_are_classified_and_only_public_ones_pass_for_names() {
        use AddressClass::*;
        let cases = [
            ("93.184.215.14", Public),
            ("1.1.1.1", Public),
            ("127.0.0.1", Loopback),
            ("127.255.0.9", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("172.32.0.1", Public),
            ("192.168.1.1", Private),
            ("169.254.1.1", LinkLocal),
            ("169.254.169.254", Metadata),
            ("100.64.0.1", Shared),
            ("100.127.255.255", Shared),
            ("100.128.0.1", Public),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Reserved),
            ("224.0.0.1", Multicast),
            ("255.255.255.255", Reserved),
            ("240.0.0.1", Reserved),
            ("192.0.2.1", Reserved),
            ("198.18.0.1", Reserved),
            ("2606:4700::1111", Public),
            ("::1", Loopback),
            ("::", Unspecified),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:8.8.8.8", Public),
            ("64:ff9b::a9fe:a9fe", Metadata),
            ("2002:7f00:1::", Loopback),
            ("fd00:ec2::254", Metadata),
            ("fd12:3456::1", UniqueLocal),
            ("fe80::1", LinkLocal),
            ("ff02::1", Multicast),
            ("2001:db8::1", Reserved),
        ];
        for (ip, class) in cases {
            assert_eq!(classify(ip.parse().unwrap()), class, "{ip}");
        }
        let public: IpAddr = "93.184.215.14".parse().unwrap();
        assert_eq!(check_resolved("example.com", &[public]), Ok(()));
        let refusal = check_resolved("localhost", &["127.0.0.1".parse().unwrap()]).unwrap_err();
        assert_eq!(refusal.code, "ERR_ADDRESS_NOT_ALLOWED");
        assert!(refusal.message.contains("localhost resolves to 127.0.0.1, a loopback address"), "{refusal:?}");
        let mixed = check_resolved("rebind.example", &[public, "169.254.169.254".parse().unwrap()]);
        assert_eq!(mixed.unwrap_err().code, "ERR_ADDRESS_NOT_ALLOWED", "one private answer refuses the name");
        assert_eq!(check_resolved("void.example", &[]).unwrap_err().code, "ERR_NAME_NOT_RESOLVED");
    }
}
