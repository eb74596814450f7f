"""The types of KubeletConfiguration (kubelet.config.k8s.io/v1beta1), to check user values before anything is written.

Written down by us from the upstream API: kubernetes/kubernetes
staging/src/k8s.io/kubelet/config/v1beta1/types.go (KubeletConfiguration and the types it embeds), with
``logging`` from k8s.io/component-base/logs/api/v1 (LoggingConfiguration), ``tracing`` from
k8s.io/component-base/tracing/api/v1 and ``registerWithTaints`` from k8s.io/api/core/v1 (Taint). Go types map
to what the kubelet's JSON decoder accepts:

======================  ===================  =====================================================================
kind here               Go type              accepted JSON/YAML value
======================  ===================  =====================================================================
bool                    bool, *bool          true / false (not "true")
int32, int64, uint32    int32, *int32 ...    an integer in range (not 1.5, not "10", not true)
float                   *float64             a number
string                  string (and enums)   a string
duration                metav1.Duration      a Go duration string: "30s", "2m30s", "0" (not 30)
quantity                resource.Quantity    a string ("100Mi") or a number
strings / int32s        []string / []int32   a list of them
map:string / map:bool   map[string]string..  a mapping of them ("memory.available": "100Mi")
map:strings             map[string][]string  a mapping of lists of strings
map:quantity            v1.ResourceList      a mapping of quantities
time                    metav1.Time          an RFC 3339 date-time string
{...}                   a struct             a mapping with these fields
[{...}]                 []struct             a list of such mappings
======================  ===================  =====================================================================

A field the table does not know is reported (a warning; an error with --strict), as the kubelet's lenient v1beta1
decoder does; a null is "not set".
"""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Union

    Kind = Union[str, dict[str, Any], list[Any]]

# Go's time.ParseDuration: "0", or one or more <number><unit> with unit ns, us, µs, ms, s, m, h; optional sign.
_DURATION = re.compile(r"[-+]?(?:0|(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)")
# resource.Quantity: <signed number><suffix> (binary Ki..Ei, decimal n u m k M G T P E, or an exponent e/E).
_QUANTITY = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1), "uint32": (0, 2**32 - 1)}

DURATION = "duration"
TAINT: dict[str, Any] = {"key": "string", "value": "string", "effect": "string", "timeAdded": "time"}
OUTPUT_ROUTING: dict[str, Any] = {"splitStream": "bool", "infoBufferSize": "quantity"}

# KubeletConfiguration v1beta1, every field, in the order of types.go.
KUBELET_CONFIGURATION: dict[str, Any] = {
    "kind": "string",
    "apiVersion": "string",
    "enableServer": "bool",
    "staticPodPath": "string",
    "podLogsDir": "string",
    "syncFrequency": DURATION,
    "fileCheckFrequency": DURATION,
    "httpCheckFrequency": DURATION,
    "staticPodURL": "string",
    "staticPodURLHeader": "map:strings",
    "address": "string",
    "port": "int32",
    "readOnlyPort": "int32",
    "tlsCertFile": "string",
    "tlsPrivateKeyFile": "string",
    "tlsCipherSuites": "strings",
    "tlsCurvePreferences": "int32s",
    "tlsMinVersion": "string",
    "rotateCertificates": "bool",
    "serverTLSBootstrap": "bool",
    "authentication": {
        "x509": {"clientCAFile": "string"},
        "webhook": {"enabled": "bool", "cacheTTL": DURATION},
        "anonymous": {"enabled": "bool"},
    },
    "authorization": {
        "mode": "string",
        "webhook": {"cacheAuthorizedTTL": DURATION, "cacheUnauthorizedTTL": DURATION},
    },
    "registryPullQPS": "int32",
    "registryBurst": "int32",
    "imagePullCredentialsVerificationPolicy": "string",
    "preloadedImagesVerificationAllowlist": "strings",
    "eventRecordQPS": "int32",
    "eventBurst": "int32",
    "enableDebuggingHandlers": "bool",
    "enableContentionProfiling": "bool",
    "healthzPort": "int32",
    "healthzBindAddress": "string",
    "oomScoreAdj": "int32",
    "clusterDomain": "string",
    "clusterDNS": "strings",
    "streamingConnectionIdleTimeout": DURATION,
    "nodeStatusUpdateFrequency": DURATION,
    "nodeStatusReportFrequency": DURATION,
    "nodeLeaseDurationSeconds": "int32",
    "imageMinimumGCAge": DURATION,
    "imageMaximumGCAge": DURATION,
    "imageGCHighThresholdPercent": "int32",
    "imageGCLowThresholdPercent": "int32",
    "volumeStatsAggPeriod": DURATION,
    "kubeletCgroups": "string",
    "systemCgroups": "string",
    "cgroupRoot": "string",
    "cgroupsPerQOS": "bool",
    "cgroupDriver": "string",
    "cpuManagerPolicy": "string",
    "singleProcessOOMKill": "bool",
    "cpuManagerPolicyOptions": "map:string",
    "cpuManagerReconcilePeriod": DURATION,
    "draManagerReconcilePeriod": DURATION,
    "memoryManagerPolicy": "string",
    "topologyManagerPolicy": "string",
    "topologyManagerScope": "string",
    "topologyManagerPolicyOptions": "map:string",
    "qosReserved": "map:string",
    "runtimeRequestTimeout": DURATION,
    "hairpinMode": "string",
    "maxPods": "int32",
    "podCIDR": "string",
    "podPidsLimit": "int64",
    "resolvConf": "string",
    "runOnce": "bool",
    "cpuCFSQuota": "bool",
    "cpuCFSQuotaPeriod": DURATION,
    "nodeStatusMaxImages": "int32",
    "maxOpenFiles": "int64",
    "contentType": "string",
    "kubeAPIQPS": "int32",
    "kubeAPIBurst": "int32",
    "serializeImagePulls": "bool",
    "maxParallelImagePulls": "int32",
    "evictionHard": "map:string",
    "evictionSoft": "map:string",
    "evictionSoftGracePeriod": "map:string",
    "evictionPressureTransitionPeriod": DURATION,
    "evictionMaxPodGracePeriod": "int32",
    "evictionMinimumReclaim": "map:string",
    "mergeDefaultEvictionSettings": "bool",
    "podsPerCore": "int32",
    "enableControllerAttachDetach": "bool",
    "protectKernelDefaults": "bool",
    "makeIPTablesUtilChains": "bool",
    "iptablesMasqueradeBit": "int32",
    "iptablesDropBit": "int32",
    "featureGates": "map:bool",
    "failSwapOn": "bool",
    "memorySwap": {"swapBehavior": "string"},
    "containerLogMaxSize": "string",
    "containerLogMaxFiles": "int32",
    "containerLogMaxWorkers": "int32",
    "containerLogMonitorInterval": DURATION,
    "configMapAndSecretChangeDetectionStrategy": "string",
    "systemReserved": "map:string",
    "kubeReserved": "map:string",
    "reservedSystemCPUs": "string",
    "showHiddenMetricsForVersion": "string",
    "systemReservedCgroup": "string",
    "kubeReservedCgroup": "string",
    "enforceNodeAllocatable": "strings",
    "allowedUnsafeSysctls": "strings",
    "volumePluginDir": "string",
    "providerID": "string",
    "kernelMemcgNotification": "bool",
    "logging": {  # component-base/logs/api/v1 LoggingConfiguration
        "format": "string",
        "flushFrequency": "duration-or-int",  # TimeOrMetaDuration: a duration string or nanoseconds
        "verbosity": "uint32",
        "vmodule": [{"filePattern": "string", "verbosity": "uint32"}],
        "options": {"text": OUTPUT_ROUTING, "json": OUTPUT_ROUTING},
    },
    "enableSystemLogHandler": "bool",
    "enableSystemLogQuery": "bool",
    "shutdownGracePeriod": DURATION,
    "shutdownGracePeriodCriticalPods": DURATION,
    "shutdownGracePeriodByPodPriority": [{"priority": "int32", "shutdownGracePeriodSeconds": "int64"}],
    "crashLoopBackOff": {"maxContainerRestartPeriod": DURATION},
    "reservedMemory": [{"numaNode": "int32", "limits": "map:quantity"}],
    "enableProfilingHandler": "bool",
    "enableDebugFlagsHandler": "bool",
    "seccompDefault": "bool",
    "memoryThrottlingFactor": "float",
    "memoryReservationPolicy": "string",
    "registerWithTaints": [TAINT],
    "registerNode": "bool",
    "tracing": {"endpoint": "string", "samplingRatePerMillion": "int32"},  # component-base/tracing/api/v1
    "localStorageCapacityIsolation": "bool",
    "containerRuntimeEndpoint": "string",
    "imageServiceEndpoint": "string",
    "failCgroupV1": "bool",
    "userNamespaces": {"idsPerPod": "int64"},
}

_WANTED = {
    "bool": "a boolean (true or false)",
    "int32": "an integer (int32)",
    "int64": "an integer (int64)",
    "uint32": "a non-negative integer (uint32)",
    "float": "a number",
    "string": "a string",
    "duration": 'a duration string such as "30s" or "2m30s" (metav1.Duration)',
    "duration-or-int": 'a duration string such as "5s", or an integer of nanoseconds',
    "quantity": 'a quantity such as "100Mi" (a string) or a number',
    "time": 'an RFC 3339 time such as "2024-01-02T15:04:05Z"',
    "strings": "a list of strings",
    "int32s": "a list of integers",
    "map:string": "a mapping of strings",
    "map:bool": "a mapping of booleans",
    "map:strings": "a mapping of lists of strings",
    "map:quantity": "a mapping of quantities",
}


def describe(value: object) -> str:
    """The YAML type of ``value`` and the value, for messages: ``a string ('1.1.1.1')``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})" if len(value) <= 60 else f"a string ({value[:57]!r}...)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _scalar_problem(kind: str, value: object) -> str | None:
    """None when ``value`` is of ``kind``, else what is wrong (for a scalar kind)."""
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind in _INT_RANGES:
        if not _is_int(value):
            ok = False
        else:
            low, high = _INT_RANGES[kind]
            if not low <= value <= high:  # type: ignore[operator]
                return f"{value} is out of range for {kind} ({low}..{high})"
            ok = True
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind == "string":
        ok = isinstance(value, str)
    elif kind == "duration":
        ok = isinstance(value, str) and _DURATION.fullmatch(value) is not None
    elif kind == "duration-or-int":
        ok = _is_int(value) or (isinstance(value, str) and _DURATION.fullmatch(value) is not None)
    elif kind == "quantity":
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
            isinstance(value, str) and _QUANTITY.fullmatch(value.strip()) is not None
        )
    elif kind == "time":
        ok = isinstance(value, str) and _RFC3339.fullmatch(value) is not None
    else:  # pragma: no cover - a kind missing from this module
        raise ValueError(f"unknown kind {kind!r}")
    return None if ok else f"must be {_WANTED[kind]}, not {describe(value)}"


def check(value: object, kind: Kind, path: str, error: Callable[[str], None], unknown: Callable[[str], None]) -> None:
    """Report (``error``) every value under ``path`` that is not of ``kind``; ``unknown`` for unknown fields."""
    if value is None:
        return
    if isinstance(kind, dict):
        if not isinstance(value, dict):
            error(f"{path}: must be a mapping, not {describe(value)}")
            return
        for key, item in value.items():
            if key in kind:
                check(item, kind[key], f"{path}.{key}", error, unknown)
            else:
                unknown(f"{path}.{key}")
        return
    if isinstance(kind, list):
        if not isinstance(value, list):
            error(f"{path}: must be a list of mappings, not {describe(value)}")
            return
        for index, item in enumerate(value):
            check(item, kind[0], f"{path}[{index}]", error, unknown)
        return
    if kind.startswith("map:"):
        if not isinstance(value, dict):
            error(f"{path}: must be {_WANTED[kind]}, not {describe(value)}")
            return
        inner = {"string": "string", "bool": "bool", "strings": "strings", "quantity": "quantity"}[kind[4:]]
        for key, item in value.items():
            check(item, inner, f"{path}.{key}", error, unknown)
        return
    if kind in ("strings", "int32s"):
        if not isinstance(value, list):
            error(f"{path}: must be {_WANTED[kind]}, not {describe(value)}")
            return
        inner = "string" if kind == "strings" else "int32"
        for index, item in enumerate(value):
            problem = _scalar_problem(inner, item)
            if problem is not None:
                error(f"{path}[{index}]: {problem}")
        return
    problem = _scalar_problem(kind, value)
    if problem is not None:
        error(f"{path}: {problem}")


def check_kubelet_config(
    config: dict[str, Any], path: str, error: Callable[[str], None], unknown: Callable[[str], None]
) -> None:
    """Type-check a (partial) KubeletConfiguration mapping; ``path`` names it in the messages."""
    check(config, KUBELET_CONFIGURATION, path, error, unknown)
