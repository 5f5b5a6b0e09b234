//! The shard mesh: a bounded channel from every shard to every other
//! (glommio's full channel mesh). A shard's id is its place in the mesh.

use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use glommio::channels::shared_channel::ConnectedReceiver;

/// Made once before the shards start; every shard joins a clone of it.
pub struct MeshPlan<T: Send + 'static>(MeshBuilder<T, Full>);

impl<T: Send + 'static> Clone for MeshPlan<T> {
    fn clone(&self) -> Self {
        MeshPlan(self.0.clone())
    }
}

impl<T: Send + 'static> std::fmt::Debug for MeshPlan<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshPlan")
            .field("shards", &self.0.nr_peers())
            .finish()
    }
}

impl<T: Send + 'static> MeshPlan<T> {
    /// A mesh of `shards` shards with `capacity` messages per channel.
    pub fn new(shards: usize, capacity: usize) -> Self {
        MeshPlan(MeshBuilder::full(shards, capacity))
    }
}

/// One shard's end of the mesh.
pub struct ShardMesh<T: Send + 'static> {
    senders: Senders<T>,
    receivers: Option<Receivers<T>>,
}

impl<T: Send + 'static> std::fmt::Debug for ShardMesh<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardMesh")
            .field("shard", &self.shard())
            .finish()
    }
}

/// Messages from one other shard.
pub struct Incoming<T: Send + 'static>(ConnectedReceiver<T>);

impl<T: Send + 'static> std::fmt::Debug for Incoming<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Incoming")
    }
}

impl<T: Send + 'static> Incoming<T> {
    /// The next message; `None` once the sending shard is gone.
    pub async fn recv(&self) -> Option<T> {
        engine::rt::quiet(self.0.recv()).await
    }
}

impl<T: Send + 'static> ShardMesh<T> {
    /// Joins the mesh; resolves once every shard has joined.
    pub async fn join(plan: MeshPlan<T>) -> std::io::Result<Self> {
        let (senders, receivers) = plan.0.join().await.map_err(std::io::Error::from)?;
        Ok(ShardMesh {
            senders,
            receivers: Some(receivers),
        })
    }

    /// This shard's id (0-based).
    pub fn shard(&self) -> u32 {
        self.senders.peer_id() as u32
    }

    pub fn shards(&self) -> u32 {
        self.senders.nr_consumers() as u32
    }

    /// Sends to another shard, waiting while its channel is full
    /// (backpressure). Returns the message if that shard is gone.
    pub async fn send(&self, to: u32, msg: T) -> Result<(), T> {
        // glommio adds a waker clone per pending poll of a full channel;
        // a connection task woken by its writer would pile them up.
        engine::rt::quiet(self.senders.send_to(to as usize, msg))
            .await
            .map_err(|e| match e {
                glommio::GlommioError::Closed(glommio::ResourceType::Channel(msg))
                | glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(msg)) => msg,
                other => unreachable!("send_to to a valid peer fails only as closed: {other}"),
            })
    }

    /// The channels from every other shard (once).
    pub fn take_incoming(&mut self) -> Vec<Incoming<T>> {
        self.receivers.take().map_or_else(Vec::new, |mut r| {
            r.streams()
                .into_iter()
                .map(|(_, rx)| Incoming(rx))
                .collect()
        })
    }
}
