//! The URL stage: length, scheme, host and credentials, decided before any network activity.
//!
//! One parser (`url`, WHATWG) decides what the host is, and the very same [`Url`] value is what
//! the HTTP client is given, so a parser differential cannot send the client elsewhere. The
//! WHATWG host parser turns every IPv4 spelling (decimal, hex, octal, short, percent-encoded,
//! fullwidth digits) into `Host::Ipv4`; `std::net::Ipv4Addr::from_str` would not, which is why
//! it is not used to decide "is this an IP".

use url::{Host, Url};

/// Why a URL was refused, with the source document's reason text where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlRejection {
    /// Longer than the limit (checked on the raw string, before parsing).
    TooLong {
        /// Characters in the URL as sent.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not parseable as a URL.
    Invalid(String),
    /// Scheme other than `https`.
    NotHttps(String),
    /// The host is an IP address literal.
    IpLiteral(String),
    /// The host is a single label (no dot): not a domain, and open to search-domain tricks.
    NotADomain(String),
    /// The URL carries a username or password.
    Credentials,
    /// The host name is on the internal-name deny list.
    BlockedName(String),
}

/// What a URL that is not `https` is told. The first sentence is Runway's documented message;
/// the second answers the usual cause, an `http://` URL of this very server's output.
pub const NOT_HTTPS_MESSAGE: &str = "Only HTTPS URLs are allowed. An output or upload of this server can be \
     passed by its UUID (the imageUUID, videoUUID or mediaUUID it came with) instead of its URL.";

impl UrlRejection {
    /// The error message clients see.
    pub fn message(&self) -> String {
        match self {
            UrlRejection::TooLong { len, max } => {
                format!("Invalid URL. URLs must be at most {max} characters long; this one has {len}.")
            }
            UrlRejection::Invalid(why) => format!("Invalid URL. The URL cannot be parsed: {why}."),
            UrlRejection::NotHttps(_) => NOT_HTTPS_MESSAGE.to_string(),
            UrlRejection::IpLiteral(_) | UrlRejection::NotADomain(_) => {
                "URLs must be hosted on a domain.".to_string()
            }
            UrlRejection::Credentials => {
                "Invalid URL. URLs must not contain a username or password.".to_string()
            }
            UrlRejection::BlockedName(host) => format!(
                "URLs must be hosted on a public domain: \"{host}\" names this machine or an internal service."
            ),
        }
    }
}

/// Host names that always mean "this machine" or an internal service, compared after
/// lowercasing and stripping one trailing dot. Suffix entries start with a dot.
const DENIED_NAMES: &[&str] = &[
    "localhost",
    ".localhost",
    "localhost.localdomain",
    ".localdomain",
    "metadata.google.internal",
    ".internal",
    ".local",
    ".home.arpa",
    "instance-data.ec2.internal",
];

fn name_denied(host: &str) -> bool {
    DENIED_NAMES.iter().any(|d| {
        if let Some(suffix) = d.strip_prefix('.') { host == suffix || host.ends_with(d) } else { host == *d }
    })
}

/// Checks a URL against the URL rules and returns it parsed.
pub fn check_url(raw: &str, max_len: usize) -> Result<Url, UrlRejection> {
    // Normalisation changes the length, so the limit applies to the string as sent.
    let len = raw.chars().count();
    if len > max_len {
        return Err(UrlRejection::TooLong { len, max: max_len });
    }
    let url = match Url::parse(raw) {
        Ok(u) => u,
        Err(e) => {
            // `https://[fe80::1%25eth0]/` fails to parse (zone ids are not URL syntax); it is still
            // an IP literal, and saying so is more useful than "cannot be parsed".
            let after_scheme = raw.split_once("://").map(|(_, r)| r).unwrap_or("");
            let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
            let host_part = authority.rsplit('@').next().unwrap_or("");
            if host_part.starts_with('[') {
                return Err(UrlRejection::IpLiteral(host_part.to_string()));
            }
            return Err(UrlRejection::Invalid(e.to_string()));
        }
    };
    if url.scheme() != "https" {
        return Err(UrlRejection::NotHttps(url.scheme().to_string()));
    }
    match url.host() {
        None => return Err(UrlRejection::Invalid("no host".into())),
        Some(Host::Ipv4(a)) => return Err(UrlRejection::IpLiteral(a.to_string())),
        Some(Host::Ipv6(a)) => return Err(UrlRejection::IpLiteral(a.to_string())),
        Some(Host::Domain(_)) => {}
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRejection::Credentials);
    }
    let host = normalized_host(&url).unwrap_or_default();
    if name_denied(&host) {
        return Err(UrlRejection::BlockedName(host));
    }
    if !host.contains('.') {
        return Err(UrlRejection::NotADomain(host));
    }
    Ok(url)
}

/// The URL's domain, lowercased, without one trailing dot (the form the deny list and the
/// `resolve` overrides are matched on).
pub fn normalized_host(url: &Url) -> Option<String> {
    url.host_str().map(|h| {
        let h = h.to_ascii_lowercase();
        h.strip_suffix('.').map(str::to_string).unwrap_or(h)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rej(u: &str) -> UrlRejection {
        check_url(u, 2048).expect_err(u)
    }

    #[test]
    fn length_is_checked_on_the_raw_string_at_the_boundary() {
        let base = "https://example.com/";
        let ok = format!("{base}{}", "a".repeat(2048 - base.len()));
        assert_eq!(ok.len(), 2048);
        assert!(check_url(&ok, 2048).is_ok());
        let long = format!("{ok}a");
        assert_eq!(rej(&long), UrlRejection::TooLong { len: 2049, max: 2048 });
        // Percent-encoding grows the string when parsed; the raw length is what counts.
        let spaces = format!("{base}{}", " ".repeat(2040 - base.len()));
        assert!(check_url(&spaces, 2048).is_ok());
    }

    #[test]
    fn only_https() {
        for u in [
            "http://example.com/a.png",
            "ftp://example.com/a.png",
            "file:///etc/passwd",
            "gopher://example.com/",
            "data://example.com/x",
            "ws://example.com/",
            "HTTP://example.com/",
        ] {
            let r = rej(u);
            assert!(matches!(r, UrlRejection::NotHttps(_)), "{u}: {r:?}");
            assert_eq!(r.message(), NOT_HTTPS_MESSAGE);
        }
        assert!(check_url("HTTPS://Example.COM/a.png", 2048).is_ok());
    }

    #[test]
    fn every_ip_literal_spelling_is_refused() {
        for u in [
            "https://1.2.3.4/x",
            "https://11.22.33.44/foo/bar",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://0x7f000001/",
            "https://0177.0.0.1/",
            "https://127.1/",
            "https://0/",
            "https://1.2.3.4./x",
            "https://%30x7f.1/",
            "https://%31%32%37%2e%30%2e%30%2e%31/",
            "https://０Ｘｃ０．０２５０．０１/",
            "https://192.0x00A80001/",
            "https://0x.0x.0/",
            "https://0xffffffff/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]:443/",
            "https://[fe80::1%25eth0]/",
            "https://[fe80::1%eth0]/",
            "https://user@[::1]/",
        ] {
            let r = rej(u);
            assert!(matches!(r, UrlRejection::IpLiteral(_)), "{u}: {r:?}");
            assert_eq!(r.message(), "URLs must be hosted on a domain.", "{u}");
        }
    }

    #[test]
    fn credentials_are_refused() {
        for u in ["https://user@example.com/", "https://user:pass@example.com/", "https://:pass@example.com/"]
        {
            assert_eq!(rej(u), UrlRejection::Credentials, "{u}");
        }
        // Parser-confusion strings from Orange Tsai's talk: one parser decides, and whatever it
        // decides is what the client connects to, so only the outcome of that parser matters.
        assert!(matches!(
            rej("https://1.1.1.1 &@2.2.2.2# @3.3.3.3/"),
            UrlRejection::Invalid(_) | UrlRejection::IpLiteral(_) | UrlRejection::Credentials
        ));
        let u = check_url("https://example.com\\@127.0.0.1/", 2048).unwrap();
        assert_eq!(u.host_str(), Some("example.com"));
    }

    #[test]
    fn internal_names_are_refused_after_lowercase_and_trailing_dot() {
        for u in [
            "https://localhost/",
            "https://LOCALHOST./",
            "https://foo.localhost/",
            "https://metadata.google.internal/computeMetadata/v1/",
            "https://metadata.google.internal./",
            "https://printer.local/",
            "https://router.home.arpa/",
            "https://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/",
        ] {
            let r = rej(u);
            assert!(matches!(r, UrlRejection::BlockedName(_)), "{u}: {r:?}");
        }
        assert!(matches!(rej("https://intranet/a.png"), UrlRejection::NotADomain(_)));
        // Enclosed alphanumerics are IDNA-mapped to ASCII before any check.
        let u = check_url("https://ⓔⓧⓐⓜⓟⓛⓔ.ⓒⓞⓜ/a.png", 2048).unwrap();
        assert_eq!(u.host_str(), Some("example.com"));
    }

    #[test]
    fn garbage_is_invalid_url() {
        for u in ["https://", "https://exa[mple.com/", "https://exa mple.com/", "https://ex%00ample.com/"] {
            let r = rej(u);
            assert!(matches!(r, UrlRejection::Invalid(_)), "{u}: {r:?}");
            assert!(r.message().starts_with("Invalid URL"));
        }
    }
}
