"""The wire between the judge and its worker (autograder/judge/wire.py): plain data both ways, never pickle."""

import json
import os

import pytest
import torch

from autograder.judge import wire


def test_the_wire_builds_only_plain_data_and_refuses_the_rest():
    read_fd, write_fd = os.pipe()
    end = wire.Endpoint(read_fd, write_fd)
    value = {"t": torch.arange(6.0).reshape(2, 3).requires_grad_(), "g": torch.Generator().manual_seed(3), "n": (1, 2.5, None)}
    back = end.decode(json.loads(json.dumps(end.encode(value))))
    assert torch.equal(back["t"], value["t"].detach()) and back["t"].requires_grad and back["n"] == (1, 2.5, None)
    assert torch.equal(back["g"].get_state(), value["g"].get_state())
    assert type(end.decode(end.encode(object()))).__name__ == "object"  # an inert stand-in, named like the original
    for bad in ({"tensor": "float32", "shape": [10**9], "data": ""}, {"tensor": "object", "shape": [], "data": ""},
                {"pickle": "gASVAAAAAAAAAAB9lC4="}, {"theirs": 7}, [1, 2]):
        with pytest.raises(wire.WireError):
            end.decode(bad)


