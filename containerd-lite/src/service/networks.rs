//! Networks: the ttrpc adapter over `network`.

use std::sync::Arc;

use berth_proto::networks::{
    ConnectNetworkRequest, ConnectNetworkResponse, CreateNetworkRequest, DisconnectNetworkRequest,
    DisconnectNetworkResponse, GetNetworkRequest, ListNetworksRequest, ListNetworksResponse, Network as PbNetwork,
    NetworkResponse, PruneNetworksRequest, PruneNetworksResponse, RemoveNetworkRequest, RemoveNetworkResponse,
};
use ttrpc::asynchronous::TtrpcContext;
use ttrpc::Code;

use super::{blocking, internal, invalid, not_found, status};
use crate::daemon::Berthd;
use crate::network::{self, attach, CreateRequest, NetworkRecord, Networks};

pub struct NetworksService(pub Arc<Berthd>);

/// The API's view of a record, with the containers connected to it.
fn to_pb(d: &Berthd, net: &NetworkRecord) -> ttrpc::Result<PbNetwork> {
    let connected = network::connected(d, net).map_err(internal)?;
    let running: Vec<_> = connected.into_iter().filter(|(id, _, _)| d.tasks.get(id).is_some()).collect();
    Ok(PbNetwork {
        id: net.id.clone(),
        name: net.name.clone(),
        driver: net.driver.clone(),
        scope: "local".into(),
        labels: net.labels.clone().into_iter().collect(),
        internal: net.internal,
        created_at: net.created_at,
        inspect: serde_json::to_vec(&Networks::inspect(net, &running)).unwrap_or_default(),
        ..Default::default()
    })
}

/// A lookup failure as the API reports it: docker's "network X not found" is a 404.
fn lookup_error(e: anyhow::Error) -> ttrpc::Error {
    if e.downcast_ref::<network::NotFound>().is_some() {
        not_found(e)
    } else {
        invalid(super::one_line(&e))
    }
}

#[async_trait::async_trait]
impl berth_proto::networks_ttrpc::Networks for NetworksService {
    async fn create(&self, _: &TtrpcContext, req: CreateNetworkRequest) -> ttrpc::Result<NetworkResponse> {
        let d = self.0.clone();
        blocking(move || {
            let request = CreateRequest {
                name: req.name,
                driver: req.driver,
                subnet: Some(req.subnet).filter(|s| !s.is_empty()),
                gateway: Some(req.gateway).filter(|s| !s.is_empty()),
                ip_range: Some(req.ip_range).filter(|s| !s.is_empty()),
                internal: req.internal,
                labels: req.labels.into_iter().collect(),
            };
            let net = d.networks.create(&request, "").map_err(|e| {
                let msg = super::one_line(&e);
                if msg.contains("already exists") {
                    status(Code::ALREADY_EXISTS, msg)
                } else {
                    invalid(msg)
                }
            })?;
            d.events.publish("/networks/create", serde_json::json!({"id": net.id, "name": net.name}));
            Ok(NetworkResponse { network: protobuf::MessageField::some(to_pb(&d, &net)?), ..Default::default() })
        })
        .await
    }

    async fn get(&self, _: &TtrpcContext, req: GetNetworkRequest) -> ttrpc::Result<NetworkResponse> {
        let d = self.0.clone();
        blocking(move || {
            let net = d.networks.store.lookup(&req.id).map_err(lookup_error)?;
            Ok(NetworkResponse { network: protobuf::MessageField::some(to_pb(&d, &net)?), ..Default::default() })
        })
        .await
    }

    async fn list(&self, _: &TtrpcContext, _: ListNetworksRequest) -> ttrpc::Result<ListNetworksResponse> {
        let d = self.0.clone();
        blocking(move || {
            let mut nets = d.networks.store.list().map_err(internal)?;
            nets.sort_by(|a, b| a.name.cmp(&b.name));
            let networks = nets.iter().map(|n| to_pb(&d, n)).collect::<ttrpc::Result<Vec<_>>>()?;
            Ok(ListNetworksResponse { networks, ..Default::default() })
        })
        .await
    }

    async fn remove(&self, _: &TtrpcContext, req: RemoveNetworkRequest) -> ttrpc::Result<RemoveNetworkResponse> {
        let d = self.0.clone();
        blocking(move || {
            let net = d.networks.store.lookup(&req.id).map_err(lookup_error)?;
            network::remove(&d, &net).map_err(|e| status(Code::FAILED_PRECONDITION, super::one_line(&e)))?;
            d.events.publish("/networks/delete", serde_json::json!({"id": net.id, "name": net.name}));
            Ok(RemoveNetworkResponse { id: net.id, ..Default::default() })
        })
        .await
    }

    async fn prune(&self, _: &TtrpcContext, _: PruneNetworksRequest) -> ttrpc::Result<PruneNetworksResponse> {
        let d = self.0.clone();
        blocking(move || {
            let names = network::prune(&d).map_err(internal)?;
            Ok(PruneNetworksResponse { names, ..Default::default() })
        })
        .await
    }

    async fn connect(&self, _: &TtrpcContext, req: ConnectNetworkRequest) -> ttrpc::Result<ConnectNetworkResponse> {
        let d = self.0.clone();
        let record = super::containers::lookup(&d, &req.container).await?;
        blocking(move || {
            let net = d.networks.store.lookup(&req.network).map_err(lookup_error)?;
            let ip = Some(req.ip).filter(|s| !s.is_empty());
            attach::connect(&d, &record, &net, ip, req.aliases).map_err(|e| invalid(super::one_line(&e)))?;
            Ok(ConnectNetworkResponse::default())
        })
        .await
    }

    async fn disconnect(
        &self,
        _: &TtrpcContext,
        req: DisconnectNetworkRequest,
    ) -> ttrpc::Result<DisconnectNetworkResponse> {
        let d = self.0.clone();
        let record = super::containers::lookup(&d, &req.container).await?;
        blocking(move || {
            let net = d.networks.store.lookup(&req.network).map_err(lookup_error)?;
            attach::disconnect(&d, &record, &net, req.force).map_err(|e| invalid(super::one_line(&e)))?;
            Ok(DisconnectNetworkResponse::default())
        })
        .await
    }
}
