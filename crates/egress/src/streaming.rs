//! The guarded clients for response streams (MCP's transports): one per workspace.
//!
//! HTTP/1.1 cannot tell an answer from the one before it: a server that once sends an
//! answer nobody asked for (a bug, a retry of its own, a proxy in front of it) leaves it on
//! the connection, and the next request on that connection reads it as its own. Pooled by
//! origin alone, that next request could be another workspace's, which would then get an
//! answer made with the first workspace's credentials. So each workspace has a client, and
//! a pool, of its own; within a workspace connections are reused as before.
//!
//! A workspace's client lives only as long as something uses it (its MCP sessions, a
//! discovery): the map holds it weakly, so when the last session of a workspace closes,
//! its idle connections close with it. Live sessions are bounded (the MCP pool), and so
//! are the clients and their sockets; a thousand workspaces that each discovered a server
//! once leave no socket behind (they left one each, for a minute, when the map held them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::{AllowList, EgressError, Resolver, resolve};

/// Idle connections a client keeps per origin: a workspace's sessions with one server
/// rarely need more at once, and every one kept is a socket.
pub(crate) const IDLE_PER_ORIGIN: usize = 4;

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
    unowned: Arc<reqwest::Client>,
    by_tenant: Mutex<Tenants>,
}

struct Tenants {
    clients: HashMap<Arc<str>, Weak<reqwest::Client>>,
    /// The map is swept of clients nobody holds any more once it reaches this size.
    sweep_at: usize,
}

const SWEEP_AT_LEAST: usize = 256;

impl Clients {
    pub(crate) fn new(setup: Setup) -> Result<Self, EgressError> {
        let unowned = Arc::new(build(&setup)?);
        Ok(Self {
            setup,
            unowned,
            by_tenant: Mutex::new(Tenants {
                clients: HashMap::new(),
                sweep_at: SWEEP_AT_LEAST,
            }),
        })
    }

    /// The client of `tenant`: the one its sessions hold, or a new one.
    pub(crate) fn get(&self, tenant: Option<&str>) -> Result<Arc<reqwest::Client>, EgressError> {
        let Some(tenant) = tenant else {
            return Ok(self.unowned.clone());
        };
        let mut tenants = self.by_tenant.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = tenants.clients.get(tenant).and_then(Weak::upgrade) {
            return Ok(client);
        }
        let client = Arc::new(build(&self.setup)?);
        tenants.clients.insert(Arc::from(tenant), Arc::downgrade(&client));
        if tenants.clients.len() >= tenants.sweep_at {
            tenants.clients.retain(|_, c| c.strong_count() > 0);
            tenants.sweep_at = (tenants.clients.len() * 2).max(SWEEP_AT_LEAST);
        }
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
        // the pool looks for idle connections past this once per this long, so one is
        // closed 30 to 60 s after its last use: the README's 60 s
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(IDLE_PER_ORIGIN)
        .build()
        .map_err(|e| EgressError::Setup(e.without_url().to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_workspaces_client_lives_as_long_as_its_users_and_the_map_is_swept() {
        let clients = Clients::new(Setup {
            tls: crate::tls_config(&[]).unwrap(),
            resolver: Arc::new(crate::SystemResolver),
            allow: Arc::new(AllowList::default()),
            connect_timeout: Duration::from_secs(1),
        })
        .unwrap();
        let a = clients.get(Some("ws-a")).unwrap();
        assert!(
            Arc::ptr_eq(&a, &clients.get(Some("ws-a")).unwrap()),
            "shared while held"
        );
        let b = clients.get(Some("ws-b")).unwrap();
        assert!(!Arc::ptr_eq(&a, &b), "never another workspace's");
        assert!(Arc::ptr_eq(&clients.get(None).unwrap(), &clients.get(None).unwrap()));
        let weak = Arc::downgrade(&a);
        drop(a);
        assert!(
            weak.upgrade().is_none(),
            "gone with its last user, and its sockets with it"
        );
        assert!(!Arc::ptr_eq(&b, &clients.get(Some("ws-a")).unwrap()));
        // a thousand workspaces that came and went do not stay in the map
        for i in 0..1000 {
            clients.get(Some(&format!("ws-{i}"))).unwrap();
        }
        assert!(clients.tenants() < SWEEP_AT_LEAST, "{} kept", clients.tenants());
        drop(b);
    }
}
