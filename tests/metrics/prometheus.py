"""What Prometheus makes of our StatsD lines, for the tests: statsd-exporter applying the shipped
mapping (monitoring/statsd-exporter/mapping.yml: names, scale, drops, histograms), scrapes at
chosen times, and the PromQL forms the shipped dashboard uses, evaluated as Prometheus 2.x does:
``increase``/``rate`` (Prometheus's extrapolated rate: a series' first sample in the range is
its baseline), ``sum [by (...)]``, ``topk``, ``histogram_quantile``, ``+ - * /`` between
vectors with equal labels, and instant selectors. Anything else is refused, so a new query form in the
dashboard fails its test instead of being evaluated wrongly."""

from __future__ import annotations

import math
import re
from collections import defaultdict

from tests.metrics import dashboard

Labels = frozenset  # of (name, value) pairs; "__name__" included in stored series


class Exporter:
    """statsd-exporter's registry for Samples (tests.metrics.receivers) of one StatsD stream."""

    def __init__(self):
        self.buckets = [*dashboard.histogram_buckets(), math.inf]
        self.counters: dict[Labels, float] = defaultdict(float)
        self.gauges: dict[Labels, float] = {}
        self.histograms: dict[Labels, list[float]] = {}  # per bucket counts, then sum, count

    def receive(self, samples) -> None:
        for sample in samples:
            name, mapping = dashboard.mapped(sample.name, sample.kind)
            if mapping.get("action") == "drop":
                continue
            value = sample.value * mapping.get("scale", 1)
            key = Labels({("__name__", name), *sample.tags.items()})
            if sample.kind == "counter":
                self.counters[key] += value
            elif sample.kind == "gauge":
                self.gauges[key] = value
            else:  # a StatsD timer in ms: an observation in seconds
                seconds = value / 1000
                counts = self.histograms.setdefault(key, [0.0] * (len(self.buckets) + 2))
                for index, bound in enumerate(self.buckets):
                    counts[index] += seconds <= bound
                counts[-2] += seconds
                counts[-1] += 1

    def exposition(self) -> dict[Labels, float]:
        """Every series /metrics shows now (histograms as _bucket, _sum and _count)."""
        series = {**self.counters, **self.gauges}
        for key, counts in self.histograms.items():
            labels = dict(key)
            name = labels.pop("__name__")
            for bound, count in zip(self.buckets, counts, strict=False):
                le = "+Inf" if bound == math.inf else _format_le(bound)
                series[Labels({("__name__", f"{name}_bucket"), ("le", le), *labels.items()})] = count
            series[Labels({("__name__", f"{name}_sum"), *labels.items()})] = counts[-2]
            series[Labels({("__name__", f"{name}_count"), *labels.items()})] = counts[-1]
        return series


def _format_le(bound: float) -> str:
    return repr(float(bound)) if bound != int(bound) else f"{bound:g}"


class Prometheus:
    """Scrapes of an Exporter, and queries over them: ``query(expr, at)`` returns the instant
    vector as ``{labels (a frozenset of (name, value)): value}``."""

    LOOKBACK = 300  # seconds: an instant selector's staleness window

    def __init__(self):
        self.scrapes: list[tuple[float, dict[Labels, float]]] = []

    def scrape(self, at: float, exporter: Exporter) -> None:
        assert not self.scrapes or at > self.scrapes[-1][0]
        self.scrapes.append((at, exporter.exposition()))

    def query(self, expr: str, at: float) -> dict[Labels, float]:
        return _Parser(expr, self, at).parse()

    # the data a selector reads
    def _instant(self, name: str, matchers, at: float) -> dict[Labels, float]:
        latest = [(t, s) for t, s in self.scrapes if at - self.LOOKBACK < t <= at]
        if not latest:
            return {}
        _, series = latest[-1]  # a series missing from the last scrape is stale
        return {_drop_name(k): v for k, v in series.items() if _matches(k, name, matchers)}

    def _range(self, name: str, matchers, start: float, end: float) -> dict[Labels, list]:
        points: dict[Labels, list] = defaultdict(list)
        for t, series in self.scrapes:
            if start <= t <= end:  # Prometheus 2.x: both ends included
                for key, value in series.items():
                    if _matches(key, name, matchers):
                        points[key].append((t, value))
        return points


def _matches(key: Labels, name: str, matchers) -> bool:
    labels = dict(key)
    if labels["__name__"] != name:
        return False
    for label, op, value in matchers:
        actual = labels.get(label, "")
        ok = {
            "=": actual == value,
            "!=": actual != value,
            "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None,
        }[op]
        if not ok:
            return False
    return True


def _drop_name(key: Labels) -> Labels:
    return Labels(item for item in key if item[0] != "__name__")


def extrapolated_increase(points: list[tuple[float, float]], start: float, end: float) -> float | None:
    """Prometheus 2.x's extrapolatedRate for a counter (promql/functions.go), as increase():
    the first sample is the baseline; resets add the value before them; the result is
    extrapolated towards the range's ends (not below the counter's zero)."""
    if len(points) < 2:
        return None
    (first_t, first), (last_t, last) = points[0], points[-1]
    result = last - first
    previous = 0.0
    for _, value in points:
        if value < previous:
            result += previous
        previous = value
    sampled = last_t - first_t
    average = sampled / (len(points) - 1)
    to_start, to_end = first_t - start, end - last_t
    if result > 0 and first >= 0:
        to_start = min(to_start, sampled * (first / result))
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    return result * (interval / sampled)


def _bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus 2.x's bucketQuantile over (upper bound, cumulative count) pairs."""
    buckets = sorted(buckets)
    if len(buckets) < 2 or buckets[-1][0] != math.inf:
        return math.nan
    observations = buckets[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    b = next(i for i, (_, count) in enumerate(buckets) if count >= rank)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, end, count = 0.0, buckets[b][0], buckets[b][1]
    if b > 0:
        start = buckets[b - 1][0]
        count -= buckets[b - 1][1]
        rank -= buckets[b - 1][1]
    return start + (end - start) * (rank / count)


_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)|(?P<string>\"[^\"]*\")"
    r"|(?P<duration>\[\d+[smhd]\])|(?P<op>=~|!~|!=|[-+*/(){},=]))"
)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class _Parser:
    """A recursive-descent reader of the dashboard's PromQL, evaluating as it goes."""

    def __init__(self, expr: str, db: Prometheus, at: float):
        self.tokens, position = [], 0
        while position < len(expr.rstrip()):
            match = _TOKEN.match(expr, position)
            if not match or match.end() == position:
                raise ValueError(f"cannot read {expr[position:]!r}")
            self.tokens.append((match.lastgroup, match.group(match.lastgroup)))
            position = match.end()
        self.db, self.at, self.i = db, at, 0

    def parse(self):
        value = self._additive()
        if self.i != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.i]}")
        return value

    def _peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None)

    def _take(self, expected: str | None = None):
        kind, text = self._peek()
        if expected is not None and text != expected:
            raise ValueError(f"expected {expected!r}, got {text!r}")
        self.i += 1
        return kind, text

    def _additive(self):
        left = self._multiplicative()
        while self._peek()[1] in ("+", "-"):
            left = _binary(self._take()[1], left, self._multiplicative())
        return left

    def _multiplicative(self):
        left = self._unary()
        while self._peek()[1] in ("*", "/"):
            left = _binary(self._take()[1], left, self._unary())
        return left

    def _unary(self):
        kind, text = self._peek()
        if text == "(":
            self._take("(")
            value = self._additive()
            self._take(")")
            return value
        if kind == "number":
            self._take()
            return float(text)
        if kind != "name":
            raise ValueError(f"unexpected {text!r}")
        if text == "sum":
            return self._sum()
        if text in ("increase", "rate"):
            self._take()
            self._take("(")
            name, matchers, seconds = self._selector(range_needed=True)
            self._take(")")
            return self._increase(name, matchers, seconds, rate=text == "rate")
        if text == "topk":
            self._take()
            self._take("(")
            k = int(float(self._take()[1]))
            self._take(",")
            vector = self._additive()
            self._take(")")
            return _topk(k, vector)
        if text == "histogram_quantile":
            self._take()
            self._take("(")
            q = float(self._take()[1])
            self._take(",")
            vector = self._additive()
            self._take(")")
            return _histogram_quantile(q, vector)
        name, matchers, _ = self._selector(range_needed=False)
        return self.db._instant(name, matchers, self.at)

    def _sum(self):
        self._take("sum")
        by = None
        if self._peek()[1] == "by":
            self._take("by")
            self._take("(")
            by = []
            while self._peek()[1] != ")":
                by.append(self._take()[1])
                if self._peek()[1] == ",":
                    self._take(",")
            self._take(")")
        self._take("(")
        vector = self._additive()
        self._take(")")
        sums: dict[Labels, float] = defaultdict(float)
        for key, value in vector.items():
            sums[Labels((k, v) for k, v in key if by is not None and k in by)] += value
        return dict(sums)

    def _selector(self, range_needed: bool):
        _, name = self._take()
        matchers = []
        if self._peek()[1] == "{":
            self._take("{")
            while self._peek()[1] != "}":
                label = self._take()[1]
                op = self._take()[1]
                value = self._take()[1].strip('"')
                matchers.append((label, op, value))
                if self._peek()[1] == ",":
                    self._take(",")
            self._take("}")
        seconds = None
        if self._peek()[0] == "duration":
            text = self._take()[1][1:-1]
            seconds = int(text[:-1]) * _SECONDS[text[-1]]
        if range_needed != (seconds is not None):
            raise ValueError(f"{name}: a range {'is' if range_needed else 'is not'} expected")
        return name, matchers, seconds

    def _increase(self, name, matchers, seconds, rate: bool):
        start = self.at - seconds
        out = {}
        for key, points in self.db._range(name, matchers, start, self.at).items():
            value = extrapolated_increase(points, start, self.at)
            if value is not None:
                out[_drop_name(key)] = value / seconds if rate else value
        return out


def _binary(op: str, left, right):
    apply = {
        "+": lambda a, b: a + b,
        "-": lambda a, b: a - b,
        "*": lambda a, b: a * b,
        "/": lambda a, b: (
            a / b if b else (math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a))
        ),
    }[op]
    if isinstance(left, float) and isinstance(right, float):
        return apply(left, right)
    if isinstance(left, float):
        return {k: apply(left, v) for k, v in right.items()}
    if isinstance(right, float):
        return {k: apply(v, right) for k, v in left.items()}
    return {k: apply(v, right[k]) for k, v in left.items() if k in right}  # one-to-one on labels


def _topk(k: int, vector: dict[Labels, float]) -> dict[Labels, float]:
    """The ``k`` largest elements (NaN below every number, as Prometheus orders them)."""
    ranked = sorted(
        vector.items(), key=lambda item: -math.inf if math.isnan(item[1]) else item[1], reverse=True
    )
    return dict(ranked[:k])


def _histogram_quantile(q: float, vector: dict[Labels, float]) -> dict[Labels, float]:
    groups: dict[Labels, list] = defaultdict(list)
    for key, value in vector.items():
        labels = dict(key)
        le = labels.pop("le")
        groups[Labels(labels.items())].append((math.inf if le == "+Inf" else float(le), value))
    return {key: _bucket_quantile(q, buckets) for key, buckets in groups.items()}


def value(vector: dict[Labels, float], **labels) -> float | None:
    """The value of the element of ``vector`` with exactly these labels (None: no element)."""
    return vector.get(Labels(labels.items()))


def by(vector: dict[Labels, float], label: str) -> dict[str, float]:
    """``{value of label: value}`` of a vector aggregated ``by (label)``."""
    return {dict(key).get(label): v for key, v in vector.items()}
