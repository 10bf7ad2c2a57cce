//! [`ZenohConfig`]: which bus to join, and how to reach the zenoh network.

use std::time::Duration;

use crate::{Error, Result};

/// How an endpoint joins a bus on a zenoh network
/// ([`Endpoint::join_zenoh`](crate::Endpoint::join_zenoh)).
///
/// A **bus** is a key prefix (`lahja/<bus>/...`): endpoints that joined the
/// same bus are peers, and several buses can share one zenoh network. The
/// locators say where this endpoint listens and whom it connects to;
/// zenoh's gossip then finds the rest of the bus through them. Multicast
/// scouting is off unless asked for, so nothing is sent to the network
/// that the locators do not name.
///
/// ```
/// use lahja::zenoh::ZenohConfig;
/// use std::time::Duration;
///
/// let config = ZenohConfig::new("my-bus")
///     .listen("tcp/127.0.0.1:7447")
///     .connect("tcp/10.0.0.2:7447")
///     .multicast_scouting(false)
///     .lease(Duration::from_secs(2));
/// assert_eq!(config.bus(), "my-bus");
/// ```
#[derive(Debug, Clone)]
pub struct ZenohConfig {
    bus: String,
    listen: Vec<String>,
    connect: Vec<String>,
    multicast_scouting: Option<bool>,
    lease: Option<Duration>,
    /// A full zenoh config given by the user: nothing in it is overridden
    /// except what the builder methods set.
    base: Option<zenoh::Config>,
}

impl ZenohConfig {
    /// Joins `bus` as a zenoh peer that listens and connects only where
    /// [`listen`](Self::listen) and [`connect`](Self::connect) say, with
    /// multicast scouting off, reconnecting quickly (every 100 ms at
    /// first, then at most every second) after a link is lost, and with
    /// zenoh's priority queues off (`transport/unicast/qos/enabled`): with
    /// them, a token's undeclaration (sent at control priority) overtakes
    /// the data queued before it, and a peer that stops would be seen to
    /// go before its last events arrive.
    ///
    /// ```
    /// let config = lahja::zenoh::ZenohConfig::new("my-bus");
    /// assert_eq!(config.bus(), "my-bus");
    /// ```
    pub fn new(bus: impl Into<String>) -> ZenohConfig {
        ZenohConfig {
            bus: bus.into(),
            listen: Vec::new(),
            connect: Vec::new(),
            multicast_scouting: Some(false),
            lease: None,
            base: None,
        }
    }

    /// Joins `bus` with `config` as it is: zenoh's own defaults apply to
    /// what it does not set (multicast scouting included). The builder
    /// methods still add to it. Set `transport/unicast/qos/enabled` to
    /// `false` in it (as [`new`](Self::new) does) unless you know why not:
    /// with priority queues a peer that stops may be seen to go before
    /// its last frames arrive.
    ///
    /// ```
    /// let mut zenoh_config = zenoh::Config::default();
    /// zenoh_config.insert_json5("scouting/multicast/enabled", "false").unwrap();
    /// let config = lahja::zenoh::ZenohConfig::with_zenoh_config("my-bus", zenoh_config);
    /// assert_eq!(config.bus(), "my-bus");
    /// ```
    pub fn with_zenoh_config(bus: impl Into<String>, config: zenoh::Config) -> ZenohConfig {
        ZenohConfig {
            bus: bus.into(),
            listen: Vec::new(),
            connect: Vec::new(),
            multicast_scouting: None,
            lease: None,
            base: Some(config),
        }
    }

    /// Listens on a zenoh locator (`tcp/127.0.0.1:7447`,
    /// `unixsock-stream//tmp/bus.sock`...); any number of them.
    ///
    /// ```
    /// let config = lahja::zenoh::ZenohConfig::new("my-bus").listen("tcp/0.0.0.0:7447");
    /// # let _ = config;
    /// ```
    pub fn listen(mut self, locator: impl Into<String>) -> ZenohConfig {
        self.listen.push(locator.into());
        self
    }

    /// Connects to a zenoh locator (another endpoint's `listen`, or a zenoh
    /// router), retrying in the background while it is unreachable.
    ///
    /// ```
    /// let config = lahja::zenoh::ZenohConfig::new("my-bus").connect("tcp/10.0.0.2:7447");
    /// # let _ = config;
    /// ```
    pub fn connect(mut self, locator: impl Into<String>) -> ZenohConfig {
        self.connect.push(locator.into());
        self
    }

    /// Whether to find peers by multicast scouting on the local network
    /// (off by default with [`new`](Self::new)).
    ///
    /// ```
    /// let config = lahja::zenoh::ZenohConfig::new("my-bus").multicast_scouting(true);
    /// # let _ = config;
    /// ```
    pub fn multicast_scouting(mut self, enabled: bool) -> ZenohConfig {
        self.multicast_scouting = Some(enabled);
        self
    }

    /// How long a silent link lives (zenoh's lease; 10 s by default). A
    /// peer whose link is cut is removed, and its pending requests fail
    /// with [`Error::RemoteDisconnected`], within about this time.
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = lahja::zenoh::ZenohConfig::new("my-bus").lease(Duration::from_secs(2));
    /// # let _ = config;
    /// ```
    pub fn lease(mut self, lease: Duration) -> ZenohConfig {
        self.lease = Some(lease);
        self
    }

    /// The bus this config joins.
    ///
    /// ```
    /// assert_eq!(lahja::zenoh::ZenohConfig::new("b").bus(), "b");
    /// ```
    pub fn bus(&self) -> &str {
        &self.bus
    }

    /// The zenoh config to open the session with.
    pub(super) fn zenoh_config(&self) -> Result<zenoh::Config> {
        let mut config = self.base.clone().unwrap_or_default();
        let mut set = |key: &str, value: String| {
            config
                .insert_json5(key, &value)
                .map_err(|e| Error::Zenoh(format!("cannot set `{key}` to {value}: {e}")))
        };
        let json = |list: &[String]| {
            let quoted: Vec<String> = list.iter().map(|l| format!("{l:?}")).collect();
            format!("[{}]", quoted.join(","))
        };
        if self.base.is_none() {
            set("mode", "\"peer\"".into())?;
            // Not zenoh's default of every interface: only what is asked.
            set("listen/endpoints", json(&self.listen))?;
            set("transport/unicast/qos/enabled", "false".into())?;
            set(
                "connect/retry",
                "{period_init_ms: 100, period_max_ms: 1000, period_increase_factor: 2}".into(),
            )?;
        } else if !self.listen.is_empty() {
            set("listen/endpoints", json(&self.listen))?;
        }
        if !self.connect.is_empty() {
            set("connect/endpoints", json(&self.connect))?;
        }
        if let Some(enabled) = self.multicast_scouting {
            set("scouting/multicast/enabled", enabled.to_string())?;
        }
        if let Some(lease) = self.lease {
            let millis = lease.as_millis().max(1);
            set("transport/link/tx/lease", millis.to_string())?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_sets_what_it_says() {
        let config = ZenohConfig::new("b")
            .listen("tcp/127.0.0.1:0")
            .connect("tcp/127.0.0.1:7447")
            .lease(Duration::from_millis(1500))
            .zenoh_config()
            .unwrap();
        let get = |key: &str| config.get_json(key).unwrap();
        assert_eq!(get("mode"), "\"peer\"");
        assert_eq!(get("listen/endpoints"), r#"["tcp/127.0.0.1:0"]"#);
        assert_eq!(get("connect/endpoints"), r#"["tcp/127.0.0.1:7447"]"#);
        assert_eq!(get("scouting/multicast/enabled"), "false");
        assert_eq!(get("transport/link/tx/lease"), "1500");
        assert_eq!(get("transport/unicast/qos/enabled"), "false");
    }

    #[test]
    fn a_full_config_is_kept() {
        let mut base = zenoh::Config::default();
        base.insert_json5("scouting/multicast/enabled", "true")
            .unwrap();
        let config = ZenohConfig::with_zenoh_config("b", base)
            .zenoh_config()
            .unwrap();
        assert_eq!(
            config.get_json("scouting/multicast/enabled").unwrap(),
            "true"
        );
    }

    #[test]
    fn a_bad_locator_is_a_clear_error() {
        let error = ZenohConfig::new("b")
            .listen("not a locator")
            .zenoh_config()
            .unwrap_err();
        assert!(matches!(error, Error::Zenoh(_)), "{error}");
    }
}
