import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from etr_dist.sync.broadcast import broadcast_tensors, join_group, receive_tensors, tensor_meta


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gloo_group_broadcasts_a_mixed_dtype_bucket_to_every_receiver():
    """Three members in threads of one process: the very code path of the nccl transport, on gloo."""
    bucket = [
        ("model.embed.weight", torch.randn(5, 3)),
        ("model.norm.weight", torch.randn(7, dtype=torch.bfloat16)),  # 14 bytes: misaligns what follows
        ("model.layer.weight", torch.randn(2, 2, 3).double()),
        ("step", torch.tensor(11, dtype=torch.int64)),
    ]
    port, world_size = free_port(), 3
    meta = tensor_meta(bucket)
    assert meta[1] == ("model.norm.weight", "bfloat16", (7,))

    def member(rank):
        group = join_group("127.0.0.1", port, world_size, rank, "gloo", timeout_s=30)
        if rank == 0:
            return broadcast_tensors(group, [t for _, t in bucket])
        return receive_tensors(group, meta)

    with ThreadPoolExecutor(world_size) as pool:
        sent, *received = pool.map(member, range(world_size))
    assert sent == 15 * 4 + 7 * 2 + 12 * 8 + 8
    for named in received:
        assert [name for name, _ in named] == [name for name, _ in bucket]
        for (_, got), (_, want) in zip(named, bucket, strict=True):
            assert got.dtype == want.dtype and torch.equal(got, want)


def test_join_group_rejects_unknown_backend_and_bad_rank():
    with pytest.raises(ValueError, match="unknown weight-sync backend 'mpi'"):
        join_group("127.0.0.1", 1, 2, 0, "mpi")
    with pytest.raises(ValueError, match="rank 2 is outside a weight-sync group of 2"):
        join_group("127.0.0.1", 1, 2, 2, "gloo")
