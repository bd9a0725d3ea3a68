"""Rendering of :class:`nncli.explain.Explanation`: a plain-text table (the terminal) and
Markdown (course notes). The numbers are the explanation's, printed with the dtype's
significant digits (float32: 7, float64: 9); matrices wider than ``MAX_COLS`` columns show
their first and last columns around "…", taller than ``MAX_ROWS`` rows their first and last
rows around "⋮"."""

from __future__ import annotations

import textwrap

import numpy as np

MAX_COLS = 6  # wider: first 3, "…", last 2
MAX_ROWS = 6  # taller: first 3, "⋮", last 2
WRAP = 100  # sentences are wrapped at this width (matrices are elided instead)


def _fmt(x: float, digits: int) -> str:
    return f"{x:.{digits}g}"


def _digits(e) -> int:
    return 7 if e.dtype == "float32" else 9


def matrix_lines(M, digits: int, indent: str = "    ") -> list[str]:
    """A vector or matrix as aligned text lines, elided when wide or tall."""
    M = np.atleast_2d(np.asarray(M))
    r, c = M.shape
    rows = list(range(r)) if r <= MAX_ROWS else [0, 1, 2, None, r - 2, r - 1]
    cols = list(range(c)) if c <= MAX_COLS else [0, 1, 2, None, c - 2, c - 1]
    cells = [[("…" if j is None else _fmt(float(M[i, j]), digits)) for j in cols] if i is not None else None for i in rows]
    width = max(len(s) for row in cells if row is not None for s in row)
    out = []
    for row in cells:
        if row is None:
            out.append(indent + "⋮".rjust(width))
        else:
            out.append(indent + "[ " + "  ".join(s.rjust(width) if s != "…" else "…" for s in row) + " ]")
    return out


def _shape(M) -> str:
    return " × ".join(str(s) for s in np.shape(M))


def _sections(e):
    """(heading, [(label, text lines or a matrix)]) of the explanation, in the lecture's order."""
    d, n, L = _digits(e), e.n, len(e.layers)
    per = "one row per sample" if n > 1 else "one sample"
    head = [("", [e.what]), ("", ["rows: " + e.rows_note])]
    if e.csv_rows is not None:
        shown = ", ".join(str(int(r)) for r in e.csv_rows[:10]) + (", …" if len(e.csv_rows) > 10 else "")
        head.append(("", [f"CSV rows (1 = first data row): {shown}"]))
    head += [("", ["note: " + s]) for s in e.notes]
    head.append(("", [f"dtype {e.dtype}; vectors z_l, a_l, δ_l are rows here ({per}); W_l is (n_out × n_in): "
                      "row i = neuron i, column j = input j"]))
    secs = [("nncli explain", head)]
    fwd = [("x = a_0" + (" (standardised)" if e.notes and "standardised" in e.notes[0] else ""), e.X),
           ("y (target" + (", one-hot" if e.Y.shape[1] > 1 and e.loss_name == "cross_entropy" else "") + ")", e.Y)]
    for Ly in e.layers:
        l = Ly.l
        fwd += [(f"layer {l} ({Ly.activation}): W_{l}  ({_shape(Ly.W)})", Ly.W), (f"b_{l}", Ly.b),
                (f"z_{l} = W_{l} a_{l - 1} + b_{l}", Ly.z), (f"a_{l} = {Ly.activation}(z_{l})" + (" = ŷ" if l == L else ""), Ly.a)]
        if Ly.mask is not None:
            fwd.append((f"dropout mask m_{l} / (1 − p) (the next layer takes a_{l} ⊙ this)", Ly.mask))
    fwd.append(("", [f"{e.loss_formula}   (n = {n})", f"E = {_fmt(e.loss, d)}"]))
    secs.append(("Forward", fwd))
    bwd = []
    for Ly in reversed(e.layers):
        l = Ly.l
        if l == L:
            bwd.append((e.delta_rule, []))
            if e.dE_dyhat is not None:
                bwd.append(("dE/dŷ" + (" (already ÷ n)" if n > 1 else ""), e.dE_dyhat))
                if Ly.fprime is not None:
                    bwd.append((f"f′(z_{l})", Ly.fprime))
            bwd.append((f"δ_{l}" + (" (each row ÷ n: the mean loss)" if n > 1 else ""), Ly.delta))
        else:
            bwd.append((f"δ_{l} = (W_{l + 1}ᵀ δ_{l + 1}) ⊙ f′(z_{l})" + (" ⊙ m_" + str(l) + " / (1 − p)" if Ly.mask is not None else ""), []))
            bwd.append((f"W_{l + 1}ᵀ δ_{l + 1}", Ly.back))
            if Ly.fprime is not None:
                bwd.append((f"f′(z_{l}) = {_deriv(Ly.activation)}", Ly.fprime))
            bwd.append((f"δ_{l}", Ly.delta))
        s = "Σ_i " if n > 1 else ""
        bwd.append((f"∂E/∂W_{l} = {s}δ_{l} a_{l - 1}ᵀ" + (f" + l2 W_{l}" if e.l2 else "") + f"  ({_shape(Ly.dW)})", Ly.dW))
        bwd.append((f"∂E/∂b_{l} = {s}δ_{l}", Ly.db))
    secs.append(("Backward", bwd))
    upd = [("", [f"optimizer {e.optimizer}, η = {e.lr:g}"
                 + "".join(f", {k} = {v:g}" if not isinstance(v, bool) else f", {k} = {v}" for k, v in e.hyper.items())
                 + (f", step t = {e.t}" if e.t is not None else "")] + ["rule: " + r for r in e.rule])]
    if e.optimizer in ("adam", "adamw") and e.t is not None:
        b1, b2 = e.hyper["beta1"], e.hyper["beta2"]
        upd.append(("", [f"bias corrections: 1 − β1^t = {1 - b1 ** e.t:g}, 1 − β2^t = {1 - b2 ** e.t:g}"]))
    if e.clip is not None:
        c = e.clip
        upd.append(("", [f"clipping: ‖g‖ = {c['norm']:g}, max {c['max_norm']:g}: "
                         + (f"g scaled by {c['factor']:g}" if c["clipped"] else "not clipped")]))
    for Ly in e.layers:
        l = Ly.l
        for k, v in Ly.state.items():
            upd.append((f"{k.split('_')[0]} (for {k.split('_')[1]}_{l}, after the step)", v))
        upd.append((f"W_{l} ← W_{l} − η ∂E/∂W_{l}" if e.optimizer == "sgd" else f"W_{l} after the step", Ly.W_next))
        upd.append((f"b_{l} ← b_{l} − η ∂E/∂b_{l}" if e.optimizer == "sgd" else f"b_{l} after the step", Ly.b_next))
    upd.append((f"E after the step = {_fmt(e.loss_after, d)}  (same rows; before: {_fmt(e.loss, d)})", []))
    secs.append(("Update", upd))
    return secs


def _deriv(act: str) -> str:
    from .explain import DERIVATIVES

    return DERIVATIVES.get(act, "f′")


def explain_text(e) -> str:
    """The terminal table."""
    d, out = _digits(e), []
    for title, items in _sections(e):
        out.append(f"── {title} " + "─" * max(0, 60 - len(title)))
        for label, body in items:
            if isinstance(body, list):
                if label:
                    out.append(label)
                out.extend(w for line in body for w in textwrap.wrap(line, WRAP, subsequent_indent="  ") or [""])
            else:
                out.append(label + ":")
                out.extend(matrix_lines(body, d))
    return "\n".join(out)


def explain_markdown(e) -> str:
    """Markdown for course notes: a heading per phase, each quantity in a code block."""
    d, out = _digits(e), []
    for title, items in _sections(e):
        out.append(f"## {title}" if title != "nncli explain" else "# One step of training (nncli explain)")
        out.append("")
        for label, body in items:
            if isinstance(body, list):
                if label:
                    out.append(f"**{label}**")
                    out.append("")
                out.extend(f"{s}  " for s in body)
                out.append("")
            else:
                out += [f"**{label}**", "", "```", *matrix_lines(body, d, ""), "```", ""]
    return "\n".join(out).rstrip() + "\n"
