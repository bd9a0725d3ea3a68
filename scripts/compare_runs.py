#!/usr/bin/env python3
"""Prove that a change (a refactor) changed no results: byte-identity of runs between two revisions.

For every gallery config, metrics.csv and model.npz of a run must be byte-identical to the
same run on the code before, and so must every value of ``nncli eval --json`` (without its path-valued keys
"run" and "saved"). model.npz is compared by content (member names and order, dtype, shape,
raw bytes) because zip archives embed timestamps; eval floats must be equal exactly. Keys
only the new report has (new scores) are shown as "+N new keys", not as differences.

    python scripts/compare_runs.py OLD_REF NEW_REF [--configs configs/xor.yaml ...] [--keep DIR]
    python scripts/compare_runs.py main WORKTREE     # did my uncommitted refactor change anything?
    python scripts/compare_runs.py HEAD~3 HEAD --configs configs/xor.yaml configs/iris.yaml

OLD_REF and NEW_REF are git revisions (hash, branch, HEAD~3, ...); WORKTREE means the current
files of this checkout, uncommitted changes included. Every other revision is checked out into
a temporary git worktree, removed at the end. Each side runs ``python -m nncli train CONFIG
--runs-dir TMP/SIDE --no-plots --quiet --json`` and then ``nncli eval RUN_DIR --json --no-plots``
with cwd and PYTHONPATH set to its own tree; the two sides run concurrently. Default configs:
every configs/*.yaml of NEW_REF. --keep DIR keeps the run directories in DIR/old and DIR/new.

--set KEY=VALUE (repeatable, not shown in --help) is for testing the checker: perturb the new
side. It is passed to the new side's ``nncli train`` only; ``--configs configs/xor.yaml
--set train.lr=0.51`` must report DIFFERS.

Exit status: 0 all identical, 1 something differs, 2 bad usage (unknown ref, a failed command).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

WORKTREE = "WORKTREE"
SIDES = ("old", "new")
DROPPED_EVAL_KEYS = ("run", "saved")  # paths, different by construction
MAX_DETAILS = 10


class Failure(Exception):
    """An unknown ref or a failed command: exit 2."""


class Stopped(Failure):
    """The other side failed, so this side stopped early."""


def git(root: Path, *args: str) -> str:
    p = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if p.returncode:
        raise Failure(f"git {shlex.join(args)} failed:\n{p.stderr.strip()}")
    return p.stdout.strip()


def checkout(root: Path, ref: str, path: Path, worktrees: list[Path]) -> Path:
    """The tree to run `ref` in: the checkout itself for WORKTREE, else a new detached worktree."""
    if ref == WORKTREE:
        return root
    try:
        commit = git(root, "rev-parse", "--verify", f"{ref}^{{commit}}")
    except Failure:
        raise Failure(f"unknown ref: {ref}") from None
    worktrees.append(path)  # before adding, so a half-made worktree is removed too
    git(root, "worktree", "add", "--detach", str(path), commit)
    return path


def nncli(args: list[str], tree: Path, stop: threading.Event) -> dict:
    """Run `python -m nncli ARGS` on `tree`'s code and return its JSON output."""
    if stop.is_set():
        raise Stopped("stopped")
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, "-m", "nncli", *args]
    p = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if p.returncode:
        stop.set()
        tail = "\n".join(p.stderr.strip().splitlines()[-15:])
        raise Failure(f"command failed (exit {p.returncode}) in {tree}:\n  {shlex.join(cmd)}\n{tail}")
    return json.loads(p.stdout)


def run_side(tree: Path, configs: list[str], runs_dir: Path, extra: list[str], stop) -> dict:
    """Train and evaluate every config on one side: {config: (run_dir, eval report)}."""
    results = {}
    for config in configs:
        train_args = ["train", config, "--runs-dir", str(runs_dir), "--no-plots", "--quiet", "--json"]
        run_dir = tree / nncli(train_args + extra, tree, stop)["run_dir"]
        results[config] = (run_dir, nncli(["eval", str(run_dir), "--json", "--no-plots"], tree, stop))
    return results


def run_both(trees: dict, configs: list[str], base: Path, extra: list[str]) -> list[dict]:
    """Run the two sides in two threads; raise the first real failure of either."""
    stop = threading.Event()
    with ThreadPoolExecutor(len(SIDES)) as pool:
        futures = [pool.submit(run_side, trees[side], configs, base / side,
                               extra if side == "new" else [], stop) for side in SIDES]
        try:
            wait(futures)
        except BaseException:  # Ctrl-C: let the workers stop after their current command
            stop.set()
            raise
    errors = sorted((f.exception() for f in futures if f.exception()), key=lambda e: isinstance(e, Stopped))
    if errors:
        raise errors[0]
    return [f.result() for f in futures]


def diff_metrics(old: Path, new: Path) -> list[str]:
    a, b = old.read_bytes(), new.read_bytes()
    if a == b:
        return []
    la, lb = (x.decode(errors="replace").splitlines() for x in (a, b))
    for i in range(max(len(la), len(lb))):
        x, y = (lines[i] if i < len(lines) else "<end of file>" for lines in (la, lb))
        if x != y:
            return [f"line {i + 1} old: {x}", f"line {i + 1} new: {y}"]
    return ["the same lines, different bytes (line endings?)"]


def max_abs_difference(x: np.ndarray, y: np.ndarray) -> str:
    if x.dtype.kind not in "biuf" or x.size == 0:
        return "values differ"
    return f"max abs difference {np.max(np.abs(x.astype(np.float64) - y.astype(np.float64))):.3g}"


def diff_npz(old: Path, new: Path) -> list[str]:
    with np.load(old, allow_pickle=False) as a, np.load(new, allow_pickle=False) as b:
        if a.files != b.files:
            return [f"members old: {a.files}", f"members new: {b.files}"]
        details = []
        for name in a.files:
            x, y = a[name], b[name]
            if x.dtype != y.dtype or x.shape != y.shape:
                details.append(f"{name}: old {x.dtype} {x.shape}, new {y.dtype} {y.shape}")
            elif x.tobytes() != y.tobytes():
                details.append(f"{name}: {max_abs_difference(x, y)}")
        return details


def flatten(obj, prefix: str = "") -> dict:
    """{"a": {"b": [1, 2]}} -> {"a.b.0": 1, "a.b.1": 2}."""
    if not isinstance(obj, (dict, list)) or not obj:
        return {prefix: obj}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj)
    flat = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def added_eval_keys(old: dict, new: dict) -> list[str]:
    """Keys of the new eval report the old one lacks (new scores): not differences, since
    every result the old code gave is still checked by :func:`diff_eval`."""
    fa, fb = (flatten({k: v for k, v in r.items() if k not in DROPPED_EVAL_KEYS}) for r in (old, new))
    return [k for k in fb if k not in fa]


def diff_eval(old: dict, new: dict) -> list[str]:
    """Every value of the old report that the new one lacks or gives otherwise."""
    a, b = ({k: v for k, v in r.items() if k not in DROPPED_EVAL_KEYS} for r in (old, new))
    if json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True):
        return []
    fa, fb = flatten(a), flatten(b)
    show = lambda flat, key: json.dumps(flat[key]) if key in flat else "<missing>"  # noqa: E731
    keys = [k for k in fa if show(fa, k) != show(fb, k)]
    details = [f"{k}: old {show(fa, k)}, new {show(fb, k)}" for k in keys[:MAX_DETAILS]]
    if len(keys) > MAX_DETAILS:
        details.append(f"... and {len(keys) - MAX_DETAILS} more keys")
    return details


def report(configs: list[str], old: dict, new: dict) -> int:
    """Print the table; 0 if every config is identical, else 1."""
    width = max(len("config"), *(len(Path(c).stem) for c in configs))
    print(f"{'config':<{width}}  metrics.csv  model.npz  eval")
    identical = 0
    for config in configs:
        (old_dir, old_eval), (new_dir, new_eval) = old[config], new[config]
        diffs = {"metrics.csv": diff_metrics(old_dir / "metrics.csv", new_dir / "metrics.csv"),
                 "model.npz": diff_npz(old_dir / "model.npz", new_dir / "model.npz"),
                 "eval": diff_eval(old_eval, new_eval)}
        cells = ["DIFFERS" if d else "same" for d in diffs.values()]
        added = added_eval_keys(old_eval, new_eval)
        if added and not diffs["eval"]:
            cells[2] = f"same (+{len(added)} new keys)"
        print(f"{Path(config).stem:<{width}}  {cells[0]:<11}  {cells[1]:<9}  {cells[2]}")
        for column, details in diffs.items():
            for line in details:
                print(f"    {column}  {line}")
        identical += not any(diffs.values())
    print(f"{identical} of {len(configs)} configs identical")
    return 0 if identical == len(configs) else 1


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_ref", help=f"git revision, or {WORKTREE} for this checkout's current files")
    parser.add_argument("new_ref", help=f"git revision, or {WORKTREE}")
    parser.add_argument("--configs", nargs="+", help="config paths relative to the tree "
                        "(default: every configs/*.yaml of NEW_REF)")
    parser.add_argument("--keep", type=Path, help="keep the run directories in DIR/old and DIR/new")
    parser.add_argument("--set", action="append", default=[], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    root = Path(git(Path(__file__).resolve().parent, "rev-parse", "--show-toplevel"))
    tmp = Path(tempfile.mkdtemp(prefix="compare_runs-"))
    worktrees: list[Path] = []
    try:
        trees = {side: checkout(root, ref, tmp / f"tree-{side}", worktrees)
                 for side, ref in zip(SIDES, (args.old_ref, args.new_ref))}
        configs = list(dict.fromkeys(args.configs or sorted(
            p.relative_to(trees["new"]).as_posix() for p in (trees["new"] / "configs").glob("*.yaml"))))
        if not configs:
            raise Failure(f"no configs/*.yaml in {args.new_ref}")
        base = args.keep.resolve() if args.keep else tmp / "runs"
        extra = [arg for kv in args.set for arg in ("--set", kv)]
        return report(configs, *run_both(trees, configs, base, extra))
    except Failure as e:
        print(f"compare_runs: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("compare_runs: interrupted", file=sys.stderr)
        return 130
    finally:
        for path in worktrees:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(path)],
                           capture_output=True)
        subprocess.run(["git", "-C", str(root), "worktree", "prune"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
