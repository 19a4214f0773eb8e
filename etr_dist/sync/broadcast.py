"""A standalone collective group for weight broadcast: learner rank 0 (rank 0) -> rollout workers (1..R).

It is built from its own TCPStore and a backend object (ProcessGroupNCCL on GPU, ProcessGroupGloo on CPU),
never through torch.distributed.init_process_group: the default group belongs to DeepSpeed (learner) or the
engine (vLLM). Each bucket travels as a header (its (name, dtype, shape) list as JSON bytes) and then one flat
byte buffer; an empty header ends a sync. So a receiver takes a whole sync in one call, without knowing the
buckets beforehand.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from etr_dist.rendezvous import HeldPort, join_store

SRC_RANK = 0
TensorMeta = tuple[str, str, tuple[int, ...]]  # (name, dtype name as in torch, e.g. "bfloat16", shape)


@dataclass
class WeightGroup:
    backend: dist.Backend
    store: dist.Store  # kept alive: rank 0 hosts the rendezvous server
    rank: int
    world_size: int
    device: torch.device  # where this rank's buffers live (cuda for NCCL)


def _gloo(store: dist.Store, rank: int, world_size: int, timeout: datetime.timedelta) -> dist.Backend:
    return dist.ProcessGroupGloo(store, rank, world_size, timeout)


def _nccl(store: dist.Store, rank: int, world_size: int, timeout: datetime.timedelta) -> dist.Backend:
    options = dist.ProcessGroupNCCL.Options()
    options._timeout = timeout
    return dist.ProcessGroupNCCL(store, rank, world_size, options)


BACKENDS: dict[str, tuple[Callable[..., dist.Backend], str]] = {
    "gloo": (_gloo, "cpu"),
    "nccl": (_nccl, "cuda"),
}
BACKEND_FOR_DEVICE = {device_type: name for name, (_, device_type) in BACKENDS.items()}


def join_group(
    master_addr: str,
    master_port: int,
    world_size: int,
    rank: int,
    backend: str,
    timeout_s: float = 600.0,
    held: HeldPort | None = None,
) -> WeightGroup:
    """Every member calls this at the same time; rank 0 hosts the store (on the port it `held`, or binding
    master_port now) and must be the sender."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown weight-sync backend '{backend}'; known: {sorted(BACKENDS)}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a weight-sync group of {world_size}")
    timeout = datetime.timedelta(seconds=timeout_s)
    if held is not None or rank != SRC_RANK:
        store = join_store(master_addr, master_port, world_size, timeout_s, held)
    else:
        store = dist.TCPStore(master_addr, master_port, world_size, True, timeout)
    make_backend, device_type = BACKENDS[backend]
    group_store = dist.PrefixStore("etr_dist_weight_sync", store)
    device = (
        torch.device(device_type, torch.cuda.current_device())
        if device_type == "cuda"
        else torch.device("cpu")
    )
    return WeightGroup(make_backend(group_store, rank, world_size, timeout), store, rank, world_size, device)


def tensor_meta(named_tensors: list[tuple[str, Tensor]]) -> list[TensorMeta]:
    return [(name, str(t.dtype).removeprefix("torch."), tuple(t.shape)) for name, t in named_tensors]


def _nbytes(dtype: torch.dtype, shape: tuple[int, ...]) -> int:
    return torch.Size(shape).numel() * dtype.itemsize


def broadcast_tensors(group: WeightGroup, tensors: list[Tensor]) -> int:
    """Send one bucket from rank 0 as a single flat byte buffer; returns its size in bytes."""
    if group.rank != SRC_RANK:
        raise ValueError(f"only rank {SRC_RANK} sends weights; this is rank {group.rank}")
    flat = torch.cat(
        [t.detach().to(group.device).contiguous().reshape(-1).view(torch.uint8) for t in tensors]
    )
    group.backend.broadcast(flat, SRC_RANK).wait()
    return flat.numel()


def receive_tensors(
    group: WeightGroup, meta: list[TensorMeta], device: torch.device | str | None = None
) -> list[tuple[str, Tensor]]:
    """Receive one bucket sent by broadcast_tensors and cut it back into named tensors (on `device`)."""
    dtypes = [getattr(torch, dtype_name) for _, dtype_name, _ in meta]
    sizes = [_nbytes(dtype, shape) for dtype, (_, _, shape) in zip(dtypes, meta, strict=True)]
    flat = torch.empty(sum(sizes), dtype=torch.uint8, device=group.device)
    group.backend.broadcast(flat, SRC_RANK).wait()
    target = torch.device(device) if device is not None else group.device
    pieces = torch.split(flat, sizes)
    # clone: a piece's byte offset need not be aligned to its dtype, a fresh tensor is
    return [
        (name, piece.clone().view(dtype).reshape(shape).to(target))
        for (name, _, shape), dtype, piece in zip(meta, dtypes, pieces, strict=True)
    ]


def _broadcast_header(group: WeightGroup, meta: list[TensorMeta] | None) -> list[TensorMeta]:
    """Rank 0 sends the bucket's metadata (an empty list ends the sync); every rank returns it."""
    if group.rank == SRC_RANK:
        payload = torch.tensor(list(json.dumps(meta).encode()), dtype=torch.uint8, device=group.device)
        length = torch.tensor([payload.numel()], dtype=torch.int64, device=group.device)
    else:
        length = torch.zeros(1, dtype=torch.int64, device=group.device)
    group.backend.broadcast(length, SRC_RANK).wait()
    if group.rank != SRC_RANK:
        payload = torch.empty(int(length.item()), dtype=torch.uint8, device=group.device)
    group.backend.broadcast(payload, SRC_RANK).wait()
    return [(name, dtype, tuple(shape)) for name, dtype, shape in json.loads(bytes(payload.cpu().tolist()))]


def send_bucket(group: WeightGroup, named_tensors: list[tuple[str, Tensor]]) -> int:
    """Rank 0: one bucket, header then bytes; returns its size in bytes."""
    _broadcast_header(group, tensor_meta(named_tensors))
    return broadcast_tensors(group, [tensor for _, tensor in named_tensors])


def send_end(group: WeightGroup) -> None:
    """Rank 0: the empty header that ends a sync."""
    _broadcast_header(group, [])


def receive_buckets(
    group: WeightGroup, device: torch.device | str | None = None
) -> Iterator[list[tuple[str, Tensor]]]:
    """A receiver: every bucket of one sync, as named tensors, until rank 0's end marker."""
    while meta := _broadcast_header(group, None):
        yield receive_tensors(group, meta, device)
