//! Name resolution under the guard. The server resolves every host itself and hands the
//! HTTP client only addresses that passed the check, so the connection goes to exactly the
//! address that was checked: there is no second lookup that DNS rebinding could answer
//! differently. The resolver is a trait so tests can inject answers.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use crate::EgressError;
use crate::policy::AllowList;

/// Looks up a host's addresses.
pub trait Resolver: Send + Sync + 'static {
    fn lookup<'a>(&'a self, host: &'a str) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>>;
}

/// The system resolver (getaddrinfo through tokio).
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn lookup<'a>(&'a self, host: &'a str) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host, 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// How long a name may take to resolve: the system resolver can wait out every
/// nameserver and search domain (tens of seconds) for a name that does not exist.
pub const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Resolves `host` and checks every address: one forbidden address refuses the whole host
/// (an attacker's DNS can answer a public address first and a private one second).
pub async fn resolve_checked(
    resolver: &dyn Resolver,
    allow: &AllowList,
    host: &str,
) -> Result<Vec<IpAddr>, EgressError> {
    resolve_checked_within(resolver, allow, host, RESOLVE_TIMEOUT).await
}

/// [`resolve_checked`] with its own time limit.
pub async fn resolve_checked_within(
    resolver: &dyn Resolver,
    allow: &AllowList,
    host: &str,
    limit: std::time::Duration,
) -> Result<Vec<IpAddr>, EgressError> {
    allow.check_name(host).map_err(|reason| EgressError::Blocked {
        host: host.to_owned(),
        addr: None,
        reason,
    })?;
    let addrs = match tokio::time::timeout(limit, resolver.lookup(host)).await {
        Ok(found) => found.map_err(|e| EgressError::Resolve {
            host: host.to_owned(),
            message: e.to_string(),
        })?,
        Err(_) => {
            return Err(EgressError::Resolve {
                host: host.to_owned(),
                message: format!("no answer within {limit:?}"),
            });
        }
    };
    if addrs.is_empty() {
        return Err(EgressError::Resolve {
            host: host.to_owned(),
            message: "no addresses".into(),
        });
    }
    for ip in &addrs {
        allow.check(host, *ip).map_err(|reason| EgressError::Blocked {
            host: host.to_owned(),
            addr: Some(*ip),
            reason,
        })?;
    }
    Ok(addrs)
}

/// The resolver reqwest uses: every lookup goes through [`resolve_checked`].
pub(crate) struct GuardedResolver {
    pub(crate) resolver: Arc<dyn Resolver>,
    pub(crate) allow: Arc<AllowList>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.resolver.clone();
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs = resolve_checked(resolver.as_ref(), &allow, &host).await?;
            let sockets: Vec<SocketAddr> = addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(Box::new(sockets.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod timeout_tests {
    use super::*;

    struct Slow;

    impl Resolver for Slow {
        fn lookup<'a>(
            &'a self,
            _host: &'a str,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'a>> {
            Box::pin(async {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                Ok(vec![])
            })
        }
    }

    #[tokio::test]
    async fn a_name_that_takes_too_long_is_given_up() {
        let started = std::time::Instant::now();
        let allow = AllowList::default();
        let r = resolve_checked_within(&Slow, &allow, "slow.example", std::time::Duration::from_millis(100)).await;
        assert!(
            matches!(r, Err(EgressError::Resolve { ref message, .. }) if message.contains("no answer")),
            "{r:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
