"""The worker: the only process of the judge's that executes a student's code, and it judges nothing.

``python -m autograder.judge.worker READ_FD WRITE_FD SCRATCH GUARD_LOG PACKAGE_DIR MODULES`` (:func:`command`)
is started by the judge (autograder/judge/judge.py), inside the sandbox when there is one. Before any
student code it

1. takes the reference package out of reach (autograder/student/sandbox.py: every ``maskgit_lab``
   module in ``sys.modules`` is a tripwire, ``import`` and the import system refuse it, and an
   audit hook refuses to open a file under ``PACKAGE_DIR``); each attempt is sent to the judge at
   once (a ``note``), naming its route, so the notebook is reported ``penalized``,
2. installs the write guard (autograder/student/guard.py),

then serves requests over the wire (autograder/judge/wire.py), one at a time: ``exec`` a cell, ``get``
a name, ``bind`` a name to a function of the grader's, ``call`` a function with plain-data
arguments, ``backward`` through an earlier call, ``cap`` its own memory (the feedback figures' limit).
Whatever the student's code prints or warns is captured and sent back with the reply. The
verdict is computed by the judge, which never runs student code; what this process answers is
only data, and a worker that dies, hangs or answers nonsense scores 0 for what it did not answer.
"""

import ast
import contextlib
import io
import os
import sys
import traceback
import warnings
from pathlib import Path

import torch

from autograder.cells import strip_magics
from autograder.judge.wire import Endpoint, WireError, raw_bytes, tensors_in
from autograder.student import guard, limits, sandbox

MODULE = "autograder.judge.worker"  # what the judge runs with ``python -m``
GRADER = Path(__file__).resolve().parent.parent  # autograder/: its frames in a traceback are not the student's


def command(read_fd: int, write_fd: int, scratch: Path, guard_log: Path) -> list:
    """The worker's command line: it reads requests from ``read_fd``, answers on ``write_fd`` (a pipe pair the judge
    passes on), may write only ``scratch`` and logs what its guard refuses to ``guard_log``."""
    package = sandbox.ROOT / sandbox.REFERENCE_PACKAGE
    modules = ",".join(sorted(p.stem for p in package.glob("*.py")))
    return [sys.executable, "-m", MODULE, str(read_fd), str(write_fd), str(scratch), str(guard_log), str(package), modules]


class _NoShell:
    """Stands in for ``get_ipython()`` outside a kernel: any attribute is a no-op, any can be set."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class Worker:
    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self.namespace = {"__name__": "__main__", "get_ipython": _NoShell}
        self.graphs = {}  # call id → (the inputs that need gradients, the outputs that carry them)
        self.student = False  # True while student code runs: only then is a reach for the reference noted

    def note(self, route: str) -> None:
        if self.student:
            self.endpoint.send({"op": "note", "reference": route})

    # ----------------------------------------------------------------------------- requests
    def handle(self, message: dict) -> dict:
        op = message.get("op")
        try:
            if op == "exec":
                return self.exec_cell(str(message.get("code", "")), str(message.get("cell", "")), bool(message.get("setup")))
            if op == "get":
                name = str(message.get("name"))
                if name not in self.namespace:
                    return {"missing": name}
                return {"result": self.endpoint.encode(self.namespace[name])}
            if op == "bind":  # the grader's stand-in for a name (a reference helper that runs in the grader)
                self.namespace[str(message.get("name"))] = self.endpoint.decode(message.get("value"))
                return {"ok": True}
            if op == "call":
                return self.call(message)
            if op == "backward":
                return self.backward(message)
            if op == "cap":  # what it holds now plus this, for the rest of its life: the student's code runs after
                limits.cap_memory(int(message.get("megabytes", 0)), above_held=True)
                return {"ok": True}
        except WireError as err:
            return {"malformed": str(err)}
        return {"malformed": f"unknown request {op!r}"}

    @contextlib.contextmanager
    def student_code(self, reply: dict):
        """Run student code with its prints and warnings captured into ``reply``."""
        out, err = io.StringIO(), io.StringIO()
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            warnings.simplefilter("always")
            self.student = True
            try:
                yield
            finally:  # also when the student's code raised
                self.student = False
                reply["stdout"], reply["stderr"] = out.getvalue()[-2000:], err.getvalue()[-2000:]
                reply["warnings"] = [f"{w.category.__name__}: {w.message}"[:300] for w in caught[:5]]

    def exec_cell(self, code: str, cell: str, setup: bool) -> dict:
        reply = {}
        if setup:  # statement by statement: those that need the reference package are skipped
            for statement in ast.parse(strip_magics(code)).body:
                try:
                    exec(compile(ast.Module(body=[statement], type_ignores=[]), f"<{cell}>", "exec"), self.namespace)
                except Exception:  # noqa: BLE001 (a name from the package: the student's cells may not use it)
                    continue
            return {"ok": True}
        try:
            with self.student_code(reply):
                exec(compile(strip_magics(code), f"<{cell}>", "exec"), self.namespace)
        except BaseException as err:  # noqa: BLE001 (even SystemExit: the cell failed, the worker goes on)
            reply["raised"] = describe(err)
        reply.setdefault("ok", "raised" not in reply)
        return reply

    def call(self, message: dict) -> dict:
        function = self.endpoint.handles.get(message.get("handle"))
        if function is None:
            return {"malformed": "no such function"}
        args, generators = self.endpoint.decode_args(message)
        inputs = tensors_in([args["args"], args["kwargs"]])  # leaves: those the grader sent with requires_grad keep it
        before = [t.detach().clone() for t in inputs]
        patches = {name: self.endpoint.decode(value) for name, value in message.get("patches", {}).items()
                   if hasattr(torch, name)}
        reply = {}
        real = {name: getattr(torch, name) for name in patches}
        try:
            for name, patch in patches.items():
                setattr(torch, name, patch)
            with self.student_code(reply), torch.enable_grad():
                result = function(*args["args"], **args["kwargs"])
        except BaseException as err:  # noqa: BLE001
            reply["raised"] = describe(err)
            result = None
        finally:
            for name, function_ in real.items():
                setattr(torch, name, function_)
        reply["generators"] = self.endpoint.states(generators)
        reply["mutated"] = [None if same(a, b) else self.endpoint.encode(a) for a, b in zip(inputs, before)]
        if "raised" in reply:
            return reply
        outputs = [t for t in tensors_in([result]) if t.requires_grad]
        if outputs and any(t.requires_grad for t in inputs):
            call = len(self.graphs)
            self.graphs[call] = ([t for t in inputs if t.requires_grad], outputs)
            reply["call"] = call
        reply["result"] = self.endpoint.encode(result)
        return reply

    def backward(self, message: dict) -> dict:
        inputs, outputs = self.graphs.get(message.get("call"), (None, None))
        grads = message.get("grads")
        if inputs is None or not isinstance(grads, list) or len(grads) != len(outputs):
            return {"malformed": "a backward through an unknown call"}
        upstream = [self.endpoint.decode(g) for g in grads]
        reply = {}
        try:
            with self.student_code(reply):
                found = torch.autograd.grad(outputs, inputs, upstream, retain_graph=True, allow_unused=True)
        except BaseException as err:  # noqa: BLE001
            return dict(reply, raised=describe(err))
        reply["grads"] = [None if g is None else self.endpoint.encode(g) for g in found]
        return reply


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and raw_bytes(a) == raw_bytes(b)


def describe(err: BaseException) -> list:
    """[type name, message, innermost function, its line] of an exception from student code. The frames in the
    grader's own files are not the student's (the guard that refused an import raises there): the innermost of the
    others is named."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not Path(f.filename).is_relative_to(GRADER)]
    last = frames[-1] if frames else None
    return [type(err).__name__, str(err)[:2000], last.name if last else None, last.lineno if last else None]


def main(argv=None) -> int:
    read_fd, write_fd, scratch, guard_log, package_dir, modules = (argv or sys.argv[1:])[:6]
    endpoint = Endpoint(int(read_fd), int(write_fd))
    worker = Worker(endpoint)
    endpoint.serve = worker.handle
    os.environ["MPLBACKEND"] = "Agg"
    sandbox.block_reference(package_dir, [m for m in modules.split(",") if m and m != "__init__"], worker.note)
    guard.install([scratch, "/dev"], guard_log)
    while True:
        try:
            message = endpoint.receive()
        except WireError:
            return 0  # the judge hung up: its work is done
        endpoint.send(worker.handle(message))


if __name__ == "__main__":
    sys.exit(main())
