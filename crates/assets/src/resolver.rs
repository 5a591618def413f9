//! The only DNS path of the asset HTTP client: it returns validated addresses or an error.
//!
//! Because reqwest asks this resolver for the addresses it is about to dial, the address checked
//! is the address connected to; there is no separate "pre-check" lookup that a DNS-rebinding
//! server could answer differently. Connection pooling is off (see `fetch.rs`), so HEAD and GET
//! each go through here and each answer is judged on its own.

use crate::ip_policy::IpPolicy;
use crate::report::{self, DnsAnswer, Step};
use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Looks up the addresses of a host name. The default is the system resolver; tests inject
/// fakes (e.g. one that answers differently the second time).
#[async_trait]
pub trait DnsLookup: Send + Sync {
    /// All addresses for `host` (already lowercased, without a trailing dot).
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>>;
}

/// The system resolver (`getaddrinfo` via `tokio::net::lookup_host`).
pub struct SystemLookup;

#[async_trait]
impl DnsLookup for SystemLookup {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        // A trailing dot makes the name absolute, so resolv.conf search domains never apply.
        let fqdn = format!("{host}.");
        let addrs = tokio::net::lookup_host((fqdn.as_str(), 0u16)).await?;
        Ok(addrs.map(|a| a.ip()).collect())
    }
}

/// Why the resolver refused a name. Found again in reqwest's error chain by `fetch.rs`.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The lookup itself failed (NXDOMAIN, SERVFAIL, no network...).
    #[error("DNS lookup of \"{host}\" failed: {detail}")]
    Lookup {
        /// The name.
        host: String,
        /// The resolver's error.
        detail: String,
    },
    /// The lookup returned no address.
    #[error("DNS lookup of \"{host}\" returned no address")]
    NoAddress {
        /// The name.
        host: String,
    },
    /// At least one answer is not a public address.
    #[error("\"{host}\" resolves to a non-public address ({explanation})")]
    Blocked {
        /// The name.
        host: String,
        /// The policy's explanation for the first refused address.
        explanation: String,
    },
}

/// A reqwest resolver that applies the `resolve` overrides and the address policy.
pub struct ValidatingResolver {
    pub(crate) lookup: Arc<dyn DnsLookup>,
    pub(crate) overrides: BTreeMap<String, Vec<IpAddr>>,
    pub(crate) policy: IpPolicy,
}

impl ValidatingResolver {
    /// Resolves and judges `host`; `Ok` only when every answer is allowed.
    pub async fn resolve_host(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let reporter = report::current();
        self.resolve_reporting(host, reporter).await
    }

    async fn resolve_reporting(
        &self,
        host: &str,
        reporter: Option<Arc<dyn report::Reporter>>,
    ) -> Result<Vec<IpAddr>, ResolveError> {
        let host = host.to_ascii_lowercase();
        let host = host.strip_suffix('.').unwrap_or(&host).to_string();
        let (addrs, source) = match self.overrides.get(&host) {
            Some(a) => (a.clone(), "configured override"),
            None => match self.lookup.lookup(&host).await {
                Ok(a) => (a, "system"),
                Err(e) => {
                    return Err(ResolveError::Lookup { host, detail: e.to_string() });
                }
            },
        };
        let answers: Vec<DnsAnswer> = addrs
            .iter()
            .map(|ip| DnsAnswer {
                address: *ip,
                allowed: self.policy.check(*ip).is_allowed(),
                verdict: self.policy.explain(*ip),
            })
            .collect();
        if let Some(r) = &reporter {
            r.step(&Step::Dns { host: host.clone(), source, answers: answers.clone() });
        }
        if addrs.is_empty() {
            return Err(ResolveError::NoAddress { host });
        }
        // Any refused answer refuses the name: deterministic, and a name that mixes public and
        // private answers is exactly what a rebinding or a misconfigured split-horizon looks like.
        if let Some(bad) = answers.iter().find(|a| !a.allowed) {
            return Err(ResolveError::Blocked { host, explanation: bad.verdict.clone() });
        }
        Ok(addrs)
    }
}

/// The handle reqwest holds.
pub(crate) struct ClientResolver(pub(crate) Arc<ValidatingResolver>);

impl Resolve for ClientResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let inner = Arc::clone(&self.0);
        // Captured now, while the request future of the asking task is being polled.
        let reporter = report::current();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let ips = inner.resolve_reporting(&host, reporter).await?;
            // Port 0 is replaced by reqwest with the URL's port.
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Fixed(Mutex<Vec<io::Result<Vec<IpAddr>>>>);

    #[async_trait]
    impl DnsLookup for Fixed {
        async fn lookup(&self, _: &str) -> io::Result<Vec<IpAddr>> {
            self.0.lock().unwrap().remove(0)
        }
    }

    fn resolver(answers: Vec<io::Result<Vec<IpAddr>>>) -> ValidatingResolver {
        ValidatingResolver {
            lookup: Arc::new(Fixed(Mutex::new(answers))),
            overrides: BTreeMap::new(),
            policy: IpPolicy::default(),
        }
    }

    fn ips(s: &[&str]) -> Vec<IpAddr> {
        s.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[tokio::test]
    async fn mixed_public_and_private_answers_refuse_the_name() {
        for mix in [
            &["93.184.216.34", "10.0.0.5"][..],
            &["10.0.0.5", "93.184.216.34"],
            &["2606:2800:220:1::1", "::ffff:169.254.169.254"],
            &["93.184.216.34", "fd00::1"],
        ] {
            let r = resolver(vec![Ok(ips(mix))]);
            let e = r.resolve_host("Example.COM.").await.unwrap_err();
            assert!(
                matches!(e, ResolveError::Blocked { ref host, .. } if host == "example.com"),
                "{mix:?}: {e}"
            );
        }
        let r = resolver(vec![Ok(ips(&["93.184.216.34", "2606:2800:220:1::1"]))]);
        assert_eq!(r.resolve_host("example.com").await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn each_lookup_is_judged_again() {
        let r = resolver(vec![Ok(ips(&["93.184.216.34"])), Ok(ips(&["127.0.0.1"]))]);
        assert!(r.resolve_host("rebind.example").await.is_ok());
        assert!(matches!(r.resolve_host("rebind.example").await, Err(ResolveError::Blocked { .. })));
    }

    #[tokio::test]
    async fn lookup_failures_and_empty_answers_are_dns_errors() {
        let r = resolver(vec![Err(io::Error::other("Name or service not known")), Ok(vec![])]);
        assert!(matches!(r.resolve_host("nx.example").await, Err(ResolveError::Lookup { .. })));
        assert!(matches!(r.resolve_host("nx.example").await, Err(ResolveError::NoAddress { .. })));
    }

    #[tokio::test]
    async fn overrides_are_judged_like_answers() {
        let mut r = resolver(vec![]);
        r.overrides.insert("assets.test".into(), ips(&["127.0.0.1"]));
        assert!(matches!(r.resolve_host("ASSETS.test.").await, Err(ResolveError::Blocked { .. })));
        r.policy.allowed_networks = vec!["127.0.0.1/32".parse().unwrap()];
        assert_eq!(r.resolve_host("assets.test").await.unwrap(), ips(&["127.0.0.1"]));
    }
}
