//! The broker's life in the cluster: it registers (with an incarnation of
//! its own, so a restart is told from a second process with the same id),
//! then heartbeats; once its registration is applied here it is caught up
//! and says so, and the controller unfences it. A broker the controller
//! fenced or forgot (STALE_BROKER_EPOCH) registers again.

use std::rc::Rc;
use std::time::Duration;

use replication::metadata::Endpoint;
use replication::quorum::ControllerRequest;

use super::Cluster;
use crate::broker::Shard;

/// How often a broker not yet registered or unfenced asks again.
const JOINING_INTERVAL: Duration = Duration::from_millis(250);

pub(super) async fn run(shard: Rc<Shard>, cluster: Rc<Cluster>) {
    let node_id = cluster.config.node_id;
    let incarnation = cluster.incarnation;
    let endpoints: Vec<Endpoint> = shard
        .node
        .listeners
        .iter()
        .map(|l| Endpoint {
            name: l.name.clone(),
            host: l.host.clone(),
            port: u16::try_from(l.port).unwrap_or(0),
        })
        .collect();
    let mut fenced_logged = None;
    while !cluster.leaving.get() {
        let state = shard.metadata();
        let mine = state
            .broker(node_id)
            .filter(|b| b.incarnation == incarnation)
            .cloned();
        let request = match &mine {
            None => ControllerRequest::RegisterBroker {
                broker_id: node_id,
                incarnation,
                endpoints: endpoints.clone(),
            },
            Some(broker) => ControllerRequest::Heartbeat {
                broker_id: node_id,
                broker_epoch: broker.broker_epoch,
                caught_up: true,
                want_fence: false,
            },
        };
        if cluster.leaving.get() {
            return;
        }
        if let Err(e) = cluster.attempt(request).await {
            tracing::debug!(code = e.code, message = %e.message, "heartbeat or registration refused");
        }
        let fenced = mine.as_ref().is_none_or(|b| b.fenced);
        if fenced_logged != Some(fenced) {
            tracing::info!(
                node_id,
                fenced,
                registered = mine.is_some(),
                "broker state in the cluster"
            );
            fenced_logged = Some(fenced);
        }
        let pause = if fenced {
            JOINING_INTERVAL
        } else {
            cluster.config.heartbeat_interval
        };
        engine::rt::sleep(pause).await;
    }
}
