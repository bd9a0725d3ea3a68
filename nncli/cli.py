"""The nncli command line. Thin: parse options, call the library, render with nncli.view.

Exit codes: 0 success; 1 the job ran and failed (diverged, gradcheck mismatch);
2 bad usage, config or data; 130 interrupted.
"""

from __future__ import annotations

from . import process  # standard library only, first of all: before anything slow loads

process.hold_signals_while_loading()
process.fit_the_address_space()

import contextlib  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import List, Optional  # noqa: E402

import typer  # noqa: E402

from .errors import EXIT_INTERRUPTED, EXIT_USAGE, NncliError  # noqa: E402

EXIT_CODES_HELP = "Exit codes: 0 success; 1 the job ran and failed (diverged, gradcheck mismatch); 2 bad usage, config or data; 130 interrupted."

app = typer.Typer(
    name="nncli",
    help="Train small neural networks from YAML configs, as the lecture teaches them.\n\n" + EXIT_CODES_HELP,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _command(fn):
    """Turn library errors into one line on stderr and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            from . import view  # noqa: F401  (inside the try: a Ctrl-C while it loads is one line too)

            result = fn(*args, **kwargs)
            process.result_out()
            return result
        except KeyboardInterrupt:
            _interrupted_exit()
        except BrokenPipeError:
            process.result_out()
            _quiet_broken_pipe()
            raise typer.Exit(0)
        except NncliError as e:
            if process.interrupted_by(e):
                _interrupted_exit()
            process.result_out()
            _error_line(str(e))
            raise typer.Exit(e.exit_code)
        except MemoryError:
            process.result_out()
            _error_line(f"out of memory in nncli {fn.__name__.rstrip('_')}; free memory, or use smaller data, "
                        "model.layers or train.batch_size")
            raise typer.Exit(EXIT_USAGE)
        except OSError as e:  # what the library did not name itself: most often stdout that cannot be written
            if process.interrupted_by(e):
                _interrupted_exit()
            process.result_out()
            _error_line(_os_error_line(e))
            raise typer.Exit(EXIT_USAGE)
        except Exception as e:
            if not process.interrupted_by(e):
                raise
            _interrupted_exit()

    return wrapper


def _os_error_line(e: OSError) -> str:
    """One line for an OSError: the file and the cause, or, with no file named, standard output."""
    cause = e.strerror or str(e) or type(e).__name__
    if e.filename is not None:
        return f"{e.filename}: {cause}"
    return f"cannot write the output: {cause}"


def _print_result(text: str) -> None:
    """``text`` and a newline on stdout, now (flushed); see :func:`_stdout`."""
    with _stdout():
        print(text, flush=True)


@contextlib.contextmanager
def _stdout():
    """``with _stdout():`` around a command's result: if stdout cannot take it (a full disk),
    OutputError (one line, exit 2). A closed pipe is left to _command: the reader went away,
    which is no error."""
    from .errors import OutputError

    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OutputError(f"cannot write to stdout: {e.strerror or e}") from None


def _quiet_broken_pipe(stream=None):
    """Point ``stream`` (stdout) at /dev/null: what is still buffered goes nowhere, instead
    of failing again when the interpreter flushes it at exit."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, (stream or sys.stdout).fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _version(value: bool):
    if value:
        from . import __version__

        print(f"nncli {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
):
    """Train small neural networks from YAML configs, as the lecture teaches them."""


SetOpt = typer.Option(None, "--set", metavar="KEY=VALUE", help="Override a config key, e.g. --set train.lr=0.1 (repeatable; the value is read as YAML).")


@app.command()
@_command
def train(
    config: Optional[Path] = typer.Argument(None, help="YAML experiment config, e.g. configs/xor.yaml", show_default=False),
    set_: Optional[List[str]] = SetOpt,
    name: Optional[str] = typer.Option(None, "--name", help="Run name (default: the config's name)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run directories are created."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted run directory to its configured epochs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but the result."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (run_dir and summary) on stdout."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip loss.png, decision_boundary.png, fit.png (and training.gif)."),
    animate: bool = typer.Option(False, "--animate", help="Write training.gif (train.snapshots: 40 unless the config sets it)."),
    track: Optional[str] = typer.Option(None, "--track", metavar="mlflow|none", help="Also log the finished run to MLflow (needs nncli[mlflow]; URI and experiment: the config's track.mlflow, else MLflow's defaults); none: not even if the config has a track section."),
):
    """Train the network a config describes and write runs/<id>/.

    Streams the loss on stderr; prints the run directory (or, with --json, the summary) on
    stdout. Ctrl-C or SIGTERM finishes the current step, writes a checkpoint and exits 130;
    --resume RUN_DIR continues it bit for bit.
    """
    from . import view
    from . import tracking
    from .errors import Interrupted, JobFailed

    tracking.target(track, None)  # an unknown --track, or MLflow missing: refused before the data are read
    if track == "mlflow":
        tracking.require_mlflow("nncli train --track mlflow")
    job = _training_job(config, set_, name, runs_dir, resume, quiet)
    tracked = tracking.target(track, job.cfg)
    if tracked is not None:
        tracking.require_mlflow("the config's track.mlflow section" if track is None else "nncli train --track mlflow")
    if animate and not job.cfg.train.snapshots:  # before start(): the run's config.yaml records it
        from .animate import DEFAULT
        from .memory import check_training_memory

        job.cfg.train.snapshots = DEFAULT
        check_training_memory(job.cfg, job.cfg.model.layers, job.data, job.model)  # now with the snapshots
    if not quiet:
        for w in job.warnings:
            view.warning(w)

    def stop():  # finish the current step, then checkpoint; a second signal changes nothing
        job.trainer.stop_requested = True

    # from here until the result is printed, SIGINT/SIGTERM only ask the trainer to stop: a
    # signal that arrives after the last step changes nothing, the run is complete
    with _signals_call(stop):
        with job.guarded():  # a full disk or exhausted memory: one line, and the run at its last checkpoint (or gone)
            run_dir = job.start()
            cfg = job.cfg
            title = f"{cfg.name}: {'-'.join(map(str, cfg.model.layers))} {cfg.loss}, {cfg.train.optimizer} lr {cfg.train.lr}"
            with view.TrainView(cfg.train.epochs, job.metric_name(), job.data.val is not None, title, quiet=quiet) as tv:
                for rec in job.history_so_far():
                    tv.update(rec)
                for rec in job.epochs():
                    tv.update(rec)
            n_warn = len(job.warnings)
            summary = job.finish(plots=not no_plots)
        if not quiet:
            for w in job.warnings[n_warn:]:
                view.warning(w)
            view.summary_table(summary, str(run_dir), [r.loss for r in job.result.history])
        if tracked is not None:  # from the complete run directory; never changes the run or the exit status
            with view.status(f"logging {run_dir} to MLflow" if not quiet else ""):
                run_id, notes = tracking.log_run(tracked, run_dir)
            for w in notes:  # shown even with --quiet: something asked for was not done
                view.warning(w)
            if run_id is not None and not quiet:
                view.info(f"logged to MLflow ({tracking.shown_uri(tracked.resolved)}): experiment {tracked.experiment}, run {run_id}")
        _print_result(json.dumps({"run_dir": str(run_dir), **summary}, ensure_ascii=False) if as_json else str(run_dir))
        process.result_out()  # the run is complete (or checkpointed): a signal from here on changes nothing
    if summary["status"] == "diverged":
        raise JobFailed(summary.get("message", "training diverged"))
    if summary["status"] == "interrupted":
        raise Interrupted(f"interrupted after {summary['epochs_run']} epochs; checkpoint saved. Continue with: nncli train --resume {run_dir}")


def _training_job(config, set_, name, runs_dir, resume, quiet):
    """The job to run: a new one from CONFIG (with --set and --name), or a resumed run."""
    from . import view
    from .config import load_config
    from .errors import ConfigError
    from .job import TrainingJob
    from .runs import RunDir

    if resume is not None:
        if config is not None or set_ or name:
            raise ConfigError("--resume RUN_DIR continues a run with its saved config: give no CONFIG, --set or --name")
        with view.status(f"reading the data of {resume}" if not quiet else ""):
            return TrainingJob.resume(resume)
    if config is None:
        raise ConfigError("missing CONFIG: nncli train CONFIG (or nncli train --resume RUN_DIR)")
    overrides = list(set_ or []) + ([f"name={_yaml_quoted(name)}"] if name is not None else [])
    cfg = load_config(config, overrides)
    with view.status(f"reading {cfg.data.train}" if not quiet else ""):
        job = TrainingJob(cfg, runs_dir)
    job.warnings += [f"{c}: the result will not reproduce that run" for c in RunDir(config.parent).data_changes(job.data_files)]
    return job


def _yaml_quoted(text: str) -> str:
    """``text`` as a YAML double-quoted scalar that reads back unchanged (json.dumps would
    write a character outside the BMP as a surrogate pair, which YAML reads as two)."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF or ord(c) > 0xFFFF or c in "\u2028\u2029\ufeff":
            out.append(f"\\U{ord(c):08x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


@contextlib.contextmanager
def _signals_call(fn):
    """While the block runs, SIGINT and SIGTERM call ``fn()`` instead of interrupting it."""
    import signal

    def handler(signum, frame):
        if process.State.active:
            process.State.interrupted = True  # after the block, a later signal changes nothing either
        fn()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        if not process.State.done:  # once the result is out, signals stay ignored (see main)
            for sig, old in previous.items():
                signal.signal(sig, old)


@app.command()
@_command
def gradcheck(
    target: Path = typer.Argument(..., help="A config file (fresh seeded weights) or a run directory (its trained weights).", show_default=False),
    samples: int = typer.Option(8, "--samples", "-n", help="Training rows (after preprocessing) to check on."),
    eps: float = typer.Option(1e-6, "--eps", help="Finite-difference step."),
    tol: float = typer.Option(
        1e-6, "--tol",
        help="Largest relative error |a - n| / max(|a|, |n|, tiny) that passes. In float64 a correct smooth gradient "
        "agrees to ~1e-9 absolute (rounding ~ ulp(E)/eps, truncation ~ eps^2), so 1e-6 passes every correct gradient "
        "larger than tiny = 1e-3 max(1, |E|) and fails any wrong formula.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for choosing the samples (and the --max-elements subset)."),
    set_: Optional[List[str]] = SetOpt,
    max_elements: Optional[int] = typer.Option(None, "--max-elements", help="Check a seeded random subset of K elements per tensor (every tensor is still checked)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object on stdout."),
):
    """Check every backprop gradient against central finite differences (E(θ+ε) − E(θ−ε)) / 2ε.

    One row per tensor W1, b1, ..., WL, bL, computed in float64. Elements whose step crosses
    a relu/leaky_relu/step kink are listed as kinks, not failures. Exit 0 when every tensor
    passes, 1 when any fails, 2 for bad usage.
    """
    from . import view
    from .errors import JobFailed
    from .gradcheck import check_target, failure_message

    report, what = check_target(target, samples, eps, tol, seed, list(set_ or []), max_elements)
    with _stdout():
        if as_json:
            print(json.dumps({"target": str(target), "what": what, **report.to_dict()}, ensure_ascii=False))
        else:
            view.gradcheck_report(report, what)
    if not report.passed:
        raise JobFailed(failure_message(report))


@app.command()
@_command
def explain(
    target: Path = typer.Argument(..., help="A config file (its first training step) or a run directory (the next step from its trained weights).", show_default=False),
    row: Optional[int] = typer.Option(None, "--row", help="Start at position N (1-based) of epoch 1's row order (alone: that one row)."),
    rows: Optional[int] = typer.Option(None, "--rows", help="Take K rows of epoch 1's order as the batch (default: the first batch, as training)."),
    fmt: str = typer.Option("table", "--format", help="table (terminal), md (Markdown for course notes) or json (every quantity)."),
    set_: Optional[List[str]] = SetOpt,
):
    """One step of training as the lecture writes it: forward (W_l, b_l, z_l, a_l, E), backward
    (δ_L, δ_l = (W_{l+1}ᵀ δ_{l+1}) ⊙ f′(z_l), ∂E/∂W_l = δ_l a_{l−1}ᵀ), the optimizer's update and the loss
    after it: the numbers nncli train computes in its first step on the same rows."""
    from .errors import ConfigError
    from .explain import explain as explain_step

    if fmt not in ("table", "md", "json"):
        raise ConfigError(f"--format {fmt}: use table, md or json")
    e = explain_step(target, row, rows, list(set_ or []))
    with _stdout():
        if fmt == "json":
            print(json.dumps(e.to_dict(), ensure_ascii=False))
        else:
            from .explain_view import explain_markdown, explain_text

            print(explain_markdown(e) if fmt == "md" else explain_text(e))


@app.command("eval")
@_command
def eval_(
    run_dir: Path = typer.Argument(..., help="A run directory, e.g. runs/<id>.", show_default=False),
    data: Optional[str] = typer.Option(None, "--data", help="Another labelled table (must have the target column(s))."),
    sep: Optional[str] = typer.Option(None, "--sep", help="Column separator of --data (default: the run's data.sep, else by the name: tab for .tsv)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object on stdout."),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip confusion.png and roc.png."),
):
    """Measure a trained run on labelled data.

    Default data: the config's test data, else its validation data, else the training data
    (the report says which). Classification: loss, accuracy, log-loss, ROC-AUC and average
    precision (one-vs-rest macro for more classes), per-class precision/recall/F1, macro
    averages and the confusion matrix; regression: loss, MSE, RMSE, MAE, R² per target.
    Saved in the run directory as eval.json (or eval_<name>_<hash>.json for each --data file),
    with confusion.png (confusion_<name>_<hash>.png) for a classifier, and roc.png for a binary one.
    """
    from . import view
    from .errors import OutputError
    from .inference import evaluate, save_eval
    from .runs import load_run

    run = load_run(run_dir)
    report, fname = evaluate(run, data, _sep_option(sep))
    for note in report.get("notes", []):
        view.warning(note)
    try:
        saved, unsaved = save_eval(run, report, fname, plots=not no_plots), None
    except OutputError as e:  # the report is shown all the same, then the error line (exit 2)
        saved, unsaved = [], e
    with _stdout():
        if as_json:
            print(json.dumps({**report, "saved": [str(p) for p in saved]}, ensure_ascii=False))
        else:
            view.eval_report(report, ", ".join(map(str, saved)) or "not saved")
    if unsaved is not None:
        raise unsaved


@app.command()
@_command
def predict(
    run_dir: Path = typer.Argument(..., help="A run directory, e.g. runs/<id>.", show_default=False),
    input_csv: str = typer.Argument(..., metavar="INPUT.csv", help="A table with the feature columns (CSV, TSV, Parquet; compressed too), or - for CSV on stdin.", show_default=False),
    output: str = typer.Option("-", "--output", "-o", help="Output file, or - for CSV on stdout; the name picks the format (.csv, .tsv, .parquet; .gz/.bz2/.xz/.zip/.zst compress)."),
    no_proba: bool = typer.Option(False, "--no-proba", help="Leave out the proba_<label> columns."),
    sep: Optional[str] = typer.Option(None, "--sep", help="Column separator of the input (default: the run's data.sep, else by the name: tab for .tsv)."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="A row that cannot be predicted gets empty prediction cells and the reason in an 'error' column, instead of stopping the file."),
):
    """Predict for every row of a CSV: input columns unchanged, then prediction (and proba_<label>).

    Columns are matched by name; extra columns pass through; a target column in the input
    is ignored. Processed in chunks, so any input size works. A file OUT is replaced
    atomically: on error an existing OUT is left untouched.
    """
    from . import view
    from .inference import predict as run_predict
    from .runs import load_run

    run = load_run(run_dir)
    notes: list = []
    run_predict(run, input_csv, output, proba=not no_proba, sep=_sep_option(sep), notes=notes, skip_invalid=skip_invalid)
    sys.stdout.flush()
    for note in notes:  # unseen categories encoded as zeros, rows skipped with --skip-invalid
        view.warning(note)


def _sep_option(value: Optional[str]) -> Optional[str]:
    """--sep checked as data.sep is ('tab' or '\\t' for a tab)."""
    from .formats import sep_option

    return sep_option(value, "--sep")


@app.command()
@_command
def plot(run_dir: Path = typer.Argument(..., help="A run directory.", show_default=False)):
    """(Re)draw a run's pictures: loss.png; for a classifier on two features, decision_boundary.png;
    for a regression, fit.png (training.gif is drawn only while training: its snapshots are not kept)."""
    from . import view
    from .plots import draw_run

    paths, notes = draw_run(run_dir)
    for note in notes:
        view.warning(note)
    with _stdout():
        for path in paths:
            print(path)


@app.command("runs")
@_command
def runs_(
    runs_dir: Path = typer.Argument(Path("runs"), help="A runs directory (or a sweep directory)."),
    sort: Optional[str] = typer.Option(None, "--sort", help="Rank by a column, best first: losses and seconds ascending, other metrics descending."),
    where: Optional[List[str]] = typer.Option(None, "--where", metavar="KEY=VALUE", help="Keep runs whose config key or column equals VALUE (repeatable), e.g. --where train.lr=0.1 --where status=completed."),
    fmt: str = typer.Option("table", "--format", help="table, csv or json."),
    wide: bool = typer.Option(False, "--wide", help="On a terminal, show every column whole whatever its width (it may wrap); by default a table too wide leaves out its least useful columns and says which."),
):
    """List runs: id, name, status, epochs, the config keys that differ, final metrics.

    Unreadable run directories are skipped with a warning on stderr.
    """
    from . import view
    from .errors import ConfigError
    from .listing import list_runs

    if fmt not in ("table", "csv", "json"):
        raise ConfigError(f"--format {fmt}: use table, csv or json")
    df, warnings = list_runs(runs_dir, list(where or []), sort)
    for w in warnings:
        view.warning(w)
    with _stdout():
        if fmt == "csv":
            df.to_csv(sys.stdout, index=False, lineterminator="\n")
        elif fmt == "json":
            print(df.to_json(orient="records", force_ascii=False))
        elif df.empty:
            view.info(f"no runs in {runs_dir}")
        else:
            from .listing import drop_order

            view.dataframe_table(df, wide=wide, drop=drop_order(df, sort), hint="--wide or --format csv")


@app.command()
@_command
def sweep(
    sweep_file: Path = typer.Argument(..., help="Sweep YAML: base config, grid and/or random samples.", show_default=False),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Runs trained at the same time (local: worker processes; ray: tasks in flight)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the sweep directory is created."),
    executor_kind: str = typer.Option("local", "--executor", help="local: long-lived worker processes on this machine; process: one nncli train process per run; ray: a Ray cluster (nncli[ray])."),
    address: Optional[str] = typer.Option(None, "--address", help="The Ray cluster to join (--executor ray), e.g. 10.0.0.5:6379 (default: RAY_ADDRESS, else a local Ray started for the sweep)."),
    retries: int = typer.Option(2, "--retries", help="Times a Ray task whose worker or node died is retried before the run counts as failed (--executor ray)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="An Optuna storage URL (e.g. sqlite:///study.db): the study is kept there, so rerunning the command continues it and several machines share it (nncli[optuna])."),
    track: Optional[str] = typer.Option(None, "--track", metavar="mlflow|none", help="Log the sweep to MLflow: one parent run, each point a child run as it finishes (needs nncli[mlflow]; URI and experiment: the base config's track.mlflow, else MLflow's defaults and the sweep's name); none: not even if the base config has a track section."),
    wide: bool = typer.Option(False, "--wide", help="On a terminal, show every column whole whatever its width (it may wrap); by default a table too wide leaves out its least useful columns and says which."),
):
    """Train one run per sweep point, N at a time, then print the ranked table.

    All runs go into one sweep directory (with sweep.yaml and results.csv). A failing run is
    recorded and the others continue; Ctrl-C stops the workers cleanly (each checkpoints)
    and keeps finished runs. Exit 0 if every run completed (or was pruned), 1 if any failed,
    130 if interrupted.
    """
    from . import tracking, view
    from .errors import ConfigError
    from .executors import make_executor
    from .sweep import Sweep

    if jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    if retries < 0:
        raise ConfigError("--retries must be at least 0")
    tracked = tracking.sweep_target(track, sweep_file)  # --track, or the base config's track section
    if tracked is not None:
        tracking.require_mlflow("nncli sweep --track mlflow" if track else "the base config's track.mlflow section")
    with tracking.points_untracked():  # the sweep logs its points itself: their own nncli train does not
        executor = make_executor(executor_kind, jobs, address=address, retries=retries)  # a missing extra: before anything is written
    sw = Sweep.create(sweep_file, runs_dir, storage=storage, reports=executor.reports)
    view.info(f"sweep {sw.dir}: {sw.total} runs, {jobs} at a time")
    sweep_log = tracking.SweepTracker(tracked, sw.dir, tracking.sweep_params(sw.spec)) if tracked is not None else None
    for w in sweep_log.start() if sweep_log is not None else []:  # the parent run
        view.warning(w)
    finished = [0]
    if sw.study is not None and sw.study.done_before:
        finished[0] = sw.study.done_before
        more = "; continuing" if sw.study.done_before < sw.total else ""
        view.info(f"study {sw.name}: {sw.study.done_before} of {sw.total} trials already done{more}")

    def done(t, status):
        finished[0] += 1
        params = " ".join(f"{k}={json.dumps(v)}" for k, v in t.params.items())
        view.info(f"[{finished[0]}/{sw.total}] {params}: {status}")
        for w in sweep_log.point(t) if sweep_log is not None else []:  # a child run, from its run directory
            view.warning(w)

    with _signals_call(executor.stop), tracking.points_untracked():
        sw.run(executor, done)
    df, metric, notes = sw.results()
    if sweep_log is not None:  # the parent's end: sweep.yaml, results.csv, status
        for w in sweep_log.finish("interrupted" if sw.stopped else "failed" if sw.failed else "completed"):
            view.warning(w)
    for note in notes:
        view.warning(note)
    with _stdout():
        if not df.empty:
            from .listing import drop_order

            view.dataframe_table(df, title=f"sweep {sw.name}: ranked by {metric}", wide=wide, drop=drop_order(df, metric),
                                 hint="--wide or results.csv")
        view.info(f"saved {sw.dir / 'results.csv'}")
        print(sw.dir)
    if sw.stopped and storage is not None:
        view.info("the study is kept in the storage: rerun the same command to continue it")
    _batch_outcome("sweep", sw.stopped, len(sw.failed), sw.total, "runs", sw.dir)


@app.command()
@_command
def cv(
    config: Path = typer.Argument(..., help="YAML experiment config, e.g. configs/iris.yaml", show_default=False),
    folds: int = typer.Option(5, "--folds", "-k", help="Number of folds K (at least 2)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Folds trained at the same time (long-lived worker processes, as a sweep's)."),
    set_: Optional[List[str]] = SetOpt,
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the fold assignment (default: the config's seed; training keeps the config's seed)."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the cv directory is created."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (cv_dir, each fold's run and metrics, mean, std) on stdout."),
    plots: bool = typer.Option(False, "--plots", help="Draw each fold run's pictures (skipped by default, as in a sweep)."),
    wide: bool = typer.Option(False, "--wide", help="On a terminal, show every column whole whatever its width (it may wrap); by default a table too wide leaves out its least useful columns and says which."),
):
    """K-fold cross-validation: one ordinary run per fold, then per-fold and mean ± std validation metrics.

    The rows of data.train are dealt into K folds (stratified by class for classifiers, as
    scikit-learn's StratifiedKFold(shuffle=True); KFold(shuffle=True) for regression). Each
    fold trains on the other folds and validates on its own; the config's data.val,
    val_split and test_split are not used. Everything goes into one cv directory (cv.yaml,
    the fold files, the runs, results.csv). Exit 0 if every fold completed, 1 if any
    failed, 130 if interrupted (finished folds are kept).
    """
    from . import view
    from .cv import CrossValidation
    from .errors import ConfigError
    from .executors import make_executor

    if jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    cvr = CrossValidation.create(config, folds, list(set_ or []), runs_dir, seed, plots)
    for note in cvr.notes:
        view.warning(note)
    executor = make_executor("local", jobs)
    how = "stratified" if cvr.stratified else "shuffled"
    view.info(f"cv {cvr.dir}: {cvr.k} {how} folds (seed {cvr.seed}), {jobs} at a time")
    finished = [0]

    def done(t, status):
        finished[0] += 1
        view.info(f"[{finished[0]}/{cvr.k}] fold {t.params['fold']}: {status}")

    with _signals_call(executor.stop):
        cvr.run(executor, done)
    res = cvr.results()
    with _stdout():
        if as_json:
            print(json.dumps(res.to_dict(), ensure_ascii=False))
        else:
            from .listing import drop_order

            table = _cv_table(res)
            view.dataframe_table(table, title=f"cv {cvr.name}: {cvr.k} folds, validation metrics", wide=wide,
                                 drop=drop_order(table), hint="--wide or --json")
            view.info(f"saved {cvr.dir / 'results.csv'}")
            print(cvr.dir)
    _batch_outcome("cv", cvr.stopped, len(cvr.failed), cvr.k, "folds", cvr.dir)


def _batch_outcome(kind: str, stopped: bool, failed: int, total: int, what: str, where) -> None:
    """The exit of a batch of runs (sweep, cv): 130 if it was interrupted (finished ones kept),
    1 if any failed, else 0."""
    from .errors import Interrupted, JobFailed

    if stopped:
        raise Interrupted(f"{kind} interrupted; finished {what} are kept in {where}")
    if failed:
        raise JobFailed(f"{failed} of {total} {what} failed; see the table above")


def _cv_table(res):
    """The folds and a last row 'mean ± std' over the completed folds, as text cells."""
    import pandas as pd

    from .view import _fmt

    rows = [{"fold": str(r["fold"]), "id": r["id"] or "-", "status": r["status"],
             "epochs": "-" if r["epochs"] is None else str(r["epochs"]),
             "val_rows": "-" if r["val_rows"] is None else str(r["val_rows"]),
             **{m: _fmt(r["metrics"].get(m)) for m in res.metrics}} for r in res.folds]
    rows.append({"fold": "mean ± std", "id": f"{res.completed} of {res.k} folds", "status": "", "epochs": "", "val_rows": "",
                 **{m: f"{_fmt(res.mean[m])} ± {_fmt(res.std[m])}" if m in res.mean else "-" for m in res.metrics}})
    return pd.DataFrame(rows)


@app.command()
@_command
def export(
    run_dir: Path = typer.Argument(..., help="A run directory, e.g. runs/<id>.", show_default=False),
    output: str = typer.Option(..., "--output", "-o", help="The .onnx file to write (replaced atomically).", show_default=False),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="float32 or float64 (default: the run's train.dtype)."),
):
    """Write the run's whole prediction path as one ONNX graph (needs nncli[onnx]).

    Inputs: one per feature column, named after it (numbers; text for categorical columns).
    The graph standardises, one-hot encodes, imputes as the run does, runs the MLP, and
    outputs label and probabilities (classifiers) or prediction (regression, in the targets'
    units). A row nncli predict refuses gets NaN and an empty label.
    """
    from . import view
    from .onnx_export import export as export_onnx

    done = export_onnx(run_dir, output, dtype)
    view.info(f"wrote {done['path']} ({done['dtype']}): inputs {', '.join(f'{n} {t}' for n, t in done['inputs'])}; "
              f"outputs {', '.join(f'{n} {t}' for n, t in done['outputs'])}")


@app.command()
@_command
def data(
    name: str = typer.Argument(..., help="xor, circles, moons, spirals, gauss or sine.", show_default=False),
    output: str = typer.Option(..., "--output", "-o", help="CSV file to write, or - for stdout.", show_default=False),
    n: Optional[str] = typer.Option(None, "--n", help="Rows (default: the dataset's own); 1e4 works too."),
    noise: Optional[float] = typer.Option(None, "--noise", help="Noise in the dataset's units (default: its own)."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same file, byte for byte."),
):
    """Write a seeded synthetic dataset as CSV (the 2-D toy problems of the gallery, and sine)."""
    from . import synth

    df = synth.generate(name, n=n, noise=noise, seed=seed)
    if output == "-":
        with _stdout():
            sys.stdout.write(synth.csv_text(df))
    else:
        synth.write_csv(df, output)
        from . import view

        view.info(f"wrote {output}: {len(df)} rows, columns {', '.join(map(str, df.columns))}")


@app.command()
@_command
def init(
    data_file: str = typer.Argument(..., metavar="DATA.csv", help="The table to learn from (the future data.train).", show_default=False),
    target: List[str] = typer.Option(..., "--target", "-t", help="The column to predict (repeat for several regression targets).", show_default=False),
    output: str = typer.Option("-", "--output", "-o", help="Config file to write (never overwritten), or - for stdout."),
    sep: Optional[str] = typer.Option(None, "--sep", help="Column separator of DATA, written as data.sep (default: by the name: tab for .tsv, else a comma)."),
):
    """Write a commented starter config for a table: inferred loss, ID-like columns excluded,
    missing cells imputed, splits with early stopping, adam; it trains without edits.

    Prints the config on stdout, or writes it to a new file with -o (an existing file is
    never replaced: exit 2). Each choice is explained in a comment above its key.
    """
    from . import view
    from .starter import write_starter

    s = write_starter(data_file, list(target), output, _sep_option(sep))
    if output == "-":
        with _stdout():
            sys.stdout.write(s.text)
        view.info(f"nncli init: {s.summary}")
    else:
        view.info(f"wrote {output}: {s.summary}; train it with: nncli train {output}")


# ---------------------------------------------------------------------- the process: signals and standard streams (nncli/process.py)
#
# As the nncli program (main()), SIGINT and SIGTERM end every command the same way at any
# moment: one line on stderr and exit 130. The first one raises KeyboardInterrupt, so every
# `finally` runs (atomic_file removes its temp file); later ones change nothing, so the
# clean-up is never cut short. train and sweep handle them otherwise while they work
# (_signals_call: finish the step and checkpoint; stop the workers). Once a command's result
# (or its error line) is out, both are ignored: the interpreter's shutdown would otherwise
# put back the default action, and a late SIGTERM would kill a finished command with 143.


def _interrupted_exit():
    process.result_out()
    _error_line("interrupted")
    raise typer.Exit(EXIT_INTERRUPTED)


def _error_line(msg: str) -> None:
    """The one line of an error exit, on stderr."""
    process.State.told = True
    from . import view

    try:
        view.error(msg)
    except OSError:  # stderr itself cannot be written: the exit code still says it
        pass


def _leave(code: int) -> int:
    """Write the line of an interruption no command reported (a signal while the options
    were parsed), and flush stdout and stderr so that the interpreter's shutdown has
    nothing left to fail on (a closed pipe: dropped quietly)."""
    if code == EXIT_INTERRUPTED and not process.State.told:
        try:
            _error_line("interrupted")
        except Exception:  # the view cannot load: the exit code still says it
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            _quiet_broken_pipe(stream)
        except (OSError, ValueError) as e:
            _quiet_broken_pipe(stream)
            if stream is sys.stdout and code == 0:
                try:
                    _error_line(f"cannot write to stdout: {getattr(e, 'strerror', None) or e}")
                except Exception:
                    pass
                code = 2
    return code


def main() -> None:
    """The nncli program: ``app`` with the process-wide handling above."""
    process.State.active = True
    code = EXIT_INTERRUPTED
    try:
        try:
            process.standard_streams()
            process.interrupt_on_signals()
            app()
            code = 0
        except SystemExit as e:
            code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
        finally:
            process.result_out()
    except KeyboardInterrupt:  # the one a signal raises (at most one is ever raised)
        code = EXIT_INTERRUPTED
    except Exception as e:
        if not process.interrupted_by(e):
            raise
        code = EXIT_INTERRUPTED
    process.result_out()
    code = _leave(code)  # stdout and stderr are flushed: nothing of the command is left to write
    # Leave now, with this status: the interpreter's shutdown could still change it (a test
    # under load saw a process that had printed its line and chosen 130 end killed by SIGINT,
    # CPython's own exit for a KeyboardInterrupt it took for unhandled). Every file nncli
    # writes is closed and renamed by now; worker threads of a chunked read are abandoned.
    import os

    os._exit(code)


if __name__ == "__main__":
    main()
