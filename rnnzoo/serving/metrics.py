"""Prometheus metrics under TensorFlow Serving's names.

TF Serving's monitoring names (``/tensorflow/serving/request_count`` ...) are exported to
Prometheus with ``/`` replaced by ``:``, so dashboards built for ``tensorflow_model_server``
(e.g. ``:tensorflow:serving:request_count{model_name, status}``) read this server unchanged.
"""

import bisect
import threading


def _exponential_buckets(scale: float, growth: float, count: int) -> list:
    """monitoring::Buckets::Exponential(scale, growth, count): upper bounds scale*growth^i."""
    return [scale * growth**i for i in range(count)]


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _prometheus_name(name: str) -> str:
    return name.replace("/", ":")


def _label_text(names, values, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Counter:
    def __init__(self, name: str, description: str, *label_names: str):
        self.name, self.description, self.label_names = name, description, label_names
        self._cells = {}
        self._lock = threading.Lock()

    def increment(self, *labels, by: int = 1) -> None:
        with self._lock:
            self._cells[labels] = self._cells.get(labels, 0) + by

    def value(self, *labels) -> int:
        with self._lock:
            return self._cells.get(labels, 0)

    def exposition(self) -> list:
        name = _prometheus_name(self.name)
        lines = [f"# HELP {name} {self.description}", f"# TYPE {name} counter"]
        with self._lock:
            for labels, value in sorted(self._cells.items()):
                lines.append(f"{name}{_label_text(self.label_names, labels)} {value}")
        return lines


class Sampler:
    """A histogram with fixed bucket bounds (TF's monitoring::Sampler)."""

    def __init__(self, name: str, description: str, bounds: list, *label_names: str):
        self.name, self.description, self.label_names = name, description, label_names
        self.bounds = list(bounds)
        self._cells = {}
        self._lock = threading.Lock()

    def add(self, value: float, *labels) -> None:
        with self._lock:
            cell = self._cells.get(labels)
            if cell is None:
                cell = self._cells[labels] = [[0] * (len(self.bounds) + 1), 0.0, 0]
            cell[0][bisect.bisect_left(self.bounds, value)] += 1  # the first bucket whose bound >= value
            cell[1] += value
            cell[2] += 1

    def count(self, *labels) -> int:
        with self._lock:
            cell = self._cells.get(labels)
            return cell[2] if cell else 0

    def exposition(self) -> list:
        name = _prometheus_name(self.name)
        lines = [f"# HELP {name} {self.description}", f"# TYPE {name} histogram"]
        with self._lock:
            for labels, (buckets, total, count) in sorted(self._cells.items()):
                cumulative = 0
                for bound, n in zip(self.bounds + [float("inf")], buckets):
                    cumulative += n
                    le = 'le="+Inf"' if bound == float("inf") else f'le="{bound:g}"'
                    lines.append(f"{name}_bucket{_label_text(self.label_names, labels, le)} {cumulative}")
                lines.append(f"{name}_sum{_label_text(self.label_names, labels)} {total:g}")
                lines.append(f"{name}_count{_label_text(self.label_names, labels)} {count}")
        return lines


class ServingMetrics:
    """The metrics one server exports (a fresh set per server, so tests do not share counts)."""

    def __init__(self):
        self.request_count = Counter(
            "/tensorflow/serving/request_count", "The total number of requests.", "model_name", "status"
        )
        self.request_latency = Sampler(
            "/tensorflow/serving/request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            _exponential_buckets(10, 1.8, 33),
            "model_name", "API", "entrypoint",
        )
        self.processed_batch_size = Counter(
            "/tensorflow/serving/batching/processed_batch_size_v2",
            "Tracks the batch size on processing by model_name and op name (if available).",
            "model_name", "op_name", "batch_size",
        )

    def all(self) -> list:
        return [self.request_count, self.request_latency, self.processed_batch_size]

    def exposition(self) -> str:
        lines = []
        for metric in self.all():
            lines.extend(metric.exposition())
        return "\n".join(lines) + "\n"
