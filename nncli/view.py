"""Terminal rendering with rich. Only nncli.cli imports this module.

Progress and messages go to stderr; stdout is left to results (paths, JSON, CSV).
Without a terminal (pipes, files, CI) nothing is redrawn and no escape codes are written:
one plain line per reported epoch. ``NO_COLOR`` is respected (rich reads it).
"""

from __future__ import annotations

import math
import re
import sys
import time
from typing import Optional

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

err = Console(stderr=True, highlight=False)
REPORT_ROWS = 20  # a run reports about this many epochs, whatever its length


def _stdout() -> Console:
    """A console for a command's result on stdout. Files and pipes get no width limit, so a
    wide table is never wrapped or truncated there; a terminal gets its own width."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 10_000)


def _stderr(fn):
    """Messages on stderr are best effort: a stderr that cannot be written (``2>/dev/full``, a
    closed pipe) never stops a command, as it does not stop other Unix tools."""
    import functools

    @functools.wraps(fn)
    def quiet(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OSError:
            return None

    return quiet


def one_line(msg: str) -> str:
    """``msg`` with every character that could end or disturb a line (newlines, carriage
    returns, the other separators str.splitlines knows, control characters) written as an
    escape, so that a message naming a cell of the user's data stays one line."""
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in str(msg))


@_stderr
def error(msg: str) -> None:
    msg = one_line(msg)
    if err.is_terminal:
        err.print(f"[bold red]error:[/] {escape(msg)}", markup=True, soft_wrap=True)
    else:
        print(f"nncli: error: {msg}", file=sys.stderr, flush=True)


@_stderr
def warning(msg: str) -> None:
    msg = one_line(msg)
    if err.is_terminal:
        err.print(f"[yellow]warning:[/] {escape(msg)}", markup=True, soft_wrap=True)
    else:
        print(f"nncli: warning: {msg}", file=sys.stderr, flush=True)


def status(msg: str):
    """A spinner with ``msg`` on stderr while a slow step runs, on a terminal only (a
    context manager; elsewhere it does nothing, so logs stay one line per event)."""
    import contextlib

    if err.is_terminal and msg:
        return err.status(msg, spinner="dots")
    return contextlib.nullcontext()


@_stderr
def info(msg: str) -> None:
    if err.is_terminal:
        err.print(msg, markup=False, soft_wrap=True)
    else:
        print(msg, file=sys.stderr, flush=True)


def _fmt(x: Optional[float]) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:.4f}" if 1e-3 <= abs(x) < 1e5 or x == 0 else f"{x:.3e}"


def _elapsed(s: Optional[float]) -> str:
    if s is None:  # epochs trained before a resume: their times are not kept
        return "-"
    return f"{s:.1f}s" if s < 60 else f"{int(s // 60)}m{s % 60:04.1f}s"


class TrainView:
    """The live loss table (terminal) or plain progress lines (anything else)."""

    def __init__(self, total_epochs: int, metric: str, has_val: bool, title: str, quiet: bool = False):
        self.total = total_epochs
        self.metric = metric
        self.has_val = has_val
        self.title = title
        self.quiet = quiet
        self.every = max(1, math.ceil(total_epochs / REPORT_ROWS))
        self.rows: list = []
        self.live: Optional[Live] = None
        self.last = None
        self._last_draw = 0.0

    def is_report_epoch(self, epoch: int) -> bool:
        return epoch == 1 or epoch % self.every == 0 or epoch == self.total

    def __enter__(self):
        if not self.quiet and err.is_terminal:
            self.live = Live(self._table(), console=err, refresh_per_second=8, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        try:
            self._close(*exc)
        except OSError:  # stderr cannot be written: training goes on without the table (see _stderr)
            self.live = None
        return False

    def _close(self, *exc):
        if self.live is not None:
            if self.last is not None and (not self.rows or self.rows[-1] is not self.last):
                self.rows.append(self.last)
            self.live.update(self._table(live_row=False), refresh=True)
            self.live.__exit__(*exc)
            self.live = None
        return False

    def update(self, rec) -> None:
        if self.quiet:
            return
        try:
            self._update(rec)
        except OSError:  # stderr cannot be written: training goes on without the table (see _stderr)
            self.quiet, self.live = True, None

    def _update(self, rec) -> None:
        self.last = rec
        report = self.is_report_epoch(rec.epoch)
        if self.live is None:
            if report:
                print(self._line(rec), file=sys.stderr, flush=True)
            return
        if report:
            self.rows.append(rec)
        now = time.monotonic()
        if report or now - self._last_draw > 0.1:
            self._last_draw = now
            self.live.update(self._table())

    def _line(self, r) -> str:
        w = len(str(self.total))
        parts = [f"epoch {r.epoch:>{w}}/{self.total}", f"loss {_fmt(r.loss)}", f"{self.metric} {_fmt(r.metric)}"]
        if self.has_val:
            parts += [f"val_loss {_fmt(r.val_loss)}", f"val_{self.metric} {_fmt(r.val_metric)}"]
        parts.append(_elapsed(r.seconds))
        return "  ".join(parts)

    def _table(self, live_row: bool = True) -> Table:
        t = Table(title=self.title, title_justify="left", expand=False)
        t.add_column("epoch", justify="right")
        t.add_column("loss", justify="right")
        t.add_column(self.metric, justify="right")
        if self.has_val:
            t.add_column("val_loss", justify="right")
            t.add_column(f"val_{self.metric}", justify="right")
        t.add_column("elapsed", justify="right")
        rows = list(self.rows)
        if live_row and self.last is not None and (not rows or rows[-1] is not self.last):
            rows.append(self.last)
        for r in rows:
            cells = [f"{r.epoch}/{self.total}", _fmt(r.loss), _fmt(r.metric)]
            if self.has_val:
                cells += [_fmt(r.val_loss), _fmt(r.val_metric)]
            cells.append(_elapsed(r.seconds))
            style = "dim" if live_row and r is self.last and r not in self.rows else None
            t.add_row(*cells, style=style)
        return t


SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values, width: int = 40) -> str:
    """The loss curve in one line of block characters (log scale when it spans decades)."""
    import numpy as np

    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if len(v) == 0:
        return ""
    if len(v) > width:  # the mean of each of `width` consecutive slices
        v = np.array([s.mean() for s in np.array_split(v, width)])
    if v.min() > 0 and v.max() / v.min() > 10:
        v = np.log10(v)
    lo, hi = v.min(), v.max()
    if hi - lo < 1e-12:
        return SPARKS[0] * len(v)
    return "".join(SPARKS[int(round((x - lo) / (hi - lo) * (len(SPARKS) - 1)))] for x in v)


def summary_table(summary: dict, run_dir: str, losses=()) -> None:
    """The closing summary of a training run, on stderr."""
    status = summary.get("status", "?")
    lines = [f"run {run_dir}: {status} after {summary.get('epochs_run')} epochs in {_elapsed(summary.get('train_seconds', 0.0))}"]
    spark = sparkline(losses)
    if spark:
        units = " (on standardized targets)" if summary.get("loss_units") == "standardized targets" else ""
        lines.append(f"  loss {spark}  {_fmt(losses[0])} -> {_fmt(losses[-1])}{units}")
    for key, label in (("metrics", "train"), ("val_metrics", "val")):
        m = summary.get(key)
        if m:
            vals = ", ".join(f"{k} {_fmt(v)}" for k, v in m.items() if k != "rows")
            lines.append(f"  {label} ({m.get('rows')} rows): {vals}")
    if summary.get("best_epoch") is not None:
        on = f" (best {summary['monitor']})" if summary.get("monitor") else ""
        lines.append(f"  early stopping kept the weights of epoch {summary['best_epoch']}{on}")
    for line in lines:
        info(line)


def gradcheck_report(report, what: str) -> None:
    """The per-tensor gradcheck table, on stdout (it is the command's result)."""
    from rich import box

    out = _stdout()
    t = Table(title=f"gradcheck: {what}", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("tensor", "shape", "checked", "max abs err", "max rel err", "worst", "backprop", "numeric", "kinks", "result"):
        t.add_column(col, justify="left" if col in ("tensor", "worst", "result") else "right", no_wrap=True)
    for c in report.tensors:
        ok = "[green]pass[/]" if c.passed else f"[bold red]FAIL[/] ({c.failures})"
        t.add_row(
            c.name, "x".join(map(str, c.shape)), str(c.checked), f"{c.max_abs_error:.1e}", f"{c.max_rel_error:.1e}",
            f"[{','.join(map(str, c.worst_index))}]", f"{c.worst_backprop:.5g}", f"{c.worst_numeric:.5g}",
            str(c.kinks), ok,
        )
    out.print(t)
    out.print(
        f"{report.samples} samples, loss {report.loss}, activations {' -> '.join(report.activations)}, l2 {report.l2:g}; "
        f"central differences with eps {report.eps:g}; pass if |a - n| / max(|a|, |n|, {report.tiny:.3g}) <= {report.tol:g}",
        soft_wrap=True,
    )
    for note in report.notes:
        out.print(f"note: {note}", soft_wrap=True)
    out.print("[green]all gradients agree[/]" if report.passed else "[bold red]gradients disagree[/]")


def _score_table(label: str, *scores: str) -> Table:
    """A table of one label column (left) and score columns (right-aligned numbers)."""
    from rich import box

    t = Table(box=box.SIMPLE_HEAD)
    t.add_column(label, justify="left")
    for col in scores:
        t.add_column(col, justify="right")
    return t


def eval_report(report: dict, saved: str) -> None:
    """Evaluation tables on stdout: metrics, per-class scores (with one-vs-rest ROC-AUC and
    average precision for more than two classes) and the confusion matrix."""
    from rich import box

    out = _stdout()
    out.print(f"evaluated {report['run']} on {report['source']} ({report['rows']} rows)", soft_wrap=True)
    if "accuracy" in report:
        out.print(f"loss ({report['loss_name']}) {_fmt(report['loss'])}   accuracy {_fmt(report['accuracy'])}")
        ovr = "roc_average" in report  # more than two classes: ROC-AUC and AP per class, one-vs-rest
        if "roc_auc" in report:  # a report written before nncli had them has none
            which = "macro one-vs-rest" if ovr else f"positive class {report.get('positive_class')}"
            out.print(f"log-loss {_fmt(report['log_loss'])}   ROC-AUC {_fmt(report['roc_auc'])}   "
                      f"average precision {_fmt(report['average_precision'])} ({which})", soft_wrap=True)
            for note in report.get("score_notes", []):  # why a score is null (a class absent, ...)
                out.print(f"  note: {note}", soft_wrap=True, markup=False, highlight=False)
        extra = ("ROC-AUC", "AP") if ovr else ()
        t = _score_table("class", "precision", "recall", "f1", "support", *extra)
        for label, m in report["per_class"].items():
            t.add_row(label, _fmt(m["precision"]), _fmt(m["recall"]), _fmt(m["f1"]), str(m["support"]),
                      *([_fmt(m.get("roc_auc")), _fmt(m.get("average_precision"))] if ovr else []))
        mac = report["macro"]
        t.add_row("macro avg", _fmt(mac["precision"]), _fmt(mac["recall"]), _fmt(mac["f1"]), str(report["rows"]),
                  *([_fmt(report["roc_auc"]), _fmt(report["average_precision"])] if ovr else []), style="bold")
        out.print(t)
        cm = report["confusion_matrix"]
        out.print("confusion matrix (rows: true class, columns: predicted class)")
        c = Table(box=box.SIMPLE_HEAD)
        c.add_column("true \\ predicted", justify="left")
        for label in cm["labels"]:
            c.add_column(label, justify="right")
        for i, (label, row) in enumerate(zip(cm["labels"], cm["matrix"])):
            c.add_row(label, *[f"[bold]{v}[/]" if i == j else str(v) for j, v in enumerate(row)])
        out.print(c)
    else:
        units = f", in {report['loss_units']}" if report.get("loss_units") else ""
        out.print(f"loss ({report['loss_name']}{units}) {_fmt(report['loss'])}")
        t = _score_table("target", "MSE", "RMSE", "MAE", "R²")
        for name, m in report["targets"].items():
            t.add_row(name, _fmt(m["mse"]), _fmt(m["rmse"]), _fmt(m["mae"]), _fmt(m["r2"]))
        out.print(t)
    info(f"saved {saved}")


def dataframe_table(df, title: str = "", wide: bool = False, drop=(), hint: str = "--wide", console=None) -> None:
    """A pandas DataFrame as a rich table on stdout (or ``console``).

    Files and pipes get every column whole. A terminal gets a table that fits its width and
    never cuts a number: step by step, until it fits, the run ids are shortened to their
    shortest unique end (``…4a59``), dotted config headers to their last part, long text
    cells ellipsised, then the columns of ``drop`` left out in that order (the caller's
    priority: least useful first); one line below the table names what was left out and
    ``hint`` (how to see it all). ``wide`` shows every column whole whatever the width (the
    terminal wraps). Should even the narrowest table not fit, it is printed whole too."""
    out = console if console is not None else _stdout()
    spec = _TableSpec(df)
    limit = out.width if out.is_terminal and not wide else None
    changed = []
    if limit is not None:
        steps = [("id", None), ("headers", None), ("text", 24)] + [("drop", c) for c in drop if c in spec.columns] + [("text", 10)]
        for what, arg in steps:
            if spec.width(out) <= limit:
                break
            if spec.apply(what, arg) and what != "drop" and what not in changed:
                changed.append(what)
        for c in list(reversed(spec.dropped)):  # the most useful first: back in if it fits now
            spec.restore(c)
            if spec.width(out) > limit:
                spec.apply("drop", c)
        spec.dropped = [c for c in drop if c in spec.dropped]
    t = spec.table(title)
    if spec.width(out) > out.width:  # --wide, or a terminal narrower than the narrowest table
        out.print(_Unbounded(t, spec.width(out)), crop=False)
    else:
        out.print(t)
    if spec.dropped:
        names, tail = list(spec.dropped), f" (all columns: {hint})"
        def line(names):
            more = f" and {len(spec.dropped) - len(names)} more" if len(names) < len(spec.dropped) else ""
            return f"left out: {', '.join(names)}{more}{tail}"

        while len(names) > 1 and len(line(names)) > out.width:
            names.pop()  # one line: the first left out (least useful) named, the count of the rest
        out.print(line(names), soft_wrap=True, markup=False, highlight=False)
    elif changed:
        labels = ", ".join({"id": "ids", "headers": "config keys", "text": "long text"}[c] for c in changed)
        out.print(f"shortened to fit: {labels} (whole: {hint})", soft_wrap=True, markup=False, highlight=False)


NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?%?|[+-]?(inf|nan)")


def _is_number_text(s: str) -> bool:
    """Whether a cell's text is a number (or 'mean ± std' of two), which is never ellipsised."""
    return all(NUMBER.fullmatch(p.strip()) for p in s.split("±"))


def unique_suffixes(values: list) -> list:
    """Each value shortened to its shortest end of whole '-'-separated parts that no other
    value ends with (``20261129-234008-sw-019-4a59`` -> ``4a59``); values that cannot be
    shortened so (duplicates, no '-') are kept whole."""
    out = []
    for i, v in enumerate(values):
        parts, short = v.split("-"), v
        for k in range(1, len(parts)):
            end = "-".join(parts[-k:])
            if not any(j != i and (w == end or w.endswith("-" + end)) for j, w in enumerate(values)):
                short = end
                break
        out.append(short)
    return out


class _TableSpec:
    """The columns, headers and cell texts of a table, narrowed step by step (dataframe_table)."""

    def __init__(self, df):
        self.columns = [str(c) for c in df.columns]
        self.headers = dict(zip(self.columns, self.columns))
        self.right = {str(c): df[c].dtype.kind in "iuf" for c in df.columns}
        self.cells = {str(c): [_cell(v) for v in df[c]] for c in df.columns}
        self.dropped: list = []
        self._all = list(self.columns)
        self._width = None

    def restore(self, column: str) -> None:
        """Put a left-out column back in its place."""
        self.dropped.remove(column)
        self.columns = [c for c in self._all if c in self.columns or c == column]
        self._width = None

    def apply(self, what: str, arg) -> bool:
        """Narrow by one step; whether it changed anything."""
        before = (list(self.columns), dict(self.headers), {c: list(v) for c, v in self.cells.items()})
        if what == "drop":
            self.columns.remove(arg)
            self.dropped.append(arg)
        elif what == "id" and "id" in self.cells:
            short = unique_suffixes(self.cells["id"])
            self.cells["id"] = [v if s == v else "…" + s for v, s in zip(self.cells["id"], short)]
        elif what == "headers":
            lasts = [h.rsplit(".", 1)[-1] for h in self.headers.values()]
            for c, h in self.headers.items():
                last = h.rsplit(".", 1)[-1]
                if last != h and lasts.count(last) == 1 and last not in self.columns:
                    self.headers[c] = last
        elif what == "text":
            for c in self.columns:
                if c != "id" and not self.right[c]:
                    self.cells[c] = [v if len(v) <= arg or _is_number_text(v) else v[: arg - 1] + "…" for v in self.cells[c]]
        self._width = None
        return before != (self.columns, self.headers, self.cells)

    def table(self, title: str = "") -> Table:
        from rich import box

        t = Table(title=title or None, title_justify="left", box=box.SIMPLE_HEAD)
        for c in self.columns:
            t.add_column(self.headers[c], justify="right" if self.right[c] else "left", no_wrap=True)
        for row in zip(*(self.cells[c] for c in self.columns)):
            t.add_row(*[escape(v) for v in row])
        return t

    def width(self, console) -> int:
        """The table's natural width: the columns of its widest cells, nothing shrunk (rich
        measures the borders and padding on the headers alone; the cells are counted here,
        as measuring every row at each step would be slow for thousands of runs)."""
        if self._width is None:
            from rich.cells import cell_len
            from rich.measure import Measurement

            heads = Table(box=self.table().box)
            for c in self.columns:
                heads.add_column(self.headers[c], no_wrap=True)
            frame = Measurement.get(console, console.options.update(width=1_000_000), heads).maximum
            frame -= sum(cell_len(self.headers[c]) for c in self.columns)
            self._width = frame + sum(max([cell_len(self.headers[c])] + [cell_len(v) for v in self.cells[c]]) for c in self.columns)
        return self._width


class _Unbounded:
    """A renderable rendered ``width`` columns wide whatever the console's width (the terminal wraps)."""

    def __init__(self, renderable, width: int):
        self.renderable, self.w = renderable, width

    def __rich_console__(self, console, options):
        yield from console.render(self.renderable, options.update(width=self.w))


def _cell(v) -> str:
    if v is None or v is getattr(__import__("pandas"), "NA", object()):
        return "-"
    if isinstance(v, float):
        return "-" if math.isnan(v) else _fmt(v)
    return str(v)
