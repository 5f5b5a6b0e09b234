//! The Kafka listeners a broker serves, as Kafka names them: `listeners =
//! ["CLIENT://0.0.0.0:9093", "INTERNAL://10.0.0.5:9094"]`, each name's
//! security protocol from `listener-security-protocol-map` (or the name
//! itself when it is one: `SASL_SSL://:9093`), the address each tells
//! clients from `advertised-listeners`, and the one brokers use for each
//! other's Kafka requests (`inter-broker-listener-name`, the first by
//! default). `--listen` (`listen`) is the one-listener shorthand: named by
//! its protocol, which the `ssl-*` and `sasl-*` keys make.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::{Context, bail, ensure};

/// Kafka's security protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    fn parse(name: &str) -> Option<Protocol> {
        match name {
            "PLAINTEXT" => Some(Protocol::Plaintext),
            "SSL" => Some(Protocol::Ssl),
            "SASL_PLAINTEXT" => Some(Protocol::SaslPlaintext),
            "SASL_SSL" => Some(Protocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Plaintext => "PLAINTEXT",
            Protocol::Ssl => "SSL",
            Protocol::SaslPlaintext => "SASL_PLAINTEXT",
            Protocol::SaslSsl => "SASL_SSL",
        }
    }

    pub fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }

    pub fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    fn of(sasl: bool, tls: bool) -> Protocol {
        match (sasl, tls) {
            (false, false) => Protocol::Plaintext,
            (false, true) => Protocol::Ssl,
            (true, false) => Protocol::SaslPlaintext,
            (true, true) => Protocol::SaslSsl,
        }
    }
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub listen: SocketAddr,
    /// Where clients of this listener are told to connect.
    pub advertised_host: String,
    pub advertised_port: u16,
    pub protocol: Protocol,
}

/// What the flags and the file say about listeners.
#[derive(Debug, Default)]
pub struct ListenerKeys<'a> {
    pub listen: Option<SocketAddr>,
    pub advertised_listener: Option<SocketAddr>,
    pub listeners: Option<&'a [String]>,
    pub advertised_listeners: Option<&'a [String]>,
    pub protocol_map: Option<&'a BTreeMap<String, String>>,
    pub inter_broker_listener_name: Option<&'a str>,
    /// Whether `sasl-*` and `ssl-*` keys configure SASL and TLS.
    pub sasl: bool,
    pub tls: bool,
    /// Whether the broker is a cluster member (its peers use the
    /// inter-broker listener).
    pub in_cluster: bool,
    /// Whether `inter-broker-sasl-*` say how to authenticate to peers.
    pub inter_broker_sasl: bool,
    /// Whether `ssl-ca` says which CAs sign the peers' certificates.
    pub ssl_ca: bool,
    /// Whether the `ssl-*` files serve the internal listener
    /// (`internal-ssl`), so that no Kafka listener needs TLS.
    pub internal_ssl: bool,
}

/// `NAME://HOST:PORT` (HOST empty: every interface; IPv6 in brackets).
fn parse_url(url: &str) -> anyhow::Result<(String, String, u16)> {
    let (name, address) = url
        .split_once("://")
        .with_context(|| format!("{url:?} is not NAME://HOST:PORT"))?;
    let (host, port) = address
        .rsplit_once(':')
        .with_context(|| format!("{url:?} has no port"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("{url:?}: {port:?} is not a port"))?;
    ensure!(
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "{url:?}: the listener name must be letters, digits, '_' or '-'"
    );
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((name.to_uppercase(), host.to_string(), port))
}

/// The listeners, in order, and the inter-broker listener's name.
pub fn resolve(keys: &ListenerKeys<'_>) -> anyhow::Result<(Vec<Listener>, String)> {
    let listeners = match keys.listeners {
        None => {
            let listen = keys
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9092)));
            let advertised = keys.advertised_listener.unwrap_or(listen);
            ensure!(
                keys.advertised_listeners.is_none(),
                "advertised-listeners goes with listeners (advertised-listener with listen)"
            );
            let protocol = Protocol::of(keys.sasl, keys.tls);
            vec![Listener {
                name: protocol.name().to_string(),
                listen,
                advertised_host: advertised.ip().to_string(),
                advertised_port: advertised.port(),
                protocol,
            }]
        }
        Some(urls) => named(urls, keys)?,
    };
    for listener in &listeners {
        ensure!(
            !listener.protocol.sasl() || keys.sasl,
            "listener {} is {}: sasl-enabled-mechanisms and sasl-users are needed",
            listener.name,
            listener.protocol.name()
        );
        ensure!(
            !listener.protocol.tls() || keys.tls,
            "listener {} is {}: ssl-certificate and ssl-key are needed",
            listener.name,
            listener.protocol.name()
        );
    }
    ensure!(
        !keys.sasl || listeners.iter().any(|l| l.protocol.sasl()),
        "SASL is configured but no listener is SASL_PLAINTEXT or SASL_SSL"
    );
    ensure!(
        !keys.tls || keys.internal_ssl || listeners.iter().any(|l| l.protocol.tls()),
        "TLS is configured but no listener is SSL or SASL_SSL (nor internal-ssl set)"
    );
    let inter_broker = match keys.inter_broker_listener_name {
        Some(name) => name.to_uppercase(),
        None => listeners
            .first()
            .map(|l| l.name.clone())
            .unwrap_or_default(),
    };
    let Some(peer_listener) = listeners.iter().find(|l| l.name == inter_broker) else {
        bail!("inter-broker-listener-name {inter_broker:?} is not a listener");
    };
    ensure!(
        !keys.in_cluster || !peer_listener.protocol.sasl() || keys.inter_broker_sasl,
        "the inter-broker listener {} is {}: brokers authenticate to each other with \
         inter-broker-sasl-mechanism, inter-broker-sasl-user and inter-broker-sasl-password \
         (a user of sasl-users or of the cluster's SCRAM users)",
        peer_listener.name,
        peer_listener.protocol.name()
    );
    ensure!(
        !keys.in_cluster || !peer_listener.protocol.tls() || keys.ssl_ca,
        "the inter-broker listener {} is {}: brokers check each other's certificates \
         against ssl-ca, which is needed",
        peer_listener.name,
        peer_listener.protocol.name()
    );
    Ok((listeners, inter_broker))
}

fn named(urls: &[String], keys: &ListenerKeys<'_>) -> anyhow::Result<Vec<Listener>> {
    ensure!(
        keys.listen.is_none() && keys.advertised_listener.is_none(),
        "listen/advertised-listener and listeners: use one or the other"
    );
    ensure!(!urls.is_empty(), "listeners is empty");
    let map: BTreeMap<String, Protocol> = keys
        .protocol_map
        .into_iter()
        .flatten()
        .map(|(name, protocol)| {
            Protocol::parse(&protocol.to_uppercase())
                .map(|p| (name.to_uppercase(), p))
                .with_context(|| {
                    format!(
                        "listener-security-protocol-map: {protocol:?} is not a security protocol"
                    )
                })
        })
        .collect::<anyhow::Result<_>>()?;
    let mut advertised: BTreeMap<String, (String, u16)> = BTreeMap::new();
    for url in keys.advertised_listeners.into_iter().flatten() {
        let (name, host, port) = parse_url(url).context("advertised-listeners")?;
        ensure!(
            !host.is_empty(),
            "advertised-listeners: {url:?} needs a host"
        );
        advertised.insert(name, (host, port));
    }
    let mut listeners: Vec<Listener> = Vec::with_capacity(urls.len());
    for url in urls {
        let (name, host, port) = parse_url(url).context("listeners")?;
        let ip = if host.is_empty() {
            std::net::IpAddr::from([0, 0, 0, 0])
        } else {
            host.parse()
                .with_context(|| format!("listeners: {url:?}: {host:?} is not an IP address"))?
        };
        let listen = SocketAddr::new(ip, port);
        let protocol = map
            .get(&name)
            .copied()
            .or_else(|| Protocol::parse(&name))
            .with_context(|| {
                format!("listener {name}: no security protocol (listener-security-protocol-map)")
            })?;
        ensure!(
            listeners.iter().all(|l| l.name != name),
            "listeners: {name} twice"
        );
        ensure!(
            listeners.iter().all(|l| l.listen.port() != port),
            "listeners: port {port} twice"
        );
        let (advertised_host, advertised_port) = advertised
            .remove(&name)
            .unwrap_or_else(|| (listen.ip().to_string(), port));
        listeners.push(Listener {
            name,
            listen,
            advertised_host,
            advertised_port,
            protocol,
        });
    }
    if let Some(name) = advertised.keys().next() {
        bail!("advertised-listeners: {name} is not a listener");
    }
    Ok(listeners)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_listener_is_named_by_its_protocol() {
        let keys = ListenerKeys {
            listen: Some("0.0.0.0:9093".parse().unwrap()),
            advertised_listener: Some("10.0.0.5:9093".parse().unwrap()),
            sasl: true,
            tls: true,
            ..ListenerKeys::default()
        };
        let (listeners, inter_broker) = resolve(&keys).unwrap();
        assert_eq!(listeners.len(), 1);
        assert_eq!(listeners[0].name, "SASL_SSL");
        assert_eq!(listeners[0].advertised_host, "10.0.0.5");
        assert_eq!(inter_broker, "SASL_SSL");
        let default = resolve(&ListenerKeys::default()).unwrap().0;
        assert_eq!(
            default[0].listen,
            "127.0.0.1:9092".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(default[0].protocol, Protocol::Plaintext);
    }

    #[test]
    fn named_listeners_take_their_protocols_and_advertised_addresses() {
        let urls = strings(&[
            "CLIENT://:9093",
            "internal://127.0.0.1:9094",
            "SSL://[::1]:9095",
        ]);
        let advertised = strings(&["CLIENT://broker1.example:9093"]);
        let map = BTreeMap::from([
            ("CLIENT".to_string(), "SASL_SSL".to_string()),
            ("INTERNAL".to_string(), "PLAINTEXT".to_string()),
        ]);
        let keys = ListenerKeys {
            listeners: Some(&urls),
            advertised_listeners: Some(&advertised),
            protocol_map: Some(&map),
            inter_broker_listener_name: Some("INTERNAL"),
            sasl: true,
            tls: true,
            in_cluster: true,
            ..ListenerKeys::default()
        };
        let (listeners, inter_broker) = resolve(&keys).unwrap();
        let summary: Vec<(&str, Protocol, String, u16)> = listeners
            .iter()
            .map(|l| {
                let at = (l.advertised_host.clone(), l.advertised_port);
                (l.name.as_str(), l.protocol, at.0, at.1)
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "CLIENT",
                    Protocol::SaslSsl,
                    "broker1.example".to_string(),
                    9093
                ),
                (
                    "INTERNAL",
                    Protocol::Plaintext,
                    "127.0.0.1".to_string(),
                    9094
                ),
                ("SSL", Protocol::Ssl, "::1".to_string(), 9095),
            ]
        );
        assert_eq!(
            listeners[0].listen,
            "0.0.0.0:9093".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(inter_broker, "INTERNAL");
    }

    #[test]
    fn inconsistent_listeners_are_refused_with_the_reason() {
        let refused = |keys: ListenerKeys<'_>, says: &str| {
            let error = format!("{:#}", resolve(&keys).unwrap_err());
            assert!(error.contains(says), "{error}");
        };
        let urls = strings(&["CLIENT://:9093"]);
        refused(
            ListenerKeys {
                listeners: Some(&urls),
                ..ListenerKeys::default()
            },
            "no security protocol",
        );
        let sasl_only = strings(&["SASL_PLAINTEXT://:9093"]);
        refused(
            ListenerKeys {
                listeners: Some(&sasl_only),
                ..ListenerKeys::default()
            },
            "sasl-enabled-mechanisms and sasl-users are needed",
        );
        refused(
            ListenerKeys {
                listeners: Some(&sasl_only),
                sasl: true,
                in_cluster: true,
                ..ListenerKeys::default()
            },
            "inter-broker-sasl-mechanism",
        );
        let ssl_only = strings(&["SSL://:9093"]);
        refused(
            ListenerKeys {
                listeners: Some(&ssl_only),
                tls: true,
                in_cluster: true,
                ..ListenerKeys::default()
            },
            "ssl-ca, which is needed",
        );
        let twice = strings(&["PLAINTEXT://:9093", "SSL://:9093"]);
        refused(
            ListenerKeys {
                listeners: Some(&twice),
                tls: true,
                ..ListenerKeys::default()
            },
            "port 9093 twice",
        );
        refused(
            ListenerKeys {
                listen: Some("127.0.0.1:9092".parse().unwrap()),
                listeners: Some(&urls),
                ..ListenerKeys::default()
            },
            "one or the other",
        );
        refused(
            ListenerKeys {
                sasl: true,
                tls: false,
                listeners: Some(&strings(&["PLAINTEXT://:9092"])),
                ..ListenerKeys::default()
            },
            "no listener is SASL",
        );
        let plain = strings(&["PLAINTEXT://:9092"]);
        refused(
            ListenerKeys {
                tls: true,
                listeners: Some(&plain),
                ..ListenerKeys::default()
            },
            "no listener is SSL",
        );
        // The ssl-* files may serve the internal listener alone.
        let internal_only = ListenerKeys {
            tls: true,
            internal_ssl: true,
            in_cluster: true,
            listeners: Some(&plain),
            ..ListenerKeys::default()
        };
        assert!(resolve(&internal_only).is_ok());
    }
}
