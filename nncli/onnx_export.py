"""``nncli export``: a run's whole prediction path as one ONNX graph (optional extra nncli[onnx]).

The graph does what ``nncli predict`` does to a row, in the same order
(:mod:`nncli.preprocess`, :mod:`nncli.model`, :mod:`nncli.tasks`):

- one graph input per feature column, named after it, shape [N]: a number (the graph's
  dtype) for a numeric column, a string for a categorical one;
- missing cells: NaN (or a number listed in data.na_values) in a numeric input, one of
  nncli's missing-cell texts (csvio.MISSING and data.na_values) in a string input. A run
  trained with data.missing: impute fills them with its saved values, and sets its saved
  missing indicators (Where, IsNaN);
- categorical inputs one-hot encoded against the saved category list (ai.onnx.ml
  LabelEncoder to the category's position, Equal against 0..k-1, Cast); an unseen category
  is all zeros (data.unknown_category: ignore);
- the standardisation (x - x_mean) / x_std with the saved statistics, in float64 as nncli
  computes it, then rounded once into the graph's dtype;
- the MLP layer by layer: z_l = W_l a_{l-1} + b_l is Gemm(a_{l-1}, W_l, b_l, transB=1) with
  W_l of shape (n_out, n_in), the lecture's W_ij as model.npz saves it; a_l = f_l(z_l);
- classifiers: ``probabilities`` [N, classes] (binary: 1 - y_hat, y_hat) and ``label`` [N],
  the class label as the text nncli predict writes (binary: y_hat >= 1/2; multi-class: the
  first largest output); regression: ``prediction`` [N, targets] in the targets' own units
  (a run with data.standardize_target: y_hat y_std + y_mean). An output whose name a feature
  column already has gets '_' appended (``label_``).

A row ``nncli predict`` refuses (a missing cell the run cannot fill, an unseen category under
data.unknown_category: error, an infinite number) cannot stop a graph: it gets NaN
probabilities or predictions and an empty label, as ``nncli predict --skip-invalid`` leaves
its cells empty.

The graph computes in the run's dtype (train.dtype; ``--dtype`` overrides): a float32 graph
takes float32 numbers and gives probabilities within 1e-5 of predict's float64 ones (measured
on the gallery: at most 1.5e-6), and labels decided in float32 (as ``nncli eval`` decides),
which differ from predict's only where y_hat is within about 1e-7 of a tie (the lecture's
single neuron on XOR); a float64 graph takes float64 numbers and agrees with predict to rounding.

onnx is imported only inside these functions: ``import nncli`` never needs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from .errors import ConfigError, NncliError, OutputError

OPSET = 17  # ai.onnx; onnxruntime >= 1.13 runs it
ML_OPSET = 2  # ai.onnx.ml: LabelEncoder with keys_strings / values_int64s
IR_VERSION = 8  # the IR of opset 17 (onnx 1.12), so older runtimes load the file too
INSTALL = "nncli export needs onnx: pip install 'nncli[onnx]'"


def _onnx():
    try:
        import onnx
    except ImportError:
        raise NncliError(INSTALL) from None
    return onnx


class _Graph:
    """Nodes, initializers and unique value names (a feature column may be named anything,
    so every name the graph makes is checked against those taken)."""

    def __init__(self, onnx, taken):
        self.onnx, self.h = onnx, onnx.helper
        self.nodes, self.inits = [], []
        self.taken = set(taken)

    def name(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name

    def const(self, base: str, value, dtype=None) -> str:
        name = self.name(base)
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs, base: str, domain: str = "", **attrs) -> str:
        out = self.name(base)
        self.nodes.append(self.h.make_node(op_type, list(inputs), [out], name=self.name(f"{op_type}_{base}"),
                                           domain=domain, **attrs))
        return out


# every activation nncli registers, as ONNX nodes: (graph, z) -> a
def _activation(g: _Graph, name: str, z: str, dtype, base: str) -> str:
    from .activations import LEAKY_SLOPE

    if name == "identity":
        return z
    if name == "sigmoid":
        return g.op("Sigmoid", [z], base)
    if name == "tanh":
        return g.op("Tanh", [z], base)
    if name == "relu":
        return g.op("Relu", [z], base)
    if name == "leaky_relu":
        return g.op("LeakyRelu", [z], base, alpha=LEAKY_SLOPE)
    if name == "step":  # 1 for z >= 0, else 0
        ge = g.op("GreaterOrEqual", [z, g.const("zero", 0, dtype)], base + "_ge")
        return g.op("Cast", [ge], base, to=_tensor_type(g, dtype))
    if name == "softmax":
        return g.op("Softmax", [z], base, axis=-1)
    raise ConfigError(f"activation '{name}' has no ONNX form in nncli export "
                      "(it writes identity, step, sigmoid, tanh, relu, leaky_relu and softmax)")


def _check_dtype(dtype: Optional[str]) -> None:
    if dtype is not None and dtype not in ("float32", "float64"):
        raise ConfigError(f"--dtype {dtype}: use float32 or float64")


def _tensor_type(g: _Graph, dtype) -> int:
    return g.h.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _missing_tokens(prep) -> list[str]:
    from .csvio import MISSING

    return list(dict.fromkeys(MISSING + [str(v) for v in prep.na_values]))


def build_model(run, dtype: Optional[str] = None):
    """The ONNX ModelProto of ``run`` (a :class:`nncli.runs.Run`) in ``dtype`` (float32 or
    float64; default the run's train.dtype)."""
    onnx = _onnx()
    from . import __version__
    from .csvio import numeric_tokens

    prep, model, cfg = run.prep, run.model, run.config
    _check_dtype(dtype)
    dtype = np.dtype(dtype or cfg.train.dtype)
    f64 = np.float64
    h, TP = onnx.helper, onnx.TensorProto
    T = h.np_dtype_to_tensor_dtype(dtype)
    outputs = _output_names(prep)
    g = _Graph(onnx, list(prep.features) + list(outputs.values()))
    cats = prep.categories
    inputs = [h.make_tensor_value_info(f, TP.STRING if f in cats else T, ["N"]) for f in prep.features]

    # ---- the encoded inputs before scaling, float64: numbers, one-hot blocks, missing indicators
    axis1 = g.const("axis_1", [1], np.int64)
    nan64 = g.const("nan", np.nan, f64)
    blocks, indicators = [], {}
    tokens = numeric_tokens(prep.na_values)
    for k, f in enumerate(prep.features):
        if f in cats:
            blocks.append(_one_hot(g, prep, f, k, axis1, nan64))
            continue
        x = f if dtype == f64 else g.op("Cast", [f], f"x{k}_f64", to=TP.DOUBLE)
        miss = g.op("IsNaN", [x], f"x{k}_missing")
        for t in tokens:  # a number of data.na_values (-999, say) means missing too
            miss = g.op("Or", [miss, g.op("Equal", [x, g.const(f"na{k}", t, f64)], f"x{k}_is_na")], f"x{k}_missing")
        fill = g.const(f"impute{k}", prep.impute_values[f], f64) if f in prep.impute_values else nan64
        x = g.op("Where", [miss, fill, x], f"x{k}_filled")  # NaN (a row nncli refuses) unless imputed
        blocks.append(g.op("Unsqueeze", [x, axis1], f"x{k}_col"))
        if f in prep.indicators:
            indicators[f] = g.op("Unsqueeze", [g.op("Cast", [miss], f"x{k}_gap", to=TP.DOUBLE), axis1], f"x{k}_gap_col")
    blocks += [indicators[f] for f in prep.indicators]
    raw = blocks[0] if len(blocks) == 1 else g.op("Concat", blocks, "encoded", axis=1)

    # ---- a row nncli predict refuses holds a NaN or an infinity: x * 0 is NaN exactly there
    zero64 = g.const("zero64", 0.0, f64)
    row_sum = g.op("ReduceSum", [g.op("Mul", [raw, zero64], "encoded_x0"), axis1], "row_check", keepdims=0)
    invalid = g.op("IsNaN", [row_sum], "invalid_row")

    # ---- standardisation in float64, rounded once into the graph's dtype (as Preprocessor.scale)
    a = raw
    if prep.standardize:
        a = g.op("Sub", [a, g.const("x_mean", prep.x_mean, f64)], "x_centred")
        a = g.op("Div", [a, g.const("x_std", prep.x_std, f64)], "x_standardised")
    if dtype != f64:
        a = g.op("Cast", [a], "a0", to=T)

    # ---- the MLP: z_l = W_l a_{l-1} + b_l (Gemm with transB: W_l is (n_out, n_in)), a_l = f_l(z_l)
    names = model.hidden + [model.output]
    for l, (W, b, act) in enumerate(zip(model.W, model.b, names), start=1):
        z = g.op("Gemm", [a, g.const(f"W{l}", W, dtype), g.const(f"b{l}", b, dtype)], f"z{l}", transB=1)
        a = _activation(g, act, z, dtype, f"a{l}")
    y_hat = a
    invalid_col = g.op("Unsqueeze", [invalid, axis1], "invalid_col")
    nan = g.const("nan_out", np.nan, dtype)

    graph_outputs = []
    if prep.task.is_classifier:
        if prep.task.name == "binary":  # one unit y_hat = P(class 1): (1 - y_hat, y_hat); class 1 when y_hat >= 1/2
            one_minus = g.op("Sub", [g.const("one", 1.0, dtype), y_hat], "p0")
            proba = g.op("Concat", [one_minus, y_hat], "p", axis=1)
            ge = g.op("GreaterOrEqual", [y_hat, g.const("half", 0.5, dtype)], "is_class_1")
            code = g.op("Squeeze", [g.op("Cast", [ge], "code_col", to=TP.INT64), axis1], "code")
        else:  # the first largest probability, as numpy's argmax
            proba = y_hat
            code = g.op("ArgMax", [y_hat], "code", axis=1, keepdims=0, select_last_index=0)
        labels = g.const("classes", np.array(list(prep.classes), dtype=object), object)
        label = g.op("Gather", [labels, code], "label_any", axis=0)
        g.nodes.append(h.make_node("Where", [invalid, g.const("no_label", np.array("", dtype=object), object), label],
                                   [outputs["label"]], name=g.name("Where_label")))
        g.nodes.append(h.make_node("Where", [invalid_col, nan, proba], [outputs["probabilities"]],
                                   name=g.name("Where_probabilities")))
        graph_outputs = [h.make_tensor_value_info(outputs["label"], TP.STRING, ["N"]),
                         h.make_tensor_value_info(outputs["probabilities"], T, ["N", len(prep.classes)])]
    else:
        value = y_hat
        if prep.scales_targets:  # back to the targets' own units, in float64 as Preprocessor.unscale_targets
            v = y_hat if dtype == f64 else g.op("Cast", [y_hat], "y_hat_f64", to=TP.DOUBLE)
            v = g.op("Add", [g.op("Mul", [v, g.const("y_std", prep.y_std, f64)], "y_scaled"),
                             g.const("y_mean", prep.y_mean, f64)], "y_units")
            value = v if dtype == f64 else g.op("Cast", [v], "y_units_out", to=T)
        g.nodes.append(h.make_node("Where", [invalid_col, nan, value], [outputs["prediction"]],
                                   name=g.name("Where_prediction")))
        graph_outputs = [h.make_tensor_value_info(outputs["prediction"], T, ["N", len(prep.targets)])]

    graph = h.make_graph(g.nodes, f"nncli {cfg.name}", inputs, graph_outputs, initializer=g.inits)
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET), h.make_opsetid("ai.onnx.ml", ML_OPSET)],
                     producer_name="nncli", producer_version=__version__)
    m.ir_version = IR_VERSION
    m.doc_string = (f"nncli run {run.path.name} ({cfg.name}): {prep.task.name}, layers "
                    f"{'-'.join(map(str, model.sizes))}, {'/'.join(model.hidden + [model.output])}")
    meta = {"nncli_run": run.path.name, "task": prep.task.name, "features": json.dumps(prep.features),
            "categorical": json.dumps(list(cats)), "targets": json.dumps(prep.targets),
            "outputs": json.dumps(outputs), "dtype": dtype.name}
    if prep.classes is not None:
        meta["classes"] = json.dumps(prep.classes)
    h.set_model_props(m, meta)
    return m


def _one_hot(g: _Graph, prep, f: str, k: int, axis1: str, nan64: str) -> str:
    """[N, categories] float64 of the string input ``f``: 1 at the saved category's position;
    all zeros for an unseen one (unknown_category: ignore); NaN (the row is refused) for an
    unseen one under unknown_category: error, and for a missing cell the run does not impute."""
    TP = g.onnx.TensorProto
    cats = list(prep.categories[f])
    codes = {c: j for j, c in enumerate(cats)}
    fill = prep.impute_values.get(f)
    gap_code = codes.get(fill, -1) if fill is not None else -2  # -1: unseen, -2: refused
    keys, values = list(cats), list(range(len(cats)))
    for t in _missing_tokens(prep):
        if t not in codes:
            keys.append(t)
            values.append(gap_code)
    code = g.op("LabelEncoder", [f], f"c{k}_code", domain="ai.onnx.ml", keys_strings=keys, values_int64s=values,
                default_int64=-1)
    col = g.op("Unsqueeze", [code, axis1], f"c{k}_code_col")
    eq = g.op("Equal", [col, g.const(f"c{k}_positions", np.arange(len(cats))[None, :], np.int64)], f"c{k}_eq")
    hot = g.op("Cast", [eq], f"c{k}_onehot", to=TP.DOUBLE)
    lowest = 0 if prep.unknown_category == "error" else -1  # codes below it are refused
    bad = g.op("Less", [col, g.const(f"c{k}_lowest", [[lowest]], np.int64)], f"c{k}_refused")
    return g.op("Where", [bad, nan64, hot], f"c{k}_block")


def _output_names(prep) -> dict[str, str]:
    """{'label': ..., 'probabilities': ...} or {'prediction': ...}: those names, with '_'
    appended while a feature column already has the name (the inputs are named after them)."""
    wanted = ["label", "probabilities"] if prep.task.is_classifier else ["prediction"]
    out = {}
    for w in wanted:
        name = w
        while name in prep.features:
            name += "_"
        out[w] = name
    return out


def export(run_dir, output: str, dtype: Optional[str] = None) -> dict:
    """Write the ONNX graph of the run at ``run_dir`` to ``output`` (atomically: on any error an
    existing file is left as it was). Refuses what ``nncli predict`` refuses (an incomplete or
    altered run: RunError). Returns what was written: {"path", "inputs": [(name, type)],
    "outputs": [(name, type)], "dtype"}."""
    from .csvio import atomic_file
    from .runs import load_run

    if output in ("", "-"):
        raise ConfigError("-o: name the .onnx file to write (the model is binary, not for stdout)")
    if Path(output).is_dir():
        raise OutputError(f"-o {output}: is a directory")
    _check_dtype(dtype)
    onnx = _onnx()
    run = load_run(run_dir)
    m = build_model(run, dtype)
    onnx.checker.check_model(m, full_check=True)
    data = m.SerializeToString()
    try:
        with atomic_file(output) as fh:
            fh.write(data)
    except OSError as e:
        raise OutputError(f"-o {output}: cannot write ({e.strerror or e})") from None
    return describe(m, output)


def describe(m, path) -> dict:
    """The graph's inputs and outputs as (name, 'float32[N]'-like type) pairs."""
    onnx = _onnx()

    def kind(v):
        t = v.type.tensor_type
        name = "string" if t.elem_type == onnx.TensorProto.STRING else np.dtype(
            onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)).name
        dims = ",".join(d.dim_param or str(d.dim_value) for d in t.shape.dim)
        return f"{name}[{dims}]"

    return {"path": str(path), "inputs": [(v.name, kind(v)) for v in m.graph.input],
            "outputs": [(v.name, kind(v)) for v in m.graph.output],
            "dtype": dict((p.key, p.value) for p in m.metadata_props).get("dtype")}
