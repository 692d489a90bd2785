"""Frames to MACE graphs, batched with mace-torch's own data tools.

Evaluation and training both go through here, so a dataset is turned into
``mace.data.AtomicData`` graphs the same way everywhere, with the course's
label keys (``REF_energy``, ``REF_forces``, ``REF_stress``).
"""

from __future__ import annotations

from collections.abc import Sequence

import mace  # noqa: F401  (import mace before e3nn: e3nn alone fails on torch 2.13)
import torch
from ase import Atoms
from ase.data import chemical_symbols
from mace import data as mace_data
from mace.tools import torch_geometric, torch_tools
from mace.tools.utils import AtomicNumberTable

from course_lib.data import ENERGY_KEY, FORCES_KEY, STRESS_KEY


class ElementsNotInModelError(ValueError):
    """Frames hold elements the model has no embedding for; no graph was built."""


LABEL_KEYS = mace_data.KeySpecification(
    info_keys={"energy": ENERGY_KEY, "stress": STRESS_KEY},
    arrays_keys={"forces": FORCES_KEY},
)


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def model_heads(model: torch.nn.Module) -> list[str]:
    return list(getattr(model, "heads", None) or ["Default"])


def to_graphs(
    frames: Sequence[Atoms],
    *,
    atomic_numbers: Sequence[int],
    r_max: float,
    dtype: torch.dtype = torch.float64,
    heads: Sequence[str] = ("Default",),
) -> list:
    """One ``AtomicData`` graph per frame, labels included where the frame has them.

    Raises ``ElementsNotInModelError`` naming the elements outside ``atomic_numbers``.
    """
    check_elements_known(frames, atomic_numbers)
    z_table = AtomicNumberTable([int(z) for z in atomic_numbers])
    with torch_tools.default_dtype(dtype):
        return [
            mace_data.AtomicData.from_config(
                mace_data.config_from_atoms(
                    atoms, key_specification=LABEL_KEYS, head_name=heads[0]
                ),
                z_table=z_table,
                cutoff=float(r_max),
                heads=list(heads),
            )
            for atoms in frames
        ]


def check_elements_known(
    frames: Sequence[Atoms], atomic_numbers: Sequence[int], *, model_name: str = "the model"
) -> None:
    """Raise ``ElementsNotInModelError`` if a frame holds an element outside ``atomic_numbers``."""
    known = {int(z) for z in atomic_numbers}
    first_seen: dict[int, int] = {}
    for index, atoms in enumerate(frames):
        for z in set(atoms.numbers.tolist()) - known:
            first_seen.setdefault(z, index)
    if not first_seen:
        return
    missing = ", ".join(
        f"{chemical_symbols[z]} (first in frame {first_seen[z]})" for z in sorted(first_seen)
    )
    names = [chemical_symbols[z] for z in sorted(known)]
    knows = ", ".join(names) if len(names) <= 20 else f"{names[0]} ... {names[-1]}"
    raise ElementsNotInModelError(
        f"{model_name} has no embedding for {missing}; it knows {len(names)} elements ({knows}). "
        "Use a model trained on these elements, or train one with "
        "`course finetune --regime scratch`"
    )


def graph_loader(
    frames: Sequence[Atoms],
    model: torch.nn.Module,
    *,
    batch_size: int = 16,
    max_edges: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
) -> torch_geometric.dataloader.DataLoader:
    """A mace-torch DataLoader over ``frames`` for ``model`` (its elements, cutoff and dtype).

    With ``max_edges`` a batch holds at most ``batch_size`` frames *and* at most
    ``max_edges`` edges (neighbour pairs within ``r_max``), frames kept in order;
    a frame with more edges than that is a batch on its own. Not with ``shuffle``.
    """
    if max_edges is not None and shuffle:
        raise ValueError("max_edges packs frames in order; use it without shuffle")
    graphs = to_graphs(
        frames,
        atomic_numbers=model.atomic_numbers.tolist(),
        r_max=float(model.r_max),
        dtype=model_dtype(model),
        heads=model_heads(model),
    )
    if max_edges is not None:
        edges = [int(graph.edge_index.shape[1]) for graph in graphs]
        batches = edge_budget_batches(edges, batch_size=batch_size, max_edges=max_edges)
        return torch_geometric.dataloader.DataLoader(graphs, batch_sampler=batches)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return torch_geometric.dataloader.DataLoader(
        graphs, batch_size=batch_size, shuffle=shuffle, drop_last=False, generator=generator
    )


def edge_budget_batches(
    edges: Sequence[int], *, batch_size: int, max_edges: int
) -> list[list[int]]:
    """Consecutive frame indices grouped so a group has <= ``batch_size`` frames and <= ``max_edges`` edges.

    ``edges[i]`` is frame i's edge count; a frame over ``max_edges`` forms a group alone.
    """
    if batch_size < 1 or max_edges < 1:
        raise ValueError(f"batch_size and max_edges must be >= 1, got {batch_size}, {max_edges}")
    batches: list[list[int]] = []
    current: list[int] = []
    total = 0
    for index, n in enumerate(edges):
        if current and (len(current) == batch_size or total + n > max_edges):
            batches.append(current)
            current, total = [], 0
        current.append(index)
        total += n
    if current:
        batches.append(current)
    return batches


#: Bytes of per-edge features one CPU batch may hold (a typical L3 cache).
#: Why a budget: torch.profiler, MACE-MP-0-small-sized model, 16 twelve-atom
#: Li2O frames, float64, one thread: 9.4 s of CPU in one batch of 16 against
#: 4.0 s one frame at a time, for the same arithmetic. The batch's edge tensors
#: (21 k edges x 128 channels x 16 spherical components x 8 B = 340 MB each,
#: 21 MB for one frame) overflow the cache: aten::mul 3.7 s vs 0.9 s, fill_
#: 0.9 vs 0.09 s, cat 0.8 vs 0.14 s, gather 0.6 vs 0.07 s. What batching saves
#: (neighbour list, collation, Python calls) is about 5 ms of some 250 ms a
#: frame. Swept over 8, 32 and 128 MiB on 12-atom and 1-4-atom frames, with
#: this model and with course-mini: 32 MiB was best or within the noise.
CPU_BATCH_BYTES = 32 * 2**20


def cpu_edge_budget(model) -> int | None:
    """Edges per CPU batch that keep its widest per-edge tensor within ``CPU_BATCH_BYTES``.

    The widest per-edge tensor of a MACE is its interaction's tensor-product
    output: channels x (l_max + 1)^2 numbers per edge (2048 for MACE-MP-0 small,
    128 for course-mini). None for a model without that layer (no limit).
    """
    try:
        width = max(block.conv_tp.irreps_out.dim for block in model.interactions)
    except (AttributeError, ValueError):
        return None
    itemsize = next(model.parameters()).element_size()
    return max(1, CPU_BATCH_BYTES // (width * itemsize))
