"""Every metric family obskit emits: name, type, unit, labels, help, buckets, worker policy.

This is the one place a family is declared. The code that exposes a family takes its name, help,
labels and buckets from here; ``docs/metrics.md`` carries a reference table generated from it
(``scripts/metrics_reference.py``, checked by the tests); and whatever builds PromQL (SLO rules,
the canary judge, the incident timeline) imports names, labels and bucket edges from here instead
of spelling them again::

    from obskit.metrics import catalogue

    duration = catalogue.HTTP_SERVER_DURATION
    duration.bucket                     # "http_server_request_duration_seconds_bucket"
    duration.buckets                    # (0.005, 0.01, ..., 10.0)
    catalogue.le(0.25)                  # "0.25": the bucket's ``le`` label as exposed
    catalogue.family("obskit_build_info") is catalogue.BUILD_INFO

Nothing here creates a metric: entries are plain frozen data, importable without a runtime.

``workers`` says what one scrape of a multi-worker server (gunicorn, ``uvicorn --workers``)
shows: ``"sum"`` — one series summed over the workers (counters, histograms, in-flight gauges);
``"pid"`` — one series per worker, with a ``pid`` label (per-process gauges); ``"same"`` — the
value is the same in every worker (identity, container-wide cgroup figures) and read live.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FAMILIES",
    "FUNCTION_BUCKETS",
    "OVERFLOW",
    "SEMCONV_DURATION_BUCKETS",
    "Family",
    "Kind",
    "Workers",
    "family",
    "group",
    "groups",
    "le",
]

Kind = Literal["counter", "gauge", "histogram", "info"]
Workers = Literal["sum", "pid", "same"]

# The label value a guard or a full family folds everything else into.
OVERFLOW = "__other__"

# OpenTelemetry semantic conventions, explicit bucket boundaries for request durations (seconds).
SEMCONV_DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
# Functions run faster than requests: the semconv request buckets, extended down to 100 µs.
FUNCTION_BUCKETS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025)
FUNCTION_BUCKETS += SEMCONV_DURATION_BUCKETS
STREAM_BUCKETS: tuple[float, ...] = (
    0.1, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0,
)  # fmt: skip
# Event-loop lag: a timer every 50 ms; anything above ~1 ms late is the loop doing something else.
LAG_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# Young collections take microseconds, full ones of big heaps hundreds of milliseconds.
GC_PAUSE_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
EXECUTOR_WAIT_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
POOL_WAIT_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


def le(bound: float) -> str:
    """The ``le`` label of the bucket with upper bound ``bound``, spelled as obskit exposes it.

    prometheus-client writes bounds as Python floats (``0.005``, ``1.0``, ``10.0``) and the
    last bucket as ``+Inf``; a PromQL matcher must use the same text (``le="1.0"``, not ``"1"``).
    """
    return "+Inf" if bound == float("inf") else repr(float(bound))


@dataclass(frozen=True)
class Family:
    """One metric family as obskit exposes it.

    ``name`` is the family name (OpenMetrics: without ``_total`` for a counter, without ``_info``
    for an info); :attr:`sample` is the name a query selects. ``labels`` are the label names in
    the order obskit passes them (histograms add ``le``). ``static_labels``: the family also
    carries the labels a user passes (``@obskit.red(labels=...)``). ``semconv``: the
    OpenTelemetry instrument it implements, when there is one. ``group``: where it is documented.
    """

    name: str
    type: Kind
    help: str
    group: str
    labels: tuple[str, ...] = ()
    unit: str = ""
    buckets: tuple[float, ...] = ()
    workers: Workers = "sum"
    semconv: str = ""
    static_labels: bool = False

    @property
    def text_name(self) -> str:
        """The name in the Prometheus text format: a counter's ends in ``_total``, an info's in
        ``_info``; a histogram's is the stem of its ``_bucket``, ``_count`` and ``_sum``."""
        if self.type == "counter":
            return self.name + "_total"
        if self.type == "info":
            return self.name + "_info"
        return self.name

    @property
    def sample(self) -> str:
        """The series a query selects (``_total``, ``_info``); a histogram has three: use
        :attr:`bucket`, :attr:`count` or :attr:`sum`."""
        if self.type == "histogram":
            raise TypeError(f"{self.name} is a histogram: use .bucket, .count or .sum")
        return self.text_name

    @property
    def bucket(self) -> str:
        """``<name>_bucket`` of a histogram."""
        return self._histogram("_bucket")

    @property
    def count(self) -> str:
        """``<name>_count`` of a histogram."""
        return self._histogram("_count")

    @property
    def sum(self) -> str:
        """``<name>_sum`` of a histogram."""
        return self._histogram("_sum")

    def _histogram(self, suffix: str) -> str:
        if self.type != "histogram":
            raise TypeError(f"{self.name} is a {self.type}, not a histogram")
        return self.name + suffix

    def samples(self) -> tuple[str, ...]:
        """Every series name the family exposes (the exposition formats' sample names)."""
        if self.type == "histogram":
            return (self.bucket, self.count, self.sum)
        return (self.text_name,)

    def le_values(self) -> tuple[str, ...]:
        """The ``le`` label of every bucket, ``+Inf`` last (empty for other types)."""
        if self.type != "histogram":
            return ()
        return (*(le(b) for b in self.buckets), "+Inf")


def _f(
    name: str,
    kind: Kind,
    help: str,
    group: str,
    *labels: str,
    unit: str = "",
    buckets: tuple[float, ...] = (),
    workers: Workers = "sum",
    semconv: str = "",
    static_labels: bool = False,
) -> Family:
    return Family(name, kind, help, group, labels, unit, buckets, workers, semconv, static_labels)


_METHOD, _ROUTE, _STATUS, _ERROR = (
    "http_request_method",
    "http_route",
    "http_response_status_code",
    "error_type",
)
_POOL = "db_client_connection_pool_name"
_GEN = "cpython_gc_generation"

# --- RED: HTTP server, streams, outbound clients, functions ---------------------------------------

HTTP_SERVER_DURATION = _f(
    "http_server_request_duration_seconds", "histogram",
    "Duration of HTTP server requests (OpenTelemetry http.server.request.duration).",
    "http", _METHOD, "url_scheme", _ROUTE, _STATUS, _ERROR, "tenant_id",
    unit="seconds", buckets=SEMCONV_DURATION_BUCKETS, semconv="http.server.request.duration",
)  # fmt: skip
HTTP_SERVER_ACTIVE = _f(
    "http_server_active_requests", "gauge",
    "HTTP server requests in flight (OpenTelemetry http.server.active_requests).",
    "http", _METHOD, "url_scheme", semconv="http.server.active_requests",
)  # fmt: skip
HTTP_SERVER_TTFB = _f(
    "obskit_http_server_time_to_first_byte_seconds", "histogram",
    "Time from the start of an HTTP server request to its first response byte.",
    "http", _METHOD, _ROUTE, unit="seconds", buckets=SEMCONV_DURATION_BUCKETS,
)  # fmt: skip
HTTP_SERVER_STREAM_DURATION = _f(
    "http_server_stream_duration_seconds", "histogram",
    "Lifetime of server streams (Server-Sent Events responses, WebSocket sessions).",
    "streams", "kind", _ROUTE, "outcome", unit="seconds", buckets=STREAM_BUCKETS,
)  # fmt: skip
HTTP_SERVER_ACTIVE_STREAMS = _f(
    "http_server_active_streams", "gauge",
    "Server streams (Server-Sent Events, WebSocket) open now.",
    "streams", "kind", _ROUTE,
)  # fmt: skip
HTTP_CLIENT_DURATION = _f(
    "http_client_request_duration_seconds", "histogram",
    "Duration of outbound HTTP requests by dependency (server address), method, status.",
    "client", "server_address", _METHOD, _STATUS, _ERROR,
    unit="seconds", buckets=SEMCONV_DURATION_BUCKETS, semconv="http.client.request.duration",
)  # fmt: skip
FUNCTION_DURATION = _f(
    "obskit_function_duration_seconds", "histogram",
    "Duration of calls to functions decorated with @obskit.red.",
    "functions", "function", "module", "result", _ERROR,
    unit="seconds", buckets=FUNCTION_BUCKETS, static_labels=True,
)  # fmt: skip
FUNCTION_CALLS = _f(
    "obskit_function_calls", "counter",
    "Calls to functions decorated with @obskit.red, by result.",
    "functions", "function", "module", "result", _ERROR, static_labels=True,
)  # fmt: skip
FUNCTION_ACTIVE = _f(
    "obskit_function_active_calls", "gauge",
    "Calls to functions decorated with @obskit.red in flight.",
    "functions", "function", "module", static_labels=True,
)  # fmt: skip

# --- business events (read by SLO business-success objectives and the canary judge) -------------

BUSINESS_EVENTS = _f(
    "obskit_business_events", "counter",
    "Business events by name, outcome (success or failure) and tenant.",
    "business", "event", "outcome", "tenant_id",
)  # fmt: skip

# --- feature flags (the OpenFeature hook; allowed flags only) -------------------------------------

FEATURE_FLAG_EVALUATIONS = _f(
    "obskit_feature_flag_evaluations", "counter",
    "Feature flag evaluations by flag and variant (flags allowed on metrics only).",
    "flags", "feature_flag_key", "feature_flag_variant",
)  # fmt: skip
FEATURE_FLAG_REQUEST_DURATION = _f(
    "obskit_feature_flag_request_duration_seconds", "histogram",
    "Duration of HTTP server requests that evaluated an allowed feature flag, by its variant.",
    "flags", "feature_flag_key", "feature_flag_variant", _ROUTE, _ERROR, "tenant_id",
    unit="seconds", buckets=SEMCONV_DURATION_BUCKETS,
)  # fmt: skip

# --- obskit itself: identity, guard, internal errors ----------------------------------------------

BUILD_INFO = _f(
    "obskit_build", "info",
    "Service and obskit identity, the source revision and when the service process started "
    "(a restart or a new version starts a new series); the value is always 1.",
    "identity", "service_name", "service_version", "deployment_environment",
    "obskit_version", "python_version", "vcs_revision", "process_start_time", workers="same",
)  # fmt: skip
LABEL_OVERFLOW = _f(
    "obskit_label_overflow", "counter",
    "Label values folded into __other__ by a cardinality guard or a full family.",
    "guard", "label",
)  # fmt: skip
LABEL_EVICTIONS = _f(
    "obskit_label_evictions", "counter",
    "Guarded label values that lost their slot to a value with more recent traffic.",
    "guard", "label",
)  # fmt: skip
INTERNAL_ERRORS = _f(
    "obskit_internal_errors", "counter",
    "Failures inside obskit that were caught so the application could go on.",
    "self", "component",
)  # fmt: skip
REDACTED_VALUES = _f(
    "obskit_redacted_values", "counter",
    "Secrets replaced by [REDACTED] before leaving the process, by signal.",
    "self", "signal",
)  # fmt: skip
TRUNCATED_VALUES = _f(
    "obskit_truncated_values", "counter",
    "Values cut to max_value_length or an item cap, by signal.",
    "self", "signal",
)  # fmt: skip
DEPLOY_MARKERS = _f(
    "obskit_deploy_markers", "counter",
    "Deploy markers sent by obskit.mark_deploy to a destination (grafana, sentry, datadog), "
    "by result (sent, failed).",
    "self", "destination", "result",
)  # fmt: skip

# --- the tail sampler, its log buffer and export lanes --------------------------------------------

TAIL_BUFFERED_TRACES = _f(
    "obskit_tail_buffered_traces", "gauge", "Undecided traces held by the tail sampler.",
    "tail", workers="pid",
)  # fmt: skip
TAIL_BUFFERED_SPANS = _f(
    "obskit_tail_buffered_spans", "gauge", "Spans held for undecided traces.", "tail",
    workers="pid",
)  # fmt: skip
TAIL_BUFFERED_BYTES = _f(
    "obskit_tail_buffered_bytes", "gauge", "Estimated bytes of spans held for undecided traces.",
    "tail", unit="bytes", workers="pid",
)  # fmt: skip
TAIL_DECISIONS = _f(
    "obskit_tail_decisions", "counter",
    "Trace decisions by outcome, the rule that decided and what triggered the decision.",
    "tail", "decision", "rule", "trigger",
)  # fmt: skip
TAIL_EVICTIONS = _f(
    "obskit_tail_evictions", "counter",
    "Undecided traces decided early because a cap was reached (traces, bytes, spans).",
    "tail", "reason",
)  # fmt: skip
TAIL_LATE_SPANS = _f(
    "obskit_tail_late_spans", "counter",
    "Spans that ended after their trace was decided: following a keep, following a drop "
    "(discarded), or rescued (a late error in a dropped trace, exported and flagged).",
    "tail", "decision",
)  # fmt: skip
TAIL_SPANS = _f(
    "obskit_tail_spans", "counter", "Spans by the decision of their trace.", "tail", "decision"
)
TAIL_EXEMPLARS = _f(
    "obskit_tail_exemplars", "counter",
    "Metric exemplars offered for a trace: applied when it was kept, discarded when dropped, "
    "overflow past the per-trace limit.",
    "tail", "outcome",
)  # fmt: skip
TAIL_REMEMBERED_TRACES = _f(
    "obskit_tail_remembered_traces", "gauge",
    "Decided traces remembered so that late spans follow their decision.",
    "tail", "decision", workers="pid",
)  # fmt: skip
TAIL_LOG_LINES = _f(
    "obskit_tail_log_lines", "counter",
    "Debug log lines held for undecided traces, by outcome "
    "(held, written when kept, discarded when dropped, overflow past the caps).",
    "tail", "outcome",
)  # fmt: skip
TAIL_LOG_BUFFERED_BYTES = _f(
    "obskit_tail_log_buffered_bytes", "gauge",
    "Bytes of debug log lines held for undecided traces.",
    "tail", unit="bytes", workers="pid",
)  # fmt: skip
EXPORT_SPANS = _f(
    "obskit_export_spans", "counter",
    "Kept spans handed to the exporter, by lane (error, rule, slow, baseline: the first lanes "
    "go first) and result (exported, failed, dropped: no room, or pushed out by a higher lane).",
    "tail", "lane", "result",
)  # fmt: skip
EXPORT_LOST_AT_SHUTDOWN = _f(
    "obskit_export_lost_at_shutdown_spans", "counter",
    "Spans a shutdown could not export by its deadline, by lane and stage (in_flight: sent, "
    "unconfirmed by the exporter; queued; undecided, lane none: still buffered, the buffer "
    "busy). Process-wide: it outlives the runtime that lost them.",
    "tail", "lane", "stage",
)  # fmt: skip
EXPORT_QUEUED_SPANS = _f(
    "obskit_export_queued_spans", "gauge", "Kept spans waiting for export, by lane.",
    "tail", "lane", workers="pid",
)  # fmt: skip

# --- USE: collector status ------------------------------------------------------------------------

COLLECTOR_UP = _f(
    "obskit_collector_up", "gauge",
    "Whether an obskit USE collector could read its source (1) or not (0).",
    "use.status", "collector", workers="pid",
)  # fmt: skip
COLLECTOR_UNAVAILABLE = _f(
    "obskit_collector_unavailable", "info",
    "Why a USE collector, or a part of it, has no data; one series per reason.",
    "use.status", "collector", "reason", workers="pid",
)  # fmt: skip

# --- USE: this process ----------------------------------------------------------------------------

PROCESS_START_TIME = _f(
    "process_start_time_seconds", "gauge", "When this process started, in seconds since the epoch.",
    "use.process", unit="seconds", workers="pid",
)  # fmt: skip
PROCESS_CPU_TIME = _f(
    "process_cpu_time_seconds", "counter", "CPU time used by this process.",
    "use.process", "cpu_mode", unit="seconds", semconv="process.cpu.time",
)  # fmt: skip
PROCESS_CPU_AVAILABLE_CORES = _f(
    "obskit_process_cpu_available_cores", "gauge",
    "CPUs this process may use: the cgroup quota in cores, else the cores it may run on.",
    "use.process", workers="pid",
)  # fmt: skip
PROCESS_CPU_UTILIZATION = _f(
    "process_cpu_utilization_ratio", "gauge",
    "CPU time since the previous scrape over elapsed time times the available cores.",
    "use.process", unit="ratio", workers="pid", semconv="process.cpu.utilization",
)  # fmt: skip
PROCESS_MEMORY_USAGE = _f(
    "process_memory_usage_bytes", "gauge", "Resident set size of this process.",
    "use.process", unit="bytes", workers="pid", semconv="process.memory.usage",
)  # fmt: skip
PROCESS_MEMORY_VIRTUAL = _f(
    "process_memory_virtual_bytes", "gauge", "Virtual memory size of this process.",
    "use.process", unit="bytes", workers="pid", semconv="process.memory.virtual",
)  # fmt: skip
PROCESS_MEMORY_LIMIT = _f(
    "obskit_process_memory_limit_bytes", "gauge",
    "Memory this process may use: the cgroup memory limit, else the machine's memory.",
    "use.process", unit="bytes", workers="pid",
)  # fmt: skip
PROCESS_MEMORY_UTILIZATION = _f(
    "process_memory_utilization_ratio", "gauge",
    "Resident set size over the memory limit (cgroup limit, else machine memory).",
    "use.process", unit="ratio", workers="pid",
)  # fmt: skip
PROCESS_THREADS = _f(
    "process_threads", "gauge", "Threads of this process.", "use.process",
    workers="pid", semconv="process.thread.count",
)  # fmt: skip
PROCESS_FDS = _f(
    "process_unix_file_descriptors", "gauge", "Open file descriptors.", "use.process",
    workers="pid", semconv="process.unix.file_descriptor.count",
)  # fmt: skip
PROCESS_FDS_LIMIT = _f(
    "obskit_process_unix_file_descriptors_limit", "gauge",
    "Soft limit on open file descriptors (RLIMIT_NOFILE).",
    "use.process", workers="pid",
)  # fmt: skip
PROCESS_CONTEXT_SWITCHES = _f(
    "process_context_switches", "counter",
    "Context switches; involuntary ones mean the process was preempted (CPU contention).",
    "use.process", "process_context_switch_type", semconv="process.context_switches",
)  # fmt: skip

# --- USE: the container (cgroup), the same for every worker ---------------------------------------


def _cgroup(name: str, kind: Kind, help: str, *labels: str, unit: str = "") -> Family:
    return _f(name, kind, help, "use.cgroup", *labels, unit=unit, workers="same")


CGROUP_INFO = _cgroup(
    "obskit_cgroup_info", "gauge", "The cgroup version (1 or 2) read; always 1.", "version"
)
CGROUP_CPU_LIMIT = _cgroup(
    "obskit_cgroup_cpu_limit_cores", "gauge",
    "Effective CPU quota of the cgroup in cores (quota / period); absent when unlimited.",
)  # fmt: skip
CGROUP_CPU_USAGE = _cgroup(
    "obskit_cgroup_cpu_usage_seconds", "counter", "CPU time used by the whole cgroup.",
    unit="seconds",
)  # fmt: skip
CGROUP_CPU_PERIODS = _cgroup(
    "obskit_cgroup_cpu_periods", "counter", "CFS enforcement periods that elapsed."
)
CGROUP_CPU_THROTTLED_PERIODS = _cgroup(
    "obskit_cgroup_cpu_throttled_periods", "counter",
    "CFS periods in which the cgroup was throttled for exhausting its quota.",
)  # fmt: skip
CGROUP_CPU_THROTTLED_SECONDS = _cgroup(
    "obskit_cgroup_cpu_throttled_seconds", "counter",
    "Total time the cgroup's threads were throttled.", unit="seconds",
)  # fmt: skip
CGROUP_MEMORY_USAGE = _cgroup(
    "obskit_cgroup_memory_usage_bytes", "gauge",
    "Memory charged to the cgroup, page cache included.", unit="bytes",
)  # fmt: skip
CGROUP_MEMORY_WORKING_SET = _cgroup(
    "obskit_cgroup_memory_working_set_bytes", "gauge",
    "Memory usage minus inactive file cache: what the limit is enforced against in practice.",
    unit="bytes",
)  # fmt: skip
CGROUP_MEMORY_LIMIT = _cgroup(
    "obskit_cgroup_memory_limit_bytes", "gauge",
    "Effective memory limit of the cgroup; absent when unlimited.", unit="bytes",
)  # fmt: skip
CGROUP_MEMORY_UTILIZATION = _cgroup(
    "obskit_cgroup_memory_utilization_ratio", "gauge",
    "Working set divided by the memory limit (only when limited).", unit="ratio",
)  # fmt: skip
CGROUP_MEMORY_LIMIT_HITS = _cgroup(
    "obskit_cgroup_memory_limit_hits", "counter",
    "Times the cgroup's memory usage hit its limit (v2 memory.events max, v1 failcnt).",
)  # fmt: skip
CGROUP_OOM_KILLS = _cgroup(
    "obskit_cgroup_memory_oom_kills", "counter", "Processes of the cgroup killed by OOM."
)
PRESSURE_STALLED = _cgroup(
    "obskit_pressure_stalled_seconds", "counter",
    "PSI: time some (or all) runnable tasks stalled waiting for the resource.",
    "resource", "stall", "scope", unit="seconds",
)  # fmt: skip

# --- USE: event loop, garbage collector, executors, pools, queues ---------------------------------

EVENT_LOOP_LAG = _f(
    "obskit_event_loop_lag_seconds", "histogram",
    "How late the event loop ran a timer that asked to run every interval.",
    "use.event_loop", unit="seconds", buckets=LAG_BUCKETS,
)  # fmt: skip
EVENT_LOOP_BUSY = _f(
    "obskit_event_loop_busy_seconds", "counter",
    "Time the monitored loops spent running callbacks (not waiting for I/O or timers).",
    "use.event_loop", unit="seconds",
)  # fmt: skip
EVENT_LOOP_UTILIZATION = _f(
    "obskit_event_loop_utilization_ratio", "gauge",
    "Share of wall time the loops were busy, since the previous scrape.",
    "use.event_loop", unit="ratio", workers="pid",
)  # fmt: skip
EVENT_LOOP_TASKS = _f(
    "obskit_event_loop_tasks", "gauge", "Tasks not yet done on the monitored loops.",
    "use.event_loop", workers="pid",
)  # fmt: skip
EVENT_LOOP_MONITORS = _f(
    "obskit_event_loop_monitors", "gauge", "Event loops being monitored.", "use.event_loop",
    workers="pid",
)  # fmt: skip
GC_PAUSE = _f(
    "obskit_gc_pause_seconds", "histogram",
    "Time the garbage collector paused the process, per collected generation.",
    "use.gc", _GEN, unit="seconds", buckets=GC_PAUSE_BUCKETS,
)  # fmt: skip
GC_COLLECTIONS = _f(
    "cpython_gc_collections", "counter",
    "Collections of each generation since the interpreter started.",
    "use.gc", _GEN, semconv="cpython.gc.collections",
)  # fmt: skip
GC_COLLECTED = _f(
    "cpython_gc_collected_objects", "counter",
    "Objects collected in each generation since the interpreter started.",
    "use.gc", _GEN, semconv="cpython.gc.collected_objects",
)  # fmt: skip
GC_UNCOLLECTABLE = _f(
    "cpython_gc_uncollectable_objects", "counter",
    "Objects found uncollectable in each generation since the interpreter started.",
    "use.gc", _GEN, semconv="cpython.gc.uncollectable_objects",
)  # fmt: skip
EXECUTOR_WORKERS = _f(
    "obskit_executor_workers", "gauge", "Worker threads started.", "use.executors",
    "executor", workers="pid",
)  # fmt: skip
EXECUTOR_MAX_WORKERS = _f(
    "obskit_executor_max_workers", "gauge", "Most worker threads allowed.", "use.executors",
    "executor", workers="pid",
)  # fmt: skip
EXECUTOR_BUSY_WORKERS = _f(
    "obskit_executor_busy_workers", "gauge",
    "Workers running a task now (utilization: divide by max workers).",
    "use.executors", "executor", workers="pid",
)  # fmt: skip
EXECUTOR_QUEUE_DEPTH = _f(
    "obskit_executor_queue_depth", "gauge",
    "Tasks submitted and not yet picked up by a worker (saturation).",
    "use.executors", "executor", workers="pid",
)  # fmt: skip
EXECUTOR_TASKS = _f(
    "obskit_executor_tasks", "counter", "Tasks submitted since tracking began.",
    "use.executors", "executor",
)  # fmt: skip
EXECUTOR_QUEUE_WAIT = _f(
    "obskit_executor_queue_wait_seconds", "histogram",
    "Time tasks waited between submit and the start of their run.",
    "use.executors", "executor", unit="seconds", buckets=EXECUTOR_WAIT_BUCKETS,
)  # fmt: skip
POOL_CONNECTIONS = _f(
    "db_client_connections", "gauge", "Connections in each state (db.client.connection.count).",
    "use.pools", _POOL, "db_client_connection_state", workers="pid",
    semconv="db.client.connection.count",
)  # fmt: skip
POOL_MAX = _f(
    "db_client_connection_max", "gauge", "Most open connections allowed.", "use.pools", _POOL,
    workers="pid", semconv="db.client.connection.max",
)  # fmt: skip
POOL_PENDING = _f(
    "db_client_connection_pending_requests", "gauge",
    "Requests waiting for an open connection now (saturation).",
    "use.pools", _POOL, workers="pid", semconv="db.client.connection.pending_requests",
)  # fmt: skip
POOL_TIMEOUTS = _f(
    "db_client_connection_timeouts", "counter",
    "Acquisitions that timed out waiting for a connection (errors).",
    "use.pools", _POOL, semconv="db.client.connection.timeouts",
)  # fmt: skip
POOL_WAIT = _f(
    "db_client_connection_wait_time_seconds", "histogram",
    "Time it took to obtain an open connection from the pool.",
    "use.pools", _POOL, unit="seconds", buckets=POOL_WAIT_BUCKETS,
    semconv="db.client.connection.wait_time",
)  # fmt: skip
QUEUE_DEPTH = _f(
    "obskit_queue_depth", "gauge", "Items in the queue.", "use.pools", "queue", workers="pid"
)
QUEUE_CAPACITY = _f(
    "obskit_queue_capacity", "gauge", "Most items the queue holds.", "use.pools", "queue",
    workers="pid",
)  # fmt: skip
TRACKED_DROPPED = _f(
    "obskit_use_tracked_dropped", "counter",
    "Tracked objects refused at the cap or replaced by another under the same name.",
    "use.pools", "kind", "reason",
)  # fmt: skip

# Every constant above, in the order it is declared (and documented).
FAMILIES: tuple[Family, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Family))
_BY_NAME: dict[str, Family] = {f.name: f for f in FAMILIES}
_BY_SAMPLE: dict[str, Family] = {s: f for f in FAMILIES for s in f.samples()}


def family(name: str) -> Family:
    """The family called ``name``: its family name or any of its series' names.

    ``family("obskit_build_info")``, ``family("obskit_build")`` and
    ``family("http_server_request_duration_seconds_bucket")`` all work; an unknown name raises
    ``KeyError`` naming it.
    """
    found = _BY_NAME.get(name) or _BY_SAMPLE.get(name)
    if found is None:
        raise KeyError(f"no metric family {name!r} in obskit's catalogue")
    return found


def group(name: str) -> tuple[Family, ...]:
    """The families documented together under ``name`` (``"http"``, ``"use.gc"``, ...)."""
    found = tuple(f for f in FAMILIES if f.group == name)
    if not found:
        raise KeyError(f"no metric group {name!r} in obskit's catalogue")
    return found


def groups() -> Iterator[str]:
    """Group names in catalogue order."""
    return iter(dict.fromkeys(f.group for f in FAMILIES))
