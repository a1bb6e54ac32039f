"""POST /networks/create, /networks/{id}/connect and /disconnect: moby's network.CreateRequest,
ConnectOptions and DisconnectOptions (api/types/network)."""
from __future__ import annotations

from app.api.schemas.container_create import EndpointSettings
from app.api.schemas.gotypes import Bool, GoSchema, List, Map, String, Struct


class IPAMConfig(GoSchema):
    go_name = "IPAMConfig"
    go_type = "network.IPAMConfig"
    Subnet = String()
    IPRange = String()
    Gateway = String()
    AuxiliaryAddresses = Map(String(), "map[string]string")


class IPAM(GoSchema):
    go_name = "IPAM"
    go_type = "network.IPAM"
    Driver = String()
    Options = Map(String(), "map[string]string")
    Config = List(Struct(IPAMConfig))


class ConfigReference(GoSchema):
    go_name = "ConfigReference"
    go_type = "network.ConfigReference"
    Network = String()


class CreateRequest(GoSchema):
    go_name = "CreateRequest"
    go_type = "network.CreateRequest"
    Name = String()
    CheckDuplicate = Bool()
    Driver = String()
    Scope = String()
    EnableIPv4 = Bool()
    EnableIPv6 = Bool()
    IPAM = Struct(IPAM)
    Internal = Bool()
    Attachable = Bool()
    Ingress = Bool()
    ConfigOnly = Bool()
    ConfigFrom = Struct(ConfigReference)
    Options = Map(String(), "map[string]string")
    Labels = Map(String(), "map[string]string")


class ConnectRequest(GoSchema):
    go_name = "ConnectOptions"
    go_type = "network.ConnectOptions"
    Container = String()
    EndpointConfig = Struct(EndpointSettings)


class DisconnectRequest(GoSchema):
    go_name = "DisconnectOptions"
    go_type = "network.DisconnectOptions"
    Container = String()
    Force = Bool()
