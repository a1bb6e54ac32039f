"""POST /containers/create: moby's container.CreateRequest (Config embedded, HostConfig with Resources
embedded, NetworkingConfig), field by field with the Go types moby decodes into (api/types/container,
api/types/mount, api/types/network, go-units, go-connections/nat). Keys, null and type errors follow
Go's decoder (gotypes.py). What berth does with each key is app/runtime/createkeys.py.
"""
from __future__ import annotations

from app.api.schemas.gotypes import Bool, Empty, GoSchema, Int, List, Map, StrSlice, String, Struct


def _strings():
    return List(String())


def _string_map():
    return Map(String())


class HealthConfig(GoSchema):
    go_name = "HealthConfig"
    go_type = "container.HealthConfig"
    Test = _strings()
    Interval = Int("time.Duration")
    Timeout = Int("time.Duration")
    StartPeriod = Int("time.Duration")
    StartInterval = Int("time.Duration")
    Retries = Int("int")


class Config(GoSchema):
    """container.Config, embedded in CreateRequest: its fields sit at the top of the body."""
    go_name = "CreateRequest"
    go_type = "container.CreateRequest"
    Hostname = String()
    Domainname = String()
    User = String()
    AttachStdin = Bool()
    AttachStdout = Bool()
    AttachStderr = Bool()
    ExposedPorts = Map(Empty(), "nat.PortSet")
    Tty = Bool()
    OpenStdin = Bool()
    StdinOnce = Bool()
    Env = _strings()
    Cmd = StrSlice()
    Healthcheck = Struct(HealthConfig)
    ArgsEscaped = Bool()
    Image = String()
    Volumes = Map(Empty())
    WorkingDir = String()
    Entrypoint = StrSlice()
    NetworkDisabled = Bool()
    MacAddress = String()
    OnBuild = _strings()
    Labels = _string_map()
    StopSignal = String()
    StopTimeout = Int("int")
    Shell = StrSlice()


class LogConfig(GoSchema):
    go_name = "LogConfig"
    go_type = "container.LogConfig"
    Type = String()
    Config = _string_map()


class PortBinding(GoSchema):
    go_name = "PortBinding"
    go_type = "nat.PortBinding"
    HostIp = String()
    HostPort = String()


class RestartPolicy(GoSchema):
    go_name = "RestartPolicy"
    go_type = "container.RestartPolicy"
    Name = String("container.RestartPolicyMode")
    MaximumRetryCount = Int("int")


class WeightDevice(GoSchema):
    go_name = "WeightDevice"
    go_type = "blkiodev.WeightDevice"
    Path = String()
    Weight = Int("uint16")


class ThrottleDevice(GoSchema):
    go_name = "ThrottleDevice"
    go_type = "blkiodev.ThrottleDevice"
    Path = String()
    Rate = Int("uint64")


class DeviceMapping(GoSchema):
    go_name = "DeviceMapping"
    go_type = "container.DeviceMapping"
    PathOnHost = String()
    PathInContainer = String()
    CgroupPermissions = String()


class DeviceRequest(GoSchema):
    go_name = "DeviceRequest"
    go_type = "container.DeviceRequest"
    Driver = String()
    Count = Int("int")
    DeviceIDs = _strings()
    Capabilities = List(_strings(), "[][]string")
    Options = _string_map()


class Ulimit(GoSchema):
    go_name = "Ulimit"
    go_type = "units.Ulimit"
    Name = String()
    Hard = Int("int64")
    Soft = Int("int64")


class DriverConfig(GoSchema):
    go_name = "Driver"
    go_type = "mount.Driver"
    Name = String()
    Options = _string_map()


class BindOptions(GoSchema):
    go_name = "BindOptions"
    go_type = "mount.BindOptions"
    Propagation = String("mount.Propagation")
    NonRecursive = Bool()
    CreateMountpoint = Bool()
    ReadOnlyNonRecursive = Bool()
    ReadOnlyForceRecursive = Bool()


class VolumeOptions(GoSchema):
    go_name = "VolumeOptions"
    go_type = "mount.VolumeOptions"
    NoCopy = Bool()
    Labels = _string_map()
    Subpath = String()
    DriverConfig = Struct(DriverConfig)


class TmpfsOptions(GoSchema):
    go_name = "TmpfsOptions"
    go_type = "mount.TmpfsOptions"
    SizeBytes = Int("int64")
    Mode = Int("os.FileMode")
    Options = List(_strings(), "[][]string")


class ImageOptions(GoSchema):
    go_name = "ImageOptions"
    go_type = "mount.ImageOptions"
    Subpath = String()


class ClusterOptions(GoSchema):
    go_name = "ClusterOptions"
    go_type = "mount.ClusterOptions"


class Mount(GoSchema):
    go_name = "Mount"
    go_type = "mount.Mount"
    Type = String("mount.Type")
    Source = String()
    Target = String()
    ReadOnly = Bool()
    Consistency = String("mount.Consistency")
    BindOptions = Struct(BindOptions)
    VolumeOptions = Struct(VolumeOptions)
    TmpfsOptions = Struct(TmpfsOptions)
    ImageOptions = Struct(ImageOptions)         # decoded so that a misplaced one is refused (mounts.py)
    ClusterOptions = Struct(ClusterOptions)


class HostConfig(GoSchema):
    """container.HostConfig with container.Resources embedded (Go reports both under HostConfig)."""
    go_name = "HostConfig"
    go_type = "container.HostConfig"
    # Resources
    CpuShares = Int("int64")
    Memory = Int("int64")
    NanoCpus = Int("int64")
    CgroupParent = String()
    BlkioWeight = Int("uint16")
    BlkioWeightDevice = List(Struct(WeightDevice), "[]*blkiodev.WeightDevice")
    BlkioDeviceReadBps = List(Struct(ThrottleDevice), "[]*blkiodev.ThrottleDevice")
    BlkioDeviceWriteBps = List(Struct(ThrottleDevice), "[]*blkiodev.ThrottleDevice")
    BlkioDeviceReadIOps = List(Struct(ThrottleDevice), "[]*blkiodev.ThrottleDevice")
    BlkioDeviceWriteIOps = List(Struct(ThrottleDevice), "[]*blkiodev.ThrottleDevice")
    CpuPeriod = Int("int64")
    CpuQuota = Int("int64")
    CpuRealtimePeriod = Int("int64")
    CpuRealtimeRuntime = Int("int64")
    CpusetCpus = String()
    CpusetMems = String()
    Devices = List(Struct(DeviceMapping))
    DeviceCgroupRules = _strings()
    DeviceRequests = List(Struct(DeviceRequest))
    KernelMemory = Int("int64")
    KernelMemoryTCP = Int("int64")
    MemoryReservation = Int("int64")
    MemorySwap = Int("int64")
    MemorySwappiness = Int("int64")
    OomKillDisable = Bool()
    PidsLimit = Int("int64")
    Ulimits = List(Struct(Ulimit), "[]*units.Ulimit")
    CpuCount = Int("int64")
    CpuPercent = Int("int64")
    IOMaximumIOps = Int("uint64")
    IOMaximumBandwidth = Int("uint64")
    # HostConfig's own
    Binds = _strings()
    ContainerIDFile = String()
    LogConfig = Struct(LogConfig)
    NetworkMode = String("container.NetworkMode")
    PortBindings = Map(List(Struct(PortBinding)), "nat.PortMap")
    RestartPolicy = Struct(RestartPolicy)
    AutoRemove = Bool()
    VolumeDriver = String()
    VolumesFrom = _strings()
    ConsoleSize = List(Int("uint"), "[2]uint", length=2, zero=0)
    Annotations = _string_map()
    CapAdd = StrSlice()
    CapDrop = StrSlice()
    CgroupnsMode = String("container.CgroupnsMode")
    Dns = _strings()
    DnsOptions = _strings()
    DnsSearch = _strings()
    ExtraHosts = _strings()
    GroupAdd = _strings()
    IpcMode = String("container.IpcMode")
    Cgroup = String("container.CgroupSpec")
    Links = _strings()
    OomScoreAdj = Int("int")
    PidMode = String("container.PidMode")
    Privileged = Bool()
    PublishAllPorts = Bool()
    ReadonlyRootfs = Bool()
    SecurityOpt = _strings()
    StorageOpt = _string_map()
    Tmpfs = _string_map()
    UTSMode = String("container.UTSMode")
    UsernsMode = String("container.UsernsMode")
    ShmSize = Int("int64")
    Sysctls = _string_map()
    Runtime = String()
    Isolation = String("container.Isolation")
    Mounts = List(Struct(Mount))
    MaskedPaths = _strings()
    ReadonlyPaths = _strings()
    Init = Bool()


class EndpointIPAMConfig(GoSchema):
    go_name = "EndpointIPAMConfig"
    go_type = "network.EndpointIPAMConfig"
    IPv4Address = String()
    IPv6Address = String()
    LinkLocalIPs = _strings()


class EndpointSettings(GoSchema):
    go_name = "EndpointSettings"
    go_type = "network.EndpointSettings"
    IPAMConfig = Struct(EndpointIPAMConfig)
    Links = _strings()
    Aliases = _strings()
    MacAddress = String()
    DriverOpts = _string_map()
    GwPriority = Int("int")
    NetworkID = String()
    EndpointID = String()
    Gateway = String()
    IPAddress = String()
    IPPrefixLen = Int("int")
    IPv6Gateway = String()
    GlobalIPv6Address = String()
    GlobalIPv6PrefixLen = Int("int")
    DNSNames = _strings()


class NetworkingConfig(GoSchema):
    go_name = "NetworkingConfig"
    go_type = "network.NetworkingConfig"
    EndpointsConfig = Map(Struct(EndpointSettings), "map[string]*network.EndpointSettings")


class CreateRequest(Config):
    HostConfig = Struct(HostConfig)
    NetworkingConfig = Struct(NetworkingConfig)
