"""The wire between the judge and the worker that runs a student's code: plain data, never pickle.

The worker (autograder/judge/worker.py) runs the student's cells; the judge (autograder/judge/judge.py)
calls the student's functions through it. Both ends speak JSON lines over a pipe pair, with values
encoded by :func:`Endpoint.encode`:

* numbers, strings, None, lists, tuples and dicts of them as themselves (tuples tagged);
* a tensor as its dtype (from a fixed list), shape, raw bytes in base64 and ``requires_grad``;
* a ``torch.Generator`` as its state, handed back after the call so both ends stay in step;
* a function as a handle: calling it sends a request back to the end that owns it, so the
  judge can pass its reference ``gamma(...)`` and the student can return one of their own;
* anything else as the name of its type and its ``repr``, decoded to an inert stand-in.

Decoding builds only tensors, generators, plain containers and stand-ins: nothing the other end
sends can run code here. Gradients cross the wire too: a tensor the student's function returns
with ``requires_grad`` is tied to the judge's inputs by :class:`_Remote`, whose backward asks the
worker for the gradients of its own graph.
"""

import base64
import builtins
import inspect
import json
import os

import torch

from autograder.student.limits import MAX_MESSAGE

DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128, torch.uint8,
    torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)}
GONE = "the process running your code exited or stopped answering (os._exit, a crash, running out of memory?)"


class WireError(RuntimeError):
    """The other end died, hung up, or sent something that is not a valid message."""


class Standin:
    """What an object that cannot cross the wire becomes: its type's name and its repr, nothing else."""

    def __init__(self, text: str):
        self._text = text

    def __repr__(self) -> str:
        return self._text


def standin(type_name: str, text: str):
    """An inert object whose ``type(x).__name__`` is ``type_name`` (checks name what they got)."""
    name = type_name if type_name.isidentifier() else "object"
    return type(name, (Standin,), {})(text[:200])


class Endpoint:
    """One end of the wire: sends requests, serves the other end's callbacks while it waits."""

    def __init__(self, read_fd: int, write_fd: int):
        self.reader = os.fdopen(read_fd, "rb")
        self.writer = os.fdopen(write_fd, "wb")
        self.handles = {}  # id → a function of this end that the other end may call
        self.serve = self.answer_callback  # message → reply, for the other end's requests while this end waits
        self.noted = []  # what the other end reported on its own ("note" messages), in order
        self.said = []  # the stderr and warnings of the student's code that came with each reply

    # ----------------------------------------------------------------------------- framing
    def send(self, message: dict) -> None:
        self.writer.write(json.dumps(message).encode() + b"\n")
        self.writer.flush()

    def receive(self) -> dict:
        line = self.reader.readline(MAX_MESSAGE + 1)
        if not line.endswith(b"\n"):
            raise WireError(GONE)  # nothing, or a message cut short or too long
        try:
            message = json.loads(line)
        except ValueError as err:
            raise WireError(f"not a JSON message: {err}") from None
        if not isinstance(message, dict):
            raise WireError("a message that is not a JSON object")
        return message

    def request(self, message: dict) -> dict:
        """Send ``message``; answer the other end's callbacks until its reply comes."""
        self.send(message)
        while True:
            reply = self.receive()
            if reply.get("op") == "note":
                self.noted.append(reply)
            elif "op" in reply:
                self.send(self.serve(reply))
            else:
                if str(reply.get("stderr", "")).strip() or reply.get("warnings"):
                    self.said.append({"stderr": str(reply.get("stderr", "")), "warnings": list(reply.get("warnings", []))})
                return reply

    def answer_callback(self, message: dict) -> dict:
        function = self.handles.get(message.get("handle"))
        if function is None:
            return {"raised": ["LookupError", "no such function on this end", None, None]}
        args, generators = self.decode_args(message)
        try:
            result = function(*args["args"], **args["kwargs"])
        except Exception as err:  # noqa: BLE001 (travels back and is raised at the caller)
            return {"raised": [type(err).__name__, str(err)[:2000], None, None], "generators": self.states(generators)}
        return {"result": self.encode(result), "generators": self.states(generators)}

    # ----------------------------------------------------------------------------- values
    def encode(self, value, depth: int = 0):
        if depth > 20:
            raise WireError("a value nested too deeply")
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, torch.Tensor):
            name = str(value.dtype).removeprefix("torch.")
            if name not in DTYPES:
                raise WireError(f"a tensor of dtype {value.dtype}")
            return {"tensor": name, "shape": list(value.shape), "data": base64.b64encode(raw_bytes(value)).decode(),
                    "grad": bool(value.requires_grad)}
        if isinstance(value, torch.Generator):
            return {"generator": self.encode(value.get_state())}
        if isinstance(value, (list, tuple)):
            return {"tuple" if isinstance(value, tuple) else "list": [self.encode(v, depth + 1) for v in value]}
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {"dict": {k: self.encode(v, depth + 1) for k, v in value.items()}}
        if isinstance(value, RemoteFunction) and value.endpoint is self:
            return {"theirs": value.handle}  # the other end's own function, handed back
        if callable(value):
            handle = len(self.handles)
            self.handles[handle] = value
            return {"function": handle, "name": getattr(value, "__name__", "function"), "parameters": parameters(value)}
        return {"object": type(value).__name__, "repr": repr(value)[:200]}

    def decode(self, value, generators: list = None, depth: int = 0):
        if depth > 20:
            raise WireError("a value nested too deeply")
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if not isinstance(value, dict) or len(value) == 0:
            raise WireError(f"not a value: {str(value)[:80]}")
        if "tensor" in value:
            return decode_tensor(value)
        if "generator" in value:
            generator = torch.Generator()
            generator.set_state(decode_tensor(value["generator"]))
            if generators is not None:
                generators.append(generator)
            return generator
        if "tuple" in value or "list" in value:
            items = [self.decode(v, generators, depth + 1) for v in value.get("tuple", value.get("list"))]
            return tuple(items) if "tuple" in value else items
        if "dict" in value:
            return {str(k): self.decode(v, generators, depth + 1) for k, v in value["dict"].items()}
        if "theirs" in value:
            if value["theirs"] not in self.handles:
                raise WireError("a handle to a function this end never sent")
            return self.handles[value["theirs"]]
        if "function" in value:
            return RemoteFunction(self, int(value["function"]), str(value.get("name", "function")),
                                  signature(value.get("parameters")))
        if "object" in value:
            return standin(str(value["object"]), str(value.get("repr", "")))
        raise WireError(f"not a value: {str(value)[:80]}")

    def decode_args(self, message: dict) -> tuple:
        """({"args": [...], "kwargs": {...}}, the generators among them) from a call or callback message."""
        generators = []
        args = self.decode(message.get("args", {"list": []}), generators)
        kwargs = self.decode(message.get("kwargs", {"dict": {}}), generators)
        if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
            raise WireError("a call without a list of arguments")
        return {"args": list(args), "kwargs": kwargs}, generators

    def states(self, generators: list) -> list:
        return [self.encode(g.get_state()) for g in generators]


def raw_bytes(value: torch.Tensor) -> bytes:
    flat = value.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def decode_tensor(value: dict) -> torch.Tensor:
    """A new tensor from its encoding; one sent with ``requires_grad`` is a leaf that requires grad."""
    dtype = DTYPES.get(value.get("tensor"))
    shape = value.get("shape")
    if dtype is None or not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise WireError("a tensor with an unknown dtype or a bad shape")
    raw = base64.b64decode(value.get("data", ""), validate=True)
    numel = 1
    for size in shape:
        numel *= size
    if len(raw) != numel * torch.empty((), dtype=dtype).element_size():
        raise WireError("a tensor whose data does not fit its shape")
    if numel == 0:
        out = torch.empty(shape, dtype=dtype)
    else:
        out = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape).clone()
    return out.requires_grad_() if value.get("grad") is True and out.is_floating_point() else out


def found_in(values, kind: type) -> list:
    """The objects of ``kind`` among ``values`` (lists, tuples, dicts), in the order encode meets them."""
    found = []
    for value in values:
        if isinstance(value, kind):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found += found_in(value, kind)
        elif isinstance(value, dict):
            found += found_in(value.values(), kind)
    return found


def tensors_in(values) -> list:
    return found_in(values, torch.Tensor)


def raise_from_student(raised: list) -> None:
    """Raise the student's exception here, named and placed as it was raised in the worker.

    ``raised`` is [type name, message, function name, line]. A built-in exception type is raised
    as itself (``NotImplementedError`` means an unfinished TODO); the function name and line
    become the innermost frame, so a check's message can say where the student's code failed.
    """
    name, message, where, line = (list(raised) + [None] * 4)[:4]
    kind = getattr(builtins, str(name), None)
    if not (isinstance(kind, type) and issubclass(kind, Exception)):
        kind = type(str(name) if str(name).isidentifier() else "StudentError", (Exception,), {})
    error = kind(message)
    if isinstance(where, str) and where.isidentifier() and isinstance(line, int) and 1 < line < 100000:
        namespace = {}
        exec(compile("\n" * (line - 2) + f"def {where}(error):\n    raise error", "<student>", "exec"), namespace)
        namespace[where](error)
    raise error


def parameters(function) -> list:
    """A function's parameters as plain data, [[name, kind, has a default], ...] (None when it has no signature):
    the checks compare the signature of the stand-in with the one the notebook gives (checks.common.expect)."""
    try:
        found = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    return [[p.name, int(p.kind), p.default is not p.empty] for p in found]


def signature(parameters) -> inspect.Signature:
    """The signature ``parameters`` describes (defaults stand in as None), or None when it is not one."""
    try:
        return inspect.Signature([inspect.Parameter(str(name), inspect._ParameterKind(int(kind)),
                                                    default=None if has_default else inspect.Parameter.empty)
                                  for name, kind, has_default in parameters])
    except (TypeError, ValueError):
        return None


class RemoteFunction:
    """A function that lives at the other end of the wire; calling it is a request. Its signature, when the other end
    sent one, is the function's own (``inspect.signature`` reads ``__signature__``)."""

    def __init__(self, endpoint: Endpoint, handle: int, name: str, signature: inspect.Signature = None):
        self.endpoint, self.handle, self.__name__ = endpoint, handle, name
        if signature is not None:
            self.__signature__ = signature

    def __repr__(self) -> str:
        return f"<function {self.__name__}>"

    def __call__(self, *args, **kwargs):
        generators = found_in([args, kwargs], torch.Generator)
        grad_inputs = [t for t in tensors_in([args, kwargs]) if t.requires_grad]
        reply = self.endpoint.request({"op": "call", "handle": self.handle, "args": self.endpoint.encode(list(args)),
                                       "kwargs": self.endpoint.encode(kwargs), "patches": self.patches()})
        for generator, state in zip(generators, reply.get("generators", [])):
            generator.set_state(decode_tensor(state))
        for target, new in zip(tensors_in([args, kwargs]), reply.get("mutated", [])):
            if new is not None:  # the student changed an input in place: so does the judge's copy
                with torch.no_grad():
                    target.copy_(decode_tensor(new).detach())
        if "raised" in reply:
            raise_from_student(reply["raised"])
        if "result" not in reply:
            raise WireError("a reply without a result")
        result = self.endpoint.decode(reply["result"])
        outputs = [t for t in tensors_in([result]) if t.requires_grad]
        if outputs and "call" in reply:
            tied = _Remote.apply(self.endpoint, reply["call"], len(grad_inputs), *grad_inputs, *[o.detach() for o in outputs])
            result = replace_tensors(result, dict(zip(map(id, outputs), tied if isinstance(tied, tuple) else (tied,))))
        return result

    def patches(self) -> dict:
        """torch functions the judge has swapped for this call (a check's edge cases): the worker uses them too."""
        return {name: self.endpoint.encode(getattr(torch, name)) for name, real in ORIGINALS.items()
                if getattr(torch, name) is not real}


ORIGINALS = {name: getattr(torch, name) for name in ("rand", "randn", "randint", "multinomial")}


def replace_tensors(value, new: dict):
    if isinstance(value, torch.Tensor):
        return new.get(id(value), value)
    if isinstance(value, (list, tuple)):
        items = [replace_tensors(v, new) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, dict):
        return {k: replace_tensors(v, new) for k, v in value.items()}
    return value


class _Remote(torch.autograd.Function):
    """Outputs computed in the worker, tied to the judge's inputs: backward asks the worker."""

    @staticmethod
    def forward(ctx, endpoint, call, n_inputs, *tensors):
        ctx.endpoint, ctx.call, ctx.n_inputs = endpoint, call, n_inputs
        return tuple(t.clone() for t in tensors[n_inputs:])

    @staticmethod
    def backward(ctx, *grads):
        reply = ctx.endpoint.request({"op": "backward", "call": ctx.call, "grads": [ctx.endpoint.encode(g) for g in grads]})
        if "grads" not in reply or len(reply["grads"]) != ctx.n_inputs:
            raise WireError("no gradients came back from the worker")
        back = [None if g is None else decode_tensor(g) for g in reply["grads"]]
        return (None, None, None, *back, *[None] * len(grads))
