"""metaloop/allocator.py: freed tensor memory is reused instead of faulted in afresh."""

import resource

import pytest
import torch

from metaloop.allocator import keep_freed_memory


def _faults_of_fresh_blocks(numel: int, repeats: int) -> int:
    for _ in range(6):  # glibc settles after a few (the first blocks may still fault)
        torch.empty(numel).fill_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        torch.empty(numel).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_a_freed_64_mib_block_is_reused_without_page_faults():
    if not keep_freed_memory():
        pytest.skip("not glibc: the C library's own policy applies")
    # Above glibc's largest automatic mmap threshold (32 MiB): by default every such tensor is a
    # fresh mapping whose 16 384 pages each fault on first touch.
    faults = _faults_of_fresh_blocks((64 << 20) // 4, repeats=10)
    assert faults < 2_000, faults
