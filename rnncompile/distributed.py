"""Scale-out on Dask distributed: one batch sharded over workers (`run --engine dask`) and sweeps.

    client ──scatter chunk k──▶ worker: run_chunk(program key, chunk k) ──▶ outputs[k] ──gather in order──▶ RunResult

The compiled program and its params reach each worker once, as a worker plugin (a worker that joins
later, or one restarted after a crash, gets them when it starts); each chunk then carries only its
inputs. A worker keeps the program's Executable, so the C backend generates and loads its library once
per worker process, and builds it once per machine (its build cache is keyed by content).

Whether a chunked run gives the bits of a local one: every backend computes each sequence on its own
rows, but how it sums a row can depend on where the row falls in the call. NumPy's BLAS (OpenBLAS) runs
the rows of a block's tail through other kernels, and a product of at most 10^6 multiply-adds
(BLAS_SMALL) through its small-matrix kernels; the C backend steps blocks of 24 rows (12-, 4- and 1-row
blocks in a tail), and some of its cells (the NTM's) sum a tail block in another order. So chunks start
at multiples of ALIGN sequences and hold a multiple of it (the last one ends the batch, as the local
run's does), and on a backend that calls BLAS they hold enough sequences that every weight product takes
the large-matrix kernels, as the whole batch's does (min_rows). tests/test_dask.py checks the bits.

With a chunked output (`-o out.zarr` or `-o outdir/`, run_store.py) each chunk's task writes its rows into
the output itself and returns nothing: the client never holds the outputs.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import pickle
import time
import uuid
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from distributed import Client, LocalCluster, as_completed
from distributed.diagnostics.plugin import WorkerPlugin

from .errors import DataError, RnnCompileError, SpecError, UsageError

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
DEFAULT_CHUNK = 4096
ALIGN = 192  # a multiple of OpenBLAS's row unrolls (powers of two up to 64) and of the C backend's 24-row blocks
BLAS_SMALL = 100**3  # OpenBLAS (x86_64, SMALL_MATRIX_OPT) multiplies M·N·K up to this with other kernels
NO_BLAS = {"c"}  # backends whose products are their own loops: no small-matrix kernels, only row blocks
RETRIES = 2  # a failed task runs up to 1 + RETRIES times
RESUBMITS = 3  # a chunk whose scattered inputs died with their worker is sent again this often
CONNECT_TIMEOUT = "10s"


class EngineError(RnnCompileError):
    """A task that failed on every try, named by its chunk or grid point."""


# ---- the cluster --------------------------------------------------------------------------------

def scheduler_address(scheduler: str | None) -> tuple[str | None, str]:
    """The scheduler to use and where its address came from (None: start a LocalCluster)."""
    if scheduler:
        return scheduler, "--scheduler"
    env = os.environ.get(SCHEDULER_ENV, "").strip()
    return (env, SCHEDULER_ENV) if env else (None, "")


@contextlib.contextmanager
def connect(scheduler: str | None = None, workers: int | None = None, note=None):
    """A Client of the scheduler at `scheduler` (or $DASK_SCHEDULER_ADDRESS), else of a LocalCluster of
    `workers` processes (default: one per core) of one thread each, closed on the way out."""
    address, source = scheduler_address(scheduler)
    if address is not None:
        if workers is not None:
            raise UsageError(f"--workers sizes the local cluster; the cluster at {address} ({source}) has its own")
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as e:
            raise UsageError(f"cannot reach the Dask scheduler at {address} (from {source}): {e}") from None
        try:
            check_workers(client, address)
            yield client
        finally:
            client.close()
        return
    n = workers or os.cpu_count() or 1
    if note:
        note(f"starting a local Dask cluster of {n} worker process{'es' if n != 1 else ''}")
    # the workers' own logs stay quiet: a task that fails for good is reported by its chunk or point
    with warnings.catch_warnings():  # "port 8787 is in use": another cluster's web page, which we do not use
        warnings.simplefilter("ignore", UserWarning)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               worker_dashboard_address=None, silence_logs=logging.CRITICAL)
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def _worker_version() -> str:
    from importlib.metadata import version

    return version("rnncompile")


def check_workers(client: Client, address: str) -> None:
    """Every worker runs this rnncompile version (the program shipped to them is pickled)."""
    ours = _worker_version()
    try:
        theirs = client.run(_worker_version)
    except Exception as e:  # noqa: BLE001 - a worker without rnncompile fails to unpickle the call
        raise UsageError(f"the workers of {address} cannot run rnncompile ({type(e).__name__}: {e}); "
                         f"install it on every worker (pip install rnncompile=={ours})") from None
    if not theirs:
        raise UsageError(f"the Dask scheduler at {address} has no workers")
    odd = {w: v for w, v in theirs.items() if v != ours}
    if odd:
        w, v = next(iter(odd.items()))
        raise UsageError(f"worker {w} runs rnncompile {v}, this client {ours}; install the same version on "
                         f"every worker ({len(odd)} of {len(theirs)} differ)")


# ---- the program, shipped once per worker ---------------------------------------------------------

_SHIPPED: dict[str, "Shipped"] = {}  # on a worker: plugin key -> what its chunks run


@dataclass
class Shipped:
    """What every chunk of one run shares."""

    program: object  # a Program
    params: dict
    steps: int | None
    seed: int
    dtype: str
    backend: str


KEEP_SHIPPED = 4  # programs a worker keeps after their run, with their Executables (a C library loaded)


class ShipProgram(WorkerPlugin):
    """Puts one run's program and params in every worker's memory, once, under `key` (a hash of their
    bytes). A worker keeps the last KEEP_SHIPPED of them after their run, so running the same program again
    finds its Executable planned and the C backend's library loaded."""

    def __init__(self, key: str, blob: bytes):
        self.key, self.blob = key, blob

    def setup(self, worker):
        shipped = _SHIPPED.pop(self.key, None) or pickle.loads(self.blob)
        _SHIPPED[self.key] = shipped  # the newest last
        while len(_SHIPPED) > KEEP_SHIPPED:
            _SHIPPED.pop(next(iter(_SHIPPED)))


def _pickled(shipped: Shipped) -> bytes:
    # A program keeps the Executables it ran on (the C backend's hold ctypes handles): ship it without them.
    program = replace(shipped.program, executables={})
    return pickle.dumps(replace(shipped, program=program), protocol=pickle.HIGHEST_PROTOCOL)


@contextlib.contextmanager
def shipped_to_workers(client: Client, shipped):
    """Put `shipped` (a Shipped run, or any picklable value: a training sweep's data) in every worker's
    memory for the block; yields the key a task finds it by (see `from_client`)."""
    blob = _pickled(shipped) if isinstance(shipped, Shipped) else pickle.dumps(shipped, pickle.HIGHEST_PROTOCOL)
    key = hashlib.sha256(blob).hexdigest()[:24]
    name = f"rnncompile-run-{key}"
    _through_lost_workers(lambda: client.register_plugin(ShipProgram(key, blob), name=name))
    try:
        yield key
    finally:
        with contextlib.suppress(Exception):
            client.unregister_worker_plugin(name)


def _through_lost_workers(send, tries: int = 4):
    """Send to every worker (a plugin, scattered data), again if a worker died on the way: the scheduler
    soon drops it, and a worker that restarts gets the plugin as it starts."""
    for attempt in range(tries):
        try:
            return send()
        except OSError:  # distributed's CommClosedError is one
            if attempt == tries - 1:
                raise
            time.sleep(0.5 * (attempt + 1))


@dataclass
class _UserError:
    """A chunk's input error: the same on every try, so it is reported at once rather than retried."""

    kind: str
    message: str


def from_client(key: str):
    """On a worker: what `shipped_to_workers` put there under `key`."""
    shipped = _SHIPPED.get(key)
    if shipped is None:
        raise RuntimeError(f"worker has no shipped value {key} (its plugin did not run here)")
    return shipped


def run_chunk(key: str, part: dict):
    """Run one chunk of sequences on this worker: (outputs, final state, tokens, lengths, steps)."""
    from . import api

    shipped = from_client(key)
    try:
        r = api.run(shipped.program, inputs=part["inputs"], params=shipped.params, init_state=part["init_state"],
                    lengths=part["lengths"], context=part["context"], steps=shipped.steps, seed=shipped.seed,
                    dtype=shipped.dtype, backend=shipped.backend)
    except (DataError, SpecError) as e:
        return _UserError(type(e).__name__, e.format().removeprefix("error: "))
    return r.outputs, r.final_state, r.tokens, r.lengths, r.steps


def run_chunk_into(key: str, part: dict, layout, start: int):
    """Run one chunk and write its rows into the chunked output from row `start`; returns None (or the
    chunk's input error)."""
    from .run_store import run_arrays, write_chunk

    value = run_chunk(key, part)
    if isinstance(value, _UserError):
        return value
    error = write_chunk(layout, start, run_arrays(value))
    return None if error is None else _UserError("DataError", error)


def check_store_run(program) -> None:
    """A chunked output holds arrays of one shape: refuse a decoder that stops at its end token (each chunk
    would write as many tokens as its own slowest sequence)."""
    from .drivers import start_and_end_ids

    dec = program.plan.decoder
    if dec is not None and dec.feed != "target" and program.vocab is not None \
            and start_and_end_ids(program.vocab)[1] is not None:
        raise UsageError(f"the decoder of {program.checked.file} stops at its end token, so its outputs' length "
                         f"is known only once every chunk ran; write them gathered (-o out.npz)")


# ---- one batch, sharded ---------------------------------------------------------------------------

def check_shardable(program, trace: bool = False) -> None:
    """Refuse, before any cluster starts, a run whose chunks could not give a local run's result."""
    plan = program.plan
    if plan.kind == "tree":
        raise UsageError("--engine dask shards sequence batches; a tree model (`fold:`) runs with --engine local")
    if trace:
        raise UsageError("--trace records every node of a run for reading; it runs with --engine local")
    dec = plan.decoder
    if dec is not None and dec.feed != "target" and dec.sample != "greedy":
        raise UsageError(f"the decoder of {program.checked.file} samples its tokens from one random stream over "
                         f"the whole batch, so chunks would draw other numbers; run it with --engine local "
                         f"(or decode greedily: `sample: greedy`)")


def min_rows(program, backend: str) -> int:
    """The fewest sequences a chunk may hold for its numbers to be the whole batch's on `backend`: enough
    that the product of each weight matrix with the chunk's rows is past BLAS_SMALL multiply-adds."""
    if backend in NO_BLAS:
        return ALIGN
    from .graph import stages

    rows = ALIGN
    for use in program.plan.uses():
        cell = program.cell(use)
        stage = stages(cell)
        for nid in cell.order():
            args = cell.args(nid)
            if cell.node(nid).op != "matmul" or len(args) != 2:
                continue
            weights = [a for a in args if stage[a] == "const"]
            shape = cell.node(weights[0]).shape if len(weights) == 1 else ()
            if len(shape) == 2 and min(shape) > 1:  # a matrix product (a vector one is a GEMV, sized alike)
                rows = max(rows, BLAS_SMALL // math.prod(shape) + 1)
    return -(-rows // ALIGN) * ALIGN


def chunk_bounds(batch: int, chunk: int, least: int = 1, align: int = ALIGN) -> list[tuple[int, int]]:
    """[start, stop) of at most about `chunk` and at least `least` sequences each: every start a multiple of
    `align`, the last chunk ending the batch (so its tail is the local run's tail), none empty."""
    n = max(1, min(math.ceil(batch / chunk), batch // (least + align)))
    edges = sorted({batch * k // n // align * align for k in range(n)} | {batch})
    return list(zip(edges[:-1], edges[1:]))


def _random_inputs(program, batch, steps, seed, dtype, gathered=True):
    """The seeded inputs `api.run` makes when given none (the same calls, so the same numbers)."""
    from . import api
    from .data import random_inputs

    steps = program.checked.steps(steps)
    check_client_budget(program, batch, steps, gathered)
    vocab = len(program.vocab.tokens) if program.vocab else None
    return random_inputs(api.input_infos(program), batch, steps, seed, dtype, vocab), steps


def check_client_budget(program, batch: int, steps: int, gathered: bool = True) -> None:
    """The client holds the inputs, the gathered outputs and the final state (only the inputs when the
    workers write the outputs); each chunk's own work is checked where it runs (api.run on the worker)."""
    from .data import check_budget

    parts = program.run_values(batch, steps)
    held = {k: parts[k] for k in (("inputs", "outputs", "final state") if gathered else ("inputs",))}
    total = sum(held.values())
    check_budget(f"the gathered run ({', '.join(f'{k} {v:.3g}' for k, v in held.items())})", total)


def _random_context(program, batch, seed, dtype):
    from . import api
    from .data import random_inputs

    context = random_inputs(dict(api.context_infos(program)), batch, 1, seed + 7, dtype)
    return {n: v[:, 0] for n, v in context.items()}


def _batch_of(inputs: dict, context: dict) -> int:
    for v in list(inputs.values()) + list(context.values()):
        return int(np.shape(v)[0])
    return 1


def _take(value, a: int, b: int):
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: _take(v, a, b) for k, v in value.items()}
    v = np.asarray(value)
    return np.ascontiguousarray(v[a:b]) if v.ndim else v


@dataclass
class ShardedRun:
    """A finished sharded run: the gathered RunResult and how it went."""

    result: object
    chunks: int
    workers: int
    seconds: float
    resubmitted: list = field(default_factory=list)  # chunk indices sent again after their worker died
    store: str | None = None  # the chunked output the workers wrote (result is then None)


def run_sharded(client: Client, program, inputs: dict | None = None, params: dict | None = None,
                init_state: dict | None = None, lengths=None, context: dict | None = None, batch: int = 1,
                steps: int | None = None, seed: int = 0, dtype: str = "float32", backend: str = "numpy",
                chunk: int = DEFAULT_CHUNK, progress: bool = False, retries: int = RETRIES, note=None,
                store: str | None = None) -> ShardedRun:
    """`rnncompile.run` with the batch split into chunks of about `chunk` sequences (at least min_rows, see
    chunk_bounds) run as Dask tasks, the outputs gathered in order: the RunResult a local run gives, bit for
    bit. With `store` (a .zarr or folder path) the workers write them there instead (run_store.py), the
    folder renamed into place once every chunk is in; nothing is written if the run fails."""
    from . import api

    check_shardable(program)
    if store is not None:
        check_store_run(program)
    plan = program.plan
    if inputs is None:
        inputs, steps = _random_inputs(program, batch, steps, seed, dtype, gathered=store is None)
    if context is None and plan.context:
        context = _random_context(program, batch, seed, dtype)
    context = context or {}
    if params is None:
        params = api.make_params(program, seed, None, dtype)
    b = _batch_of(inputs, context)
    least = min_rows(program, backend)
    if chunk < least and b > chunk and note:  # the chunks then hold more than --chunk asked
        note(f"chunks of at least {least} sequences on the {backend} backend (not --chunk {chunk}): every "
             f"weight product then takes the BLAS kernels the whole batch's does, so the numbers are the same "
             f"(the c backend's bound is {ALIGN})")
    bounds = chunk_bounds(b, chunk, least)
    t0 = time.perf_counter()
    layout = None
    if store is not None:
        layout = _make_store(store, program, inputs, params, init_state, lengths, context, b, steps, seed, dtype,
                             backend, bounds)
    try:
        results, resubmitted = _run_chunks(client, program, inputs, params, init_state, lengths, context, steps, seed,
                                           dtype, backend, bounds, progress, retries, note, layout)
        if layout is not None:
            from .run_store import commit

            commit(layout, store)
    except BaseException:
        if layout is not None:
            from .run_store import discard

            discard(layout)
        raise
    workers = len(client.scheduler_info().get("workers", {}))
    if layout is not None:
        return ShardedRun(None, len(bounds), workers, time.perf_counter() - t0, resubmitted, store)
    return ShardedRun(merge(program, results), len(bounds), workers, time.perf_counter() - t0, resubmitted)


def _make_store(store, program, inputs, params, init_state, lengths, context, b, steps, seed, dtype, backend, bounds):
    """The chunked output's arrays at full size, shaped as one sequence's run (here, on the client) says."""
    from . import api
    from .run_store import create, run_arrays

    probe = api.run(program, inputs=_take(inputs, 0, 1), params=params, init_state=_take(init_state, 0, 1),
                    lengths=_take(lengths, 0, 1), context=_take(context, 0, 1) or None, steps=steps, seed=seed,
                    dtype=dtype, backend=backend)
    about = {"spec": program.name, "backend": backend, "dtype": dtype, "seed": seed, "sequences": b,
             "chunks": [list(c) for c in bounds]}
    return create(store, run_arrays((probe.outputs, probe.final_state, probe.tokens, probe.lengths)), b, bounds,
                  about)


def _run_chunks(client, program, inputs, params, init_state, lengths, context, steps, seed, dtype, backend, bounds,
                progress, retries, note, layout):
    """Every chunk as a task, sent again if its worker died; the results in order (None each with `layout`)."""
    from .progress import bar

    b = bounds[-1][1]
    parts = [{"inputs": _take(inputs, a, z), "context": _take(context, a, z) or None,
              "lengths": _take(lengths, a, z), "init_state": _take(init_state, a, z)} for a, z in bounds]
    results: list = [None] * len(bounds)
    resubmitted = []
    with shipped_to_workers(client, Shipped(program, params, steps, seed, dtype, backend)) as key:
        tries = dict.fromkeys(range(len(bounds)), 0)
        index_of = {}
        run = uuid.uuid4().hex[:16]  # task keys of this run alone: another run of the program has other inputs

        def submit(i, data=None):
            tries[i] += 1
            if data is None:
                (data,) = _through_lost_workers(lambda: client.scatter([parts[i]], hash=False))
            task = (run_chunk, key, data) if layout is None else (run_chunk_into, key, data, layout, bounds[i][0])
            fut = client.submit(*task, retries=retries, key=f"rnncompile-chunk-{run}-{i}-{tries[i]}")
            index_of[fut.key] = i
            return fut

        scattered = _through_lost_workers(lambda: client.scatter(parts, hash=False))  # spread over the workers
        futures = as_completed([submit(i, d) for i, d in enumerate(scattered)])
        del scattered  # each chunk's inputs are released with its task
        with bar(b, progress, f"{program.name}: {len(bounds)} chunks", "seq") as shown:
            for fut in futures:
                i = index_of[fut.key]
                a, z = bounds[i]
                where = f"chunk {i + 1} of {len(bounds)} (sequences {a}..{z - 1})"
                if fut.status == "cancelled" or _lost(fut):
                    if tries[i] > RESUBMITS:
                        raise EngineError(f"{where}: its worker was lost {tries[i]} times; giving up")
                    resubmitted.append(i)
                    if note:
                        note(f"{where}: its worker was lost; sending it again")
                    futures.add(submit(i))
                    continue
                if fut.status == "error":
                    raise EngineError(f"{where} failed on {1 + retries} tries: {_describe(fut.exception())}")
                value = fut.result()
                fut.release()
                if isinstance(value, _UserError):
                    raise DataError(f"{where}: {value.message} (sequence numbers count from the chunk's first)")
                results[i] = value
                parts[i] = None
                if shown is not None:
                    shown.update(z - a)
    return results, resubmitted


def _lost(fut) -> bool:
    """A task that could not run because its scattered inputs died with their worker."""
    if fut.status != "error":
        return False
    text = f"{type(fut.exception()).__name__}: {fut.exception()}"
    return "lost" in text.lower() and "dependenc" in text.lower()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or "(no message)"
    if isinstance(exc, RnnCompileError):
        return text
    if type(exc).__name__ == "KilledWorker":
        return (f"{text}: every worker that ran it died (out of memory? a crash in a backend?); "
                f"the task was tried on {exc.args[0] if exc.args else 'several'} workers")
    return f"{type(exc).__name__}: {text}"


def merge(program, results: list):
    """Chunks' (outputs, final state, tokens, lengths, steps) joined along the batch axis, in order. A
    decoder that stops at its end token writes as many tokens as its slowest sequence, so a chunk's shorter
    outputs are padded as the whole batch's run pads a sequence that ended: zeros, then the end token."""
    from .drivers import RunResult, start_and_end_ids

    outputs, states, tokens, lengths, steps = zip(*results)
    if tokens[0] is not None:
        n = max(t.shape[1] for t in tokens)
        _, end = start_and_end_ids(program.vocab)
        fill = end if end is not None else 0
        tokens = [np.pad(t, ((0, 0), (0, n - t.shape[1])), constant_values=fill) for t in tokens]
        outputs = [{k: np.pad(v, [(0, 0), (0, n - v.shape[1])] + [(0, 0)] * (v.ndim - 2)) for k, v in o.items()}
                   for o in outputs]
        joined_tokens, joined_lengths = np.concatenate(tokens), np.concatenate(lengths)
    else:
        joined_tokens = joined_lengths = None
    return RunResult({k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]},
                     {k: np.concatenate([s[k] for s in states]) for k in states[0]},
                     tokens=joined_tokens, lengths=joined_lengths, steps=steps[0])


# ---- sweeps -----------------------------------------------------------------------------------------

@dataclass
class SweepFailure:
    point: object  # a sweep.Point
    error: str


def run_sweep(client: Client, spec_text: str, spec_file: str, spec_sha: str, todo: list, seeds: dict,
              dim_names, on_rows, progress: bool = False, retries: int = RETRIES,
              train_data=None) -> list[SweepFailure]:
    """Every point of `todo` as one task (compile, then run its seeds from `seeds[point.index]`, or with
    `train_data` (a sweep_train.TrainData) train them); `on_rows(rows)` is called as each point finishes,
    in the order they finish. A worker that dies takes no finished row with it: rows reach the client as
    soon as their point ends, and the scheduler runs a lost worker's points again elsewhere. The training
    data reaches each worker once (as a program does). Returns the points that failed on every try."""
    with contextlib.ExitStack() as stack:
        data_key = None if train_data is None else stack.enter_context(shipped_to_workers(client, train_data))
        return _run_points(client, spec_text, spec_file, spec_sha, todo, seeds, dim_names, on_rows, progress,
                           retries, data_key)


def _run_points(client, spec_text, spec_file, spec_sha, todo, seeds, dim_names, on_rows, progress, retries,
                data_key) -> list[SweepFailure]:
    from .progress import bar

    futures, point_of = [], {}
    run = uuid.uuid4().hex[:16]
    for point in todo:
        fut = client.submit(sweep_task, spec_text, spec_file, spec_sha, point, seeds[point.index], tuple(dim_names),
                            data_key, retries=retries, pure=False, key=f"rnncompile-point-{run}-{point.index}")
        point_of[fut.key] = point
        futures.append(fut)
    failures = []
    with bar(len(todo), progress, "sweep", "point") as shown:
        for fut in as_completed(futures):
            point = point_of[fut.key]
            value = fut.result() if fut.status == "finished" else None
            if fut.status == "error":
                failures.append(SweepFailure(point, _describe(fut.exception()) + f" (on {1 + retries} tries)"))
            elif isinstance(value, _UserError):
                failures.append(SweepFailure(point, value.message))
            else:
                on_rows(value)
            fut.release()
            if shown is not None:
                shown.update(1)
    return failures


def sweep_task(spec_text, spec_file, spec_sha, point, seeds, dim_names, data_key=None):
    """One point on a worker. A spec error (a dim too small for the spec, say) is the same on every try:
    it comes back as a value, formatted (rnncompile's errors are not all picklable), and is not retried."""
    from .sweep import run_point
    from .sweep_quant import quant_point
    from .sweep_train import train_point

    try:
        if data_key is not None:
            return train_point(spec_text, spec_file, spec_sha, point, seeds, dim_names, from_client(data_key))
        if point.settings.get("quant") is not None:  # errors of fixed point against float
            return quant_point(spec_text, spec_file, spec_sha, point, seeds, dim_names)
        return run_point(spec_text, spec_file, spec_sha, point, seeds, dim_names)
    except RnnCompileError as e:
        return _UserError(type(e).__name__, e.format().removeprefix("error: "))
