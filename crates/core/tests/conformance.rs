//! The in-memory implementations pass the conformance suites.

use std::time::Duration;

use ballot_core::testkit::{
    BoxFuture, TestEntry, TestHardState, TransportHarness, storage_conformance, transport_conformance,
};
use ballot_core::{MemNetwork, MemStore, MemTransport, NodeId};

#[test]
fn mem_store_conforms() {
    storage_conformance(|| {
        let store: MemStore<TestEntry, TestHardState> = MemStore::new();
        move || store.clone()
    });
}

struct MemHarness {
    net: MemNetwork,
}

impl TransportHarness for MemHarness {
    type T = MemTransport;

    fn ids(&self) -> Vec<NodeId> {
        vec![NodeId(1), NodeId(2), NodeId(3)]
    }

    fn start(&mut self, id: NodeId) -> BoxFuture<'_, MemTransport> {
        let t = self.net.join(id);
        Box::pin(async move { t })
    }

    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        // No runtime here: a thread-backed timer future.
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        std::thread::spawn(move || {
            std::thread::sleep(d);
            let _ = tx.send(());
        });
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[test]
fn mem_transport_conforms() {
    let net = MemNetwork::new(64, 64 * 1024);
    futures::executor::block_on(transport_conformance(MemHarness { net }));
}
