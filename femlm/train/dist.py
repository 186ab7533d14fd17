"""torchrun-aware process group helpers; a no-op in a single process."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from femlm.errors import FemlmError
from femlm.model import pick_device


@dataclass
class Dist:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.active:
            torch_dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Sum floats over ranks (float64, so token counts stay exact)."""
        if not self.active:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch_dist.all_reduce(t)
        return t.tolist()


def world_size() -> int:
    """Processes in the run: torchrun's WORLD_SIZE, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init(device_name: str = "auto") -> Dist:
    """Join the torchrun process group when launched by torchrun (gloo on CPU, NCCL on GPU)."""
    world = world_size()
    if world == 1:
        return Dist(0, 1, pick_device(device_name))
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    device = pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", _gpu_index(local))
        torch.cuda.set_device(device)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, device)


def _gpu_index(local: int) -> int:
    """This process's GPU: its local rank, or 0 when a launcher shows each process one GPU."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    # torchrun hands every process the same environment, so one GPU in
    # CUDA_VISIBLE_DEVICES there would be shared by all (NCCL does not support that);
    # other launchers (srun, mpirun) may show each process its own.
    under_torchrun = "TORCHELASTIC_RUN_ID" in os.environ
    if visible and "," not in visible and not under_torchrun:
        return 0
    if local >= torch.cuda.device_count():
        raise FemlmError(
            f"process {local} of this node has no GPU of its own: {torch.cuda.device_count()} "
            "visible; give torchrun --nproc_per_node at most that, or --device cpu"
        )
    return local


def shutdown(d: Dist) -> None:
    if d.active and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
