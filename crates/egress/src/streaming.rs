//! The guarded clients for response streams (MCP's transports): one per workspace.
//!
//! HTTP/1.1 cannot tell an answer from the one before it: a server that once sends an
//! answer nobody asked for (a bug, a retry of its own, a proxy in front of it) leaves it on
//! the connection, and the next request on that connection reads it as its own. Pooled by
//! origin alone, that next request could be another workspace's, which would then get an
//! answer made with the first workspace's credentials. So each workspace has a client, and
//! a pool, of its own; within a workspace connections are reused as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{AllowList, EgressError, Resolver, resolve};

/// How many workspaces keep a client at once. Past that the one unused longest is dropped
/// from the map (sessions that hold it keep it until they close; the workspace's next
/// session gets a new one), so memory stays bounded whatever the number of workspaces.
pub(crate) const MAX_TENANTS: usize = 1024;

/// What every client is built from.
pub(crate) struct Setup {
    pub tls: rustls::ClientConfig,
    pub resolver: Arc<dyn Resolver>,
    pub allow: Arc<AllowList>,
    pub connect_timeout: Duration,
}

pub(crate) struct Clients {
    setup: Setup,
    /// For calls of no workspace (tests, tools).
    unowned: reqwest::Client,
    by_tenant: Mutex<Tenants>,
}

#[derive(Default)]
struct Tenants {
    clients: HashMap<Arc<str>, (reqwest::Client, u64)>,
    /// Bumped on every use: the entry with the lowest mark was used longest ago.
    clock: u64,
}

impl Clients {
    pub(crate) fn new(setup: Setup) -> Result<Self, EgressError> {
        let unowned = build(&setup)?;
        Ok(Self {
            setup,
            unowned,
            by_tenant: Mutex::new(Tenants::default()),
        })
    }

    /// The client of `tenant` (built on first use).
    pub(crate) fn get(&self, tenant: Option<&str>) -> Result<reqwest::Client, EgressError> {
        let Some(tenant) = tenant else {
            return Ok(self.unowned.clone());
        };
        let mut tenants = self.by_tenant.lock().unwrap_or_else(|e| e.into_inner());
        tenants.clock += 1;
        let now = tenants.clock;
        if let Some((client, used)) = tenants.clients.get_mut(tenant) {
            *used = now;
            return Ok(client.clone());
        }
        let client = build(&self.setup)?;
        if tenants.clients.len() >= MAX_TENANTS
            && let Some(oldest) = tenants
                .clients
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
        {
            tenants.clients.remove(&oldest);
        }
        tenants.clients.insert(Arc::from(tenant), (client.clone(), now));
        Ok(client)
    }

    #[cfg(test)]
    fn tenants(&self) -> usize {
        self.by_tenant.lock().map(|t| t.clients.len()).unwrap_or(0)
    }
}

fn build(setup: &Setup) -> Result<reqwest::Client, EgressError> {
    #[allow(clippy::disallowed_methods)] // the one place a client is built
    reqwest::Client::builder()
        .tls_backend_preconfigured(setup.tls.clone())
        .dns_resolver(Arc::new(resolve::GuardedResolver {
            resolver: setup.resolver.clone(),
            allow: setup.allow.clone(),
        }))
        // A proxy would resolve names itself, out of the guard's sight.
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        // bodies are decoded here, where every layer is seen (`body_coding`), never by
        // the client behind our back (whatever features another crate turns on)
        .no_gzip()
        .no_deflate()
        .no_brotli()
        .no_zstd()
        .connect_timeout(setup.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| EgressError::Setup(e.without_url().to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn tenants_kept_are_bounded_and_the_one_unused_longest_goes() {
        let clients = Clients::new(Setup {
            tls: crate::tls_config(&[]).unwrap(),
            resolver: Arc::new(crate::SystemResolver),
            allow: Arc::new(AllowList::default()),
            connect_timeout: Duration::from_secs(1),
        })
        .unwrap();
        let first = clients.get(Some("ws-0")).unwrap();
        for i in 1..MAX_TENANTS {
            clients.get(Some(&format!("ws-{i}"))).unwrap();
        }
        assert_eq!(clients.tenants(), MAX_TENANTS);
        // ws-0 used again: ws-1 is now the one unused longest
        clients.get(Some("ws-0")).unwrap();
        clients.get(Some("one more")).unwrap();
        assert_eq!(clients.tenants(), MAX_TENANTS);
        let map = clients.by_tenant.lock().unwrap();
        assert!(map.clients.contains_key("ws-0"));
        assert!(!map.clients.contains_key("ws-1"));
        assert!(map.clients.contains_key("one more"));
        drop(map);
        drop(first);
    }
}
